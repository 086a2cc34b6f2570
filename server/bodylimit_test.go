package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestBodyFarOverTheReadLimit: a body announced far over what the server
// reads at all is refused with 413 in the API's JSON form before it is
// sent. The test writes the request by hand and sends no body: a client
// that kept writing would race the server closing the connection.
func TestBodyFarOverTheReadLimit(t *testing.T) {
	n := startNode(t)
	conn, err := net.Dial("tcp", n.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "POST /v1/streams/s/reactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 204800\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	checkError(t, response{status: resp.StatusCode, header: resp.Header, body: body}, 413, "body_too_large")
}

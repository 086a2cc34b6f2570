package server

import (
	"net"
	"testing"
)

// TestBodyFarOverTheReadLimit: a body announced far over what the server
// reads at all is refused with 413 in the API's JSON form before it is
// sent. The test writes the request by hand and sends no body: a client
// that kept writing would race the server closing the connection.
func TestBodyFarOverTheReadLimit(t *testing.T) {
	n := startNode(t)
	c, err := net.Dial("tcp", n.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "POST /v1/streams/s/reactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 204800\r\n\r\n"
	checkError(t, exchange(t, c, req), 413, "body_too_large")
}

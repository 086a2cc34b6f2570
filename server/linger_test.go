package server

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// TestRefusedRequestIsNotResetMidSend: the server refuses headers over its
// limit before the client finished sending them. A client that is still
// writing (as HTTP clients do: they send the whole request, then read)
// must be able to finish and read the 431, not be cut off by a reset.
func TestRefusedRequestIsNotResetMidSend(t *testing.T) {
	n := startNode(t)
	c, err := net.Dial("tcp", n.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	pad := strings.Repeat("x", 12<<10)
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + pad)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	checkError(t, readResponse(t, br), 431, "headers_too_large")
	// The refused request's rest is still on its way.
	for range 4 {
		if _, err := c.Write([]byte(pad)); err != nil {
			t.Fatalf("the rest of a refused request was answered with a reset: %v", err)
		}
	}
}

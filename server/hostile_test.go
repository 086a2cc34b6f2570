package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestMalformedHTTP sends requests that are not valid HTTP/1.1, or are
// smuggling and size tricks, over a raw TCP socket: each gets its 4xx
// answer as a JSON error, and the server keeps serving. The API-level
// hostile requests are in TestErrorsOfTheAPI.
func TestMalformedHTTP(t *testing.T) {
	testutil.Long(t, "waits out read timeouts")
	n := startNode(t, func(c *nodeConfig) { c.server.ReadTimeout = 2 * time.Second })
	n.step()
	const send = "POST /v1/streams/s/reactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	chunk := "400\r\n" + strings.Repeat("x", 1024) + "\r\n"
	for _, tc := range []struct {
		name   string
		raw    string
		status int
		code   string
	}{
		{"not HTTP at all", "GARBAGE\r\n\r\n", 400, "bad_request"},
		{"no HTTP version", "GET /healthz\r\n\r\n", 400, "bad_request"},
		{"two spaces in the request line", "GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"},
		{"HTTP/1.1 without Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request"},
		{"two Host headers", "GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, "bad_request"},
		{"header without a colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "bad_request"},
		{"space before the colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Type : application/json\r\n\r\n", 400, "bad_request"},
		{"NUL in a header value", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400, "bad_request"},
		{"negative Content-Length", "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "bad_request"},
		{"Content-Length not a number", "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n", 400, "bad_request"},
		{"two different Content-Lengths", send + "Content-Length: 27\r\nContent-Length: 5\r\n\r\n" + `{"emoji":"love","user":"u"}`, 400, "bad_request"},
		{"unknown transfer coding", send + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400, "bad_request"},
		{"chunk size past any body", send + "Transfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\n", 413, "body_too_large"},
		{"chunked body past the read limit", send + "Transfer-Encoding: chunked\r\n\r\n" + strings.Repeat(chunk, 10) + "0\r\n\r\n", 413, "body_too_large"},
		{"Content-Length of 100 MB", send + "Content-Length: 100000000\r\n\r\n{", 413, "body_too_large"},
		{"100-continue for 100 MB", send + "Expect: 100-continue\r\nContent-Length: 100000000\r\n\r\n", 413, "body_too_large"},
		{"request line of 20 KB", "GET /v1/emojis?" + strings.Repeat("a", 20<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", 431, "headers_too_large"},
		{"one header of 9 KB", "GET /v1/emojis HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 9<<10) + "\r\n\r\n", 431, "headers_too_large"},
		{"lowercase method", "get /v1/emojis HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed"},
		{"CONNECT", "CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 404, "not_found"},
		{"TLS handshake on the plain port", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + strings.Repeat("\x00", 40), 408, "request_timeout"},
		{"headers never finished", "GET /v1/emojis HTTP/1.1\r\nHost: x\r\nX-Slow: ", 408, "request_timeout"},
		{"body never finished", send + "Content-Length: 27\r\n\r\n{\"emoji\"", 408, "request_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialFrom(t, "127.0.0.1", n.srv.Addr())
			r := exchange(t, c, tc.raw)
			checkError(t, r, tc.status, tc.code)
			if r := n.do("GET", "/healthz", "", nil); r.status != http.StatusOK {
				t.Fatalf("healthz after the request: %d", r.status)
			}
		})
	}
}

// TestTransferEncodingWithContentLengthRefused: a request with both
// Transfer-Encoding and Content-Length, in any case, is refused with 400
// and its connection closed, so a proxy in front that framed it by the
// Content-Length cannot have its next request answered by this one's body.
func TestTransferEncodingWithContentLengthRefused(t *testing.T) {
	n := startNode(t)
	n.step()
	smuggled := "GET /v1/emojis HTTP/1.1\r\nHost: x\r\n\r\n"
	body := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled)
	for _, raw := range []string{
		"POST /v1/streams/s/reactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
		"POST /v1/streams/s/reactions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\ncontent-LENGTH: 4\r\nContent-Type: application/json\r\n\r\n" + body,
	} {
		c := dialFrom(t, "127.0.0.1", n.srv.Addr())
		checkError(t, exchange(t, c, raw), 400, "bad_request")
		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if k, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("after the refusal the connection gave %d bytes, %v; want it closed", k, err)
		}
	}
	// Chunked alone is fine.
	c := dialFrom(t, "127.0.0.1", n.srv.Addr())
	send := `{"emoji":"love","user":"u"}`
	r := exchange(t, c, fmt.Sprintf("POST /v1/streams/s/reactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(send), send))
	if r.status != http.StatusAccepted {
		t.Fatalf("a chunked send: %d %s", r.status, r.body)
	}
}

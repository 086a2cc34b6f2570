package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// memConn is a connection whose client sent in and then closed its side;
// what the server writes collects in out.
type memConn struct {
	in  io.Reader
	out bytes.Buffer
}

var fuzzPeer = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

func (c *memConn) Read(b []byte) (int, error)       { return c.in.Read(b) }
func (c *memConn) Write(b []byte) (int, error)      { return c.out.Write(b) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return fuzzPeer }
func (c *memConn) RemoteAddr() net.Addr             { return fuzzPeer }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzRequest feeds arbitrary bytes to the server as one connection's
// requests: request lines, paths, query strings, headers (X-Forwarded-For,
// Origin, Accept-Encoding, If-None-Match, Authorization) and bodies. No
// answer may be a 5xx but 503; every error is a JSON error with a code, and
// every JSON answer is valid JSON, gzipped or not.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		"GET /v1/streams/s/reactions?since=1763699990 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
		"GET /v1/streams/s/watch?user=u1 HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\r\n",
		"POST /v1/streams/s/reactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"emoji\":\"love\",\"user\":\"u\"}",
		"POST /v1/streams/s/reactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer v1.AAAA.BBBB\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"emoji\":\"love\"}\r\n0\r\n\r\n",
		"OPTIONS /v1/streams/s/reactions HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\nAccess-Control-Request-Method: POST\r\n\r\n",
		"GET /v1/streams/s/reactions HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"x\", W/\"y\", *\r\nX-Forwarded-For: 1.2.3.4, [::1]:80\r\n\r\nGET /v1/emojis HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/streams/%C3%A9/reactions?since=-1&since=2 HTTP/1.0\r\n\r\n",
		"GARBAGE\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	n := startNode(f, func(c *nodeConfig) {
		c.server.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	n.step()
	f.Fuzz(func(t *testing.T, raw []byte) {
		if bytes.Contains(raw, []byte("HEAD")) {
			return // answers to HEAD have no body, so the answers below could not be told apart
		}
		c := &memConn{in: bytes.NewReader(raw)}
		_ = n.srv.srv.ServeConn(c)
		out := c.out.Bytes()
		br := bufio.NewReader(bytes.NewReader(out))
		for {
			if _, err := br.Peek(1); err == io.EOF {
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("cannot read an answer to %q: %v\nthe server wrote %q", raw, err, out)
			}
			checkAnswer(t, raw, resp)
		}
	})
}

func checkAnswer(t *testing.T, raw []byte, resp *http.Response) {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("answer to %q: cannot read the body: %v", raw, err)
	}
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("answer to %q: status %d", raw, resp.StatusCode)
	}
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("answer to %q: bad gzip: %v", raw, err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatalf("answer to %q: bad gzip: %v", raw, err)
		}
	}
	isJSON := strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json")
	if isJSON && !json.Valid(body) {
		t.Fatalf("answer to %q: invalid JSON %q", raw, body)
	}
	if resp.StatusCode >= 400 {
		var e apiError
		if !isJSON || json.Unmarshal(body, &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("answer to %q: status %d with %q; want a JSON error", raw, resp.StatusCode, body)
		}
	}
}

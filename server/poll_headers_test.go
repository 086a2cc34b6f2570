package server

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawGet sends one request written byte for byte as given, so header names
// reach the server in whatever case the test chose, and reads the answer.
func (n *node) rawGet(path string, headers ...string) *http.Response {
	n.t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(n.url, "http://"), 5*time.Second)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nhost: emojicast\r\n" + strings.Join(headers, "\r\n") + "\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		n.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		n.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestPollHeadersInAnyCase checks that gzip negotiation and If-None-Match
// work whatever the case of the header names and with cookies present: the
// poll path finds its headers by walking them, which relies on fasthttp
// having put their names in canonical form.
func TestPollHeadersInAnyCase(t *testing.T) {
	n := startNode(t)
	n.newViewer("s")
	n.send("s", "u1", "fire", 25)
	n.step()
	path := fmt.Sprintf("/v1/streams/s/reactions?since=%d", n.pull.Horizon()-2)
	etag := n.do("GET", path, "", map[string]string{"Accept-Encoding": "gzip"}).header.Get("ETag")

	gz := n.rawGet(path, "accept-encoding: gzip", "cookie: theme=dark; lang=en", "user-agent: test")
	if gz.StatusCode != http.StatusOK || gz.Header.Get("Content-Encoding") != "gzip" || gz.Header.Get("ETag") != etag {
		t.Fatalf("lower-case accept-encoding: status %d, Content-Encoding %q, ETag %q; want 200, gzip, %q",
			gz.StatusCode, gz.Header.Get("Content-Encoding"), gz.Header.Get("ETag"), etag)
	}
	nm := n.rawGet(path, "ACCEPT-ENCODING: gzip", "iF-nOnE-mAtCh: "+etag, "cookie: theme=dark")
	if nm.StatusCode != http.StatusNotModified {
		t.Fatalf("mixed-case If-None-Match with the current ETag: status %d; want 304", nm.StatusCode)
	}
	plain := n.rawGet(path, "if-none-match: "+etag)
	if plain.StatusCode != http.StatusOK || plain.Header.Get("Content-Encoding") != "" {
		t.Fatalf("no Accept-Encoding, gzip ETag: status %d, Content-Encoding %q; want 200 plain",
			plain.StatusCode, plain.Header.Get("Content-Encoding"))
	}
}

package server

import (
	"bytes"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// idleConnBytes opens conns keep-alive connections to n, has each answer
// one request, and returns the heap and goroutine stacks the server holds
// per connection while they all wait for their next request.
func idleConnBytes(t *testing.T, n *node, conns int) float64 {
	t.Helper()
	addr := strings.TrimPrefix(n.url, "http://")
	before := inUse()
	open := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	// One read buffer for every connection, so the client's side of the
	// test holds nothing per connection but its socket.
	buf := make([]byte, 4096)
	for range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
		if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if got := readAnswer(t, c, buf); !bytes.HasPrefix(got, []byte("HTTP/1.1 200")) {
			t.Fatalf("healthz answered %q", got)
		}
	}
	return float64(inUse()-before) / float64(conns)
}

// readAnswer reads one small answer.
func readAnswer(t *testing.T, c net.Conn, buf []byte) []byte {
	t.Helper()
	return readAnswers(t, c, buf, 1)
}

// readAnswers reads answers whole small answers, each ending with its
// headers' end plus Content-Length bytes.
func readAnswers(t *testing.T, c net.Conn, buf []byte, answers int) []byte {
	t.Helper()
	n := 0
	for complete(buf[:n]) < answers {
		m, err := c.Read(buf[n:])
		if err != nil {
			t.Fatalf("read: %v after %q", err, buf[:n])
		}
		n += m
	}
	return buf[:n]
}

// complete counts the whole answers at the start of b.
func complete(b []byte) int {
	for done := 0; ; done++ {
		head, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
		if !ok {
			return done
		}
		_, cl, _ := bytes.Cut(head, []byte("Content-Length: "))
		want := 0
		for _, d := range cl {
			if d < '0' || d > '9' {
				break
			}
			want = want*10 + int(d-'0')
		}
		if len(body) < want {
			return done
		}
		b = body[want:]
	}
}

// inUse is the heap and stack memory in use after a full collection.
func inUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

// TestIdleConnectionsReleaseTheirBuffers checks what a keep-alive viewer
// costs between polls: by default its connection gives its read buffer
// (MaxHeaderBytes, 8 KiB) and write buffer (4 KiB) back after each answer,
// and KeepIdleBuffers holds them, as fasthttp's default does.
func TestIdleConnectionsReleaseTheirBuffers(t *testing.T) {
	const conns = 300
	released := idleConnBytes(t, startNode(t), conns)
	kept := idleConnBytes(t, startNode(t, func(c *nodeConfig) { c.server.KeepIdleBuffers = true }), conns)
	t.Logf("per idle connection: %.0f B released, %.0f B kept", released, kept)
	// The race detector grows every goroutine's stack; the difference
	// stays the buffers.
	if !testutil.RaceEnabled && released > 7000 {
		t.Errorf("an idle connection holds %.0f B by default; want under 7000 B (its buffers released)", released)
	}
	if kept-released < 8000 {
		t.Errorf("an idle connection holds %.0f B with KeepIdleBuffers, %.0f B without; want most of its 12 KiB of buffers between them", kept, released)
	}
}

// TestReleasedBuffersServeEveryRequestShape checks that a connection whose
// buffers go back to the pool between requests still answers pipelined
// requests in order, a request that arrives in pieces, and headers up to
// the limit, and refuses larger ones.
func TestReleasedBuffersServeEveryRequestShape(t *testing.T) {
	for _, keep := range []bool{false, true} {
		n := startNode(t, func(c *nodeConfig) { c.server.KeepIdleBuffers = keep })
		addr := strings.TrimPrefix(n.url, "http://")
		c := dialFrom(t, "127.0.0.1", addr)
		buf := make([]byte, 64<<10)

		if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		got := readAnswers(t, c, buf, 2)
		if i, j := bytes.Index(got, []byte("HTTP/1.1 200")), bytes.Index(got, []byte("HTTP/1.1 404")); i < 0 || j < i {
			t.Errorf("keep %v: pipelined answers out of order or missing: %q", keep, got)
		}

		// A request in two pieces, the connection idle in between.
		if _, err := c.Write([]byte("GET /hea")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // lets the server read the first piece alone
		if _, err := c.Write([]byte("lthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if got := readAnswer(t, c, buf); !bytes.HasPrefix(got, []byte("HTTP/1.1 200")) {
			t.Errorf("keep %v: request in pieces answered %q", keep, got)
		}

		// Headers near the limit pass; past it they get 431.
		long := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", DefaultMaxHeaderBytes-200) + "\r\n\r\n"
		if got := readAnswerAfter(t, c, buf, long); !bytes.HasPrefix(got, []byte("HTTP/1.1 200")) {
			t.Errorf("keep %v: headers under the limit answered %q", keep, got[:min(len(got), 80)])
		}
		tooLong := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", DefaultMaxHeaderBytes) + "\r\n\r\n"
		if got := readAnswerAfter(t, c, buf, tooLong); !bytes.HasPrefix(got, []byte("HTTP/1.1 431")) {
			t.Errorf("keep %v: headers over the limit answered %q", keep, got[:min(len(got), 80)])
		}
	}
}

func readAnswerAfter(t *testing.T, c net.Conn, buf []byte, req string) []byte {
	t.Helper()
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	return readAnswer(t, c, buf)
}

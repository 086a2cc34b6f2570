package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// slowConn is one slow client and what it saw when the server cut it off.
type slowConn struct {
	c      net.Conn
	closed atomic.Bool
	got    []byte // what the server sent, read until it closed; valid once closed
}

// readUntilClosed reads everything the server sends until it closes.
func (s *slowConn) readUntilClosed() {
	s.got, _ = io.ReadAll(s.c)
	s.closed.Store(true)
}

// TestSlowClientsDoNotStarveOthers holds 2,000 slow or idle connections
// open (500 each: connected and silent; headers dribbled a byte at a time;
// headers sent and the body never finished; one request answered, then
// idle on keep-alive) while a normal client watches, polls and sends. Each
// of its requests must finish within a second; a starved one would wait
// for the slow clients' 10 s read timeout. Then every slow client but the
// keep-alive ones must be cut off, even the one still dribbling; the ones
// that sent part of a request with 408.
func TestSlowClientsDoNotStarveOthers(t *testing.T) {
	testutil.Long(t, "holds slow connections for seconds")
	const perKind, readTimeout = 500, 10 * time.Second
	n := startNode(t, func(c *nodeConfig) { c.server.ReadTimeout = readTimeout })
	n.step()
	n.newViewer("s")
	before := n.latencies(20)

	kinds := []string{"silent", "dribble", "unfinished body", "idle keep-alive"}
	conns := make(map[string][]*slowConn)
	var readers sync.WaitGroup
	t.Cleanup(func() {
		for _, cs := range conns {
			for _, s := range cs {
				s.c.Close()
			}
		}
		readers.Wait()
	})
	for i := range 4 * perKind {
		kind := kinds[i%4]
		// 20 client addresses, 100 connections each, within MaxConnsPerIP.
		s := &slowConn{c: dialFrom(t, fmt.Sprintf("127.0.0.%d", 10+i%20), n.srv.Addr())}
		conns[kind] = append(conns[kind], s)
		switch kind {
		case "unfinished body":
			write(t, s.c, "POST /v1/streams/s/reactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"emoji\"")
		case "idle keep-alive":
			exchange(t, s.c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			_ = s.c.SetDeadline(time.Time{})
		}
		readers.Add(1)
		go func() { defer readers.Done(); s.readUntilClosed() }()
	}
	stopDribbling := dribble(conns["dribble"])
	defer stopDribbling()
	testutil.Eventually(t, 20*time.Second, "the server holds the 2,000 connections", func() bool {
		return n.srv.ln.Open() >= 4*perKind
	})

	during := n.latencies(20)
	held := n.srv.ln.Open()
	t.Logf("normal client, median of 20 watch+poll+send rounds: %v before, %v with %d connections open", median(before), median(during), held)
	if held < 4*perKind {
		t.Fatalf("only %d connections open after the normal client's requests; the slow ones were cut too early to prove anything", held)
	}
	if worst := slices.Max(during); worst > time.Second {
		t.Fatalf("a normal request took %v with slow clients connected; want under 1 s", worst)
	}

	for _, kind := range kinds[:3] {
		testutil.Eventually(t, readTimeout+30*time.Second, kind+" connections cut off", func() bool {
			return !slices.ContainsFunc(conns[kind], func(s *slowConn) bool { return !s.closed.Load() })
		})
	}
	for _, s := range conns["unfinished body"] {
		if !strings.Contains(string(s.got), `"code":"request_timeout"`) {
			t.Fatalf("unfinished body connection cut off with %q; want 408 request_timeout", s.got)
		}
	}
	// A connection that never sent a byte has no request to answer: it is
	// closed at the read timeout without one, as nginx does, since it
	// holds no request state while it waits for its first byte.
	for _, s := range conns["silent"] {
		if len(s.got) != 0 {
			t.Fatalf("silent connection cut off with %q; want it closed without an answer", s.got)
		}
	}
	if open := slices.ContainsFunc(conns["idle keep-alive"], func(s *slowConn) bool { return s.closed.Load() }); open {
		t.Fatal("an idle keep-alive connection was closed before the idle timeout")
	}
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// dribble sends a request's headers to each connection a byte at a time,
// a round every 100 ms, never finishing them, until the server cuts the
// connection off or stop is called.
func dribble(conns []*slowConn) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		msg := "GET /v1/emojis HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 1<<20)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			for _, s := range conns {
				if !s.closed.Load() {
					_ = s.c.SetWriteDeadline(time.Now().Add(time.Second))
					_, _ = s.c.Write([]byte{msg[i]})
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// latencies times rounds of a normal client: a watch, a poll and a send.
func (n *node) latencies(rounds int) []time.Duration {
	n.t.Helper()
	var out []time.Duration
	ct := map[string]string{"Content-Type": jsonCT}
	for i := range rounds {
		start := time.Now()
		n.watch("s", "normal")
		n.poll("s", nil)
		if r := n.do("POST", "/v1/streams/s/reactions", fmt.Sprintf(`{"emoji":"love","user":"normal-%d"}`, i), ct); r.status != http.StatusAccepted {
			n.t.Fatalf("normal send: %d %s", r.status, r.body)
		}
		out = append(out, time.Since(start))
	}
	return out
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

package client

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// idleCloser is a TCP proxy in front of a server that passes each
// connection's first request and its answer, then closes the connection
// when the client sends the next request on it, without a byte of answer:
// an edge whose idle timeout ran out just as the next poll went out.
type idleCloser struct {
	ln       net.Listener
	upstream string
	cuts     atomic.Int64 // connections closed under a request
	wg       sync.WaitGroup
}

func newIdleCloser(t *testing.T, upstream string) *idleCloser {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &idleCloser{ln: ln, upstream: upstream}
	p.wg.Go(func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.relay(down) })
		}
	})
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

// relay passes the first request and everything the server answers; once
// an answer has come back, the client's next bytes close both sides.
func (p *idleCloser) relay(down net.Conn) {
	defer down.Close()
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	defer up.Close()
	var answered atomic.Bool
	p.wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				answered.Store(true)
				if _, werr := down.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				down.Close()
				return
			}
		}
	})
	buf := make([]byte, 64<<10)
	for {
		n, err := down.Read(buf)
		if n > 0 && answered.Load() {
			p.cuts.Add(1)
			return
		}
		if n > 0 {
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestPollResentOnClosedConnection: behind an edge that closes every
// kept-alive connection as the next poll goes out, the poll loop sees no
// failure (no backoff, no lost second): each such poll goes out again at
// once on a new connection, and Resent counts exactly those.
func TestPollResentOnClosedConnection(t *testing.T) {
	node := startNode(t)
	proxy := newIdleCloser(t, strings.TrimPrefix(node, "http://"))
	var failures atomic.Int64
	c := newTestClient(t, "http://"+proxy.ln.Addr().String(), func(o *Options) {
		o.OnRetry = func(op string, _ int, _ time.Duration, err error) {
			failures.Add(1)
			t.Logf("%s failed: %v", op, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := c.Watch(ctx, "resent-poll")
	if err != nil {
		t.Fatal(err)
	}
	var updates atomic.Int64
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx, func(Update) { updates.Add(1) }) }()
	deadline := time.Now().Add(10 * time.Second)
	for proxy.cuts.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	<-done
	c.CloseIdleConnections()
	// The last cut may have come as the loop stopped, before its resend.
	if cuts := proxy.cuts.Load(); cuts < 5 || c.Resent() > cuts || c.Resent() < cuts-1 {
		t.Fatalf("the edge closed %d connections under a request, the client resent %d; want at least 5, each resent once", cuts, c.Resent())
	}
	if failures.Load() != 0 || updates.Load() == 0 {
		t.Fatalf("%d failures and %d updates behind an edge closing idle connections; want no failure, updates", failures.Load(), updates.Load())
	}
}

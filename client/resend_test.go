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

// answerCutter is a TCP proxy in front of a server that lets the server
// take the first POST it forwards, then cuts the connection instead of
// passing the answer on: a send whose answer the network lost.
type answerCutter struct {
	ln       net.Listener
	upstream string
	cut      atomic.Bool // the first POST has been cut
	wg       sync.WaitGroup
}

func newAnswerCutter(t *testing.T, upstream string) *answerCutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &answerCutter{ln: ln, upstream: upstream}
	c.wg.Go(c.accept)
	t.Cleanup(func() { ln.Close(); c.wg.Wait() })
	return c
}

func (c *answerCutter) accept() {
	for {
		down, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.wg.Go(func() { c.relay(down) })
	}
}

// relay passes one connection through. Once it has forwarded the first
// POST of the proxy's life, the next bytes the server answers are dropped
// and both sides closed.
func (c *answerCutter) relay(down net.Conn) {
	defer down.Close()
	up, err := net.Dial("tcp", c.upstream)
	if err != nil {
		return
	}
	defer up.Close()
	var cutNext atomic.Bool
	c.wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := down.Read(buf)
			if n > 0 && strings.HasPrefix(string(buf[:n]), "POST ") && c.cut.CompareAndSwap(false, true) {
				cutNext.Store(true)
			}
			if n > 0 {
				if _, werr := up.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				up.Close()
				return
			}
		}
	})
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 && cutNext.Load() {
			return
		}
		if n > 0 {
			if _, werr := down.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestLostAnswerIsNotCountedTwice: a real node counts a send whose answer
// the network then cuts; the client sends it again, with the same id, and
// the node counts the taps once.
func TestLostAnswerIsNotCountedTwice(t *testing.T) {
	node := startNode(t)
	cutter := newAnswerCutter(t, strings.TrimPrefix(node, "http://"))
	c := newTestClient(t, "http://"+cutter.ln.Addr().String(), func(o *Options) { o.Backoff.Initial = 10 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := c.Watch(ctx, "resent")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx, "love", 7); err != nil {
		t.Fatalf("Send through a cut answer: %v", err)
	}
	if !cutter.cut.Load() {
		t.Fatal("the proxy cut no answer")
	}
	// Count what the node published, directly, until a second after the
	// taps first show (a second count would be in a later second).
	watcher, err := New(Options{Server: node})
	if err != nil {
		t.Fatal(err)
	}
	w, err := watcher.Watch(ctx, "resent")
	if err != nil {
		t.Fatal(err)
	}
	w.Since = 0
	var total int64
	var seen time.Time
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	_ = w.Run(runCtx, func(u Update) {
		for _, b := range u.Buckets {
			total += b.Counts["love"]
		}
		if total > 0 && seen.IsZero() {
			seen = time.Now()
		}
		if !seen.IsZero() && time.Since(seen) > time.Second {
			stop()
		}
	})
	if total != 7 {
		t.Fatalf("the node counted %d taps of the 7 sent once and retried once; want 7", total)
	}
}

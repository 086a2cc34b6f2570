package client

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/pull"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/server"
	"github.com/emojicast/emojicast/store"
)

// startNode runs a whole emojicast node (push, pull, memory store, one
// listener) on loopback on the real clock, and returns its URL.
func startNode(t *testing.T) string {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	st := store.NewMemory(store.MemoryOptions{})
	pu, err := push.New(push.Options{Targets: []push.Target{{Name: "memory", Store: st}}, FlushInterval: 50 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pull.New(pull.Options{Store: st, SyncInterval: 20 * time.Millisecond, BusyNextMS: 200, QuietNextMS: 200, MinNextMS: 100, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Addr: "127.0.0.1:0", Push: pu, Pull: pl, Logger: quiet})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	pu.Start()
	pl.Start()
	srv.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		pu.Stop(ctx)
		pl.Stop()
		_ = st.Close()
	})
	return "http://" + srv.Addr()
}

// TestAgainstNode watches, taps and follows a real node: every tap comes
// back in the poll loop exactly once, a full second of one emoji is a
// burst, and cancelling the loop leaves no goroutine behind.
func TestAgainstNode(t *testing.T) {
	url := startNode(t)
	ctx := context.Background()
	viewer := newTestClient(t, url, func(o *Options) { o.User = "viewer" })
	s, err := viewer.Watch(ctx, "launch-2026")
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "launch-2026" || s.User != "viewer" || len(s.Emojis) != 8 || s.Glyph("fire") != "🔥" || s.Sample() != 1 {
		t.Fatalf("watch gave %+v, sample %v", s, s.Sample())
	}
	var mu sync.Mutex
	totals := map[string]int64{}
	var bursts []string
	var seen []int64
	var latest int64
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.Run(runCtx, func(u Update) {
			mu.Lock()
			defer mu.Unlock()
			latest = u.Now
			for _, b := range u.Buckets {
				seen = append(seen, b.T)
				for id, n := range b.Counts {
					totals[id] += n
				}
				bursts = append(bursts, b.Burst...)
			}
		})
	}()

	sender := newTestClient(t, url, func(o *Options) { o.User = "sender" })
	ss, err := sender.Watch(ctx, "launch-2026")
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.Send(ctx, "fire", 20); err != nil {
		t.Fatal(err)
	}
	// Tap spreads 25 taps over two sends (20 + 5): the user's burst
	// allowance of 20 makes the second wait for its Retry-After.
	if n, err := ss.Tap(ctx, "love", 25); err != nil || n != 25 {
		t.Fatalf("Tap sent %d: %v; want 25 at sample 1", n, err)
	}
	if err := ss.Send(ctx, "nope", 1); err == nil {
		t.Fatal("sending an emoji outside the set succeeded")
	}
	testutil.Eventually(t, 20*time.Second, "all taps delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return totals["fire"] >= 20 && totals["love"] >= 25
	})
	// Polls go on past the seconds with taps; none may come twice.
	testutil.Eventually(t, 10*time.Second, "two more seconds polled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return latest >= seen[len(seen)-1]+2
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v; want context.Canceled", err)
	}
	mu.Lock()
	if totals["fire"] != 20 || totals["love"] != 25 || !slices.Contains(bursts, "fire") || !slices.IsSorted(seen) || len(slices.Compact(slices.Clone(seen))) != len(seen) {
		t.Errorf("delivered totals %v, bursts %v, seconds %v; want fire 20 (a burst), love 25, each second once", totals, bursts, seen)
	}
	mu.Unlock()

	viewer.CloseIdleConnections()
	sender.CloseIdleConnections()
	testutil.Eventually(t, 10*time.Second, "no goroutine of the client or its connections left", func() bool {
		return clientGoroutines() == ""
	})
}

// clientGoroutines returns the stacks of goroutines that belong to the
// client: its own code, or the HTTP transport's connections. The server's
// goroutines in the same process are not its to end.
func clientGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "emojicast/client.") && !strings.Contains(g, "client.TestAgainstNode") && !strings.Contains(g, "client.clientGoroutines") ||
			strings.Contains(g, "net/http.(*persistConn)") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// TestCommentsAgainstNode: a comment a viewer sends comes back to another
// viewer in its second's bucket, once.
func TestCommentsAgainstNode(t *testing.T) {
	url := startNode(t)
	ctx := context.Background()
	viewer := newTestClient(t, url, func(o *Options) { o.User = "viewer" })
	s, err := viewer.Watch(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []Comment
	var at, latest int64
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = s.Run(runCtx, func(u Update) {
			mu.Lock()
			defer mu.Unlock()
			latest = u.Now
			for _, b := range u.Buckets {
				if len(b.Comments) > 0 {
					at = b.T
				}
				got = append(got, b.Comments...)
			}
		})
	}()
	sender := newTestClient(t, url, func(o *Options) { o.User = "fan" })
	ss, err := sender.Watch(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	if kept, err := ss.Comment(ctx, "  what a goal!  "); err != nil || !kept {
		t.Fatalf("Comment = %v, %v; want kept", kept, err)
	}
	if _, err := ss.Comment(ctx, "two\nlines"); err == nil || !strings.Contains(err.Error(), "invalid_text") {
		t.Fatalf("a comment with a line break: %v; want invalid_text", err)
	}
	testutil.Eventually(t, 20*time.Second, "the comment delivered and two more seconds polled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0 && latest >= at+2
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != (Comment{User: "fan", Text: "what a goal!"}) {
		t.Fatalf("viewer got comments %+v; want the one from fan, trimmed", got)
	}
}

package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/pull"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/server"
	"github.com/emojicast/emojicast/store"
	"github.com/emojicast/emojicast/token"
)

// startNode runs a whole emojicast node (push, pull, memory store, one
// listener) on loopback on the real clock, and returns its URL.
func startNode(t *testing.T) string {
	t.Helper()
	return startNodeWith(t, nil)
}

// startNodeWith is startNode with the pull options changed by mod, and
// the push options by pushMods.
func startNodeWith(t *testing.T, mod func(*pull.Options), pushMods ...func(*push.Options)) string {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	st := store.NewMemory(store.MemoryOptions{})
	puOpts := push.Options{Targets: []push.Target{{Name: "memory", Store: st}}, FlushInterval: 50 * time.Millisecond, Logger: quiet}
	for _, m := range pushMods {
		m(&puOpts)
	}
	pu, err := push.New(puOpts)
	if err != nil {
		t.Fatal(err)
	}
	plOpts := pull.Options{Store: st, SyncInterval: 20 * time.Millisecond, BusyNextMS: 200, QuietNextMS: 200, QuietMaxNextMS: 200, MinNextMS: 100, CompactMinNextMS: 100, Logger: quiet}
	if mod != nil {
		mod(&plOpts)
	}
	pl, err := pull.New(plOpts)
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
	if len(got) != 1 || got[0].User != "fan" || got[0].Text != "what a goal!" {
		t.Fatalf("viewer got comments %+v; want the one from fan, trimmed", got)
	}
}

// pollCounter counts the polls a client makes.
type pollCounter struct {
	rt    http.RoundTripper
	polls atomic.Int64
}

func (pc *pollCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Query().Has("since") {
		pc.polls.Add(1)
	}
	return pc.rt.RoundTrip(r)
}

// TestDataSaverAgainstNode: with DataSaver a client polls at its floor
// instead of every next_ms, within the server's max_next_ms, and still
// delivers every second a client without it delivers, once.
func TestDataSaverAgainstNode(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxNextMS  int64 // the server's bound, 0 for its default, 30000
		wantWaitMS int64
	}{
		{"floor", 0, 600},         // next_ms 200, floor 600
		{"max_next_ms", 400, 400}, // the server's bound is below the floor
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := startNodeWith(t, func(o *pull.Options) {
				if tc.maxNextMS > 0 {
					o.MaxNextMS = tc.maxNextMS
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type follower struct {
				counter *pollCounter
				stream  *Stream
				mu      sync.Mutex
				seen    map[int64]map[string]int64
				twice   []int64
				latest  int64
				done    chan error
			}
			follow := func(user string, saver bool) *follower {
				f := &follower{counter: &pollCounter{rt: http.DefaultTransport.(*http.Transport).Clone()}, seen: map[int64]map[string]int64{}, done: make(chan error, 1)}
				c := newTestClient(t, url, func(o *Options) {
					o.User, o.DataSaver, o.DataSaverFloor = user, saver, 600*time.Millisecond
					o.HTTPClient = &http.Client{Transport: f.counter}
				})
				var err error
				if f.stream, err = c.Watch(ctx, "saver"); err != nil {
					t.Fatal(err)
				}
				go func() {
					f.done <- f.stream.Run(ctx, func(u Update) {
						f.mu.Lock()
						defer f.mu.Unlock()
						if saver && u.IntervalMS != tc.wantWaitMS || !saver && u.IntervalMS != u.NextMS {
							t.Errorf("%s keeps %d ms between polls for next_ms %d", user, u.IntervalMS, u.NextMS)
						}
						for _, b := range u.Buckets {
							if f.seen[b.T] != nil {
								f.twice = append(f.twice, b.T)
							}
							f.seen[b.T] = b.Counts
						}
						f.latest = u.Now
					})
				}()
				return f
			}
			normal, saver := follow("normal", false), follow("saver", true)
			if want := cmp.Or(tc.maxNextMS, 30_000); saver.stream.MaxNextMS != want {
				t.Fatalf("watch gave max_next_ms %d; want %d", saver.stream.MaxNextMS, want)
			}
			sender := newTestClient(t, url, func(o *Options) { o.User = "sender" })
			ss, err := sender.Watch(ctx, "saver")
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			for range 6 {
				if err := ss.Send(ctx, "clap", 2); err != nil {
					t.Fatal(err)
				}
				time.Sleep(500 * time.Millisecond)
			}
			through := time.Now().Unix()
			for _, f := range []*follower{normal, saver} {
				testutil.Eventually(t, 10*time.Second, "both viewers pass the last send", func() bool {
					f.mu.Lock()
					defer f.mu.Unlock()
					return f.latest > through
				})
			}
			elapsed := time.Since(start)
			cancel()
			for _, f := range []*follower{normal, saver} {
				<-f.done
			}
			n, s := normal.counter.polls.Load(), saver.counter.polls.Load()
			t.Logf("in %v: %d polls without data saver, %d with (%d ms apart)", elapsed.Round(time.Millisecond), n, s, tc.wantWaitMS)
			// The floor of the data saver's waits bounds its polls; a busy
			// machine can only make either client poll less.
			if wantMax := int64(elapsed/(time.Duration(tc.wantWaitMS)*time.Millisecond*9/10)) + 2; s > wantMax || s >= n {
				t.Errorf("data saver polled %d times, the normal client %d; want at most %d, far fewer", s, n, wantMax)
			}
			normal.mu.Lock()
			saver.mu.Lock()
			defer normal.mu.Unlock()
			defer saver.mu.Unlock()
			if len(normal.twice)+len(saver.twice) > 0 {
				t.Errorf("seconds delivered twice: %v (normal), %v (data saver)", normal.twice, saver.twice)
			}
			var claps int64
			for sec := max(normal.stream.Since, saver.stream.Since) + 1; sec <= through; sec++ {
				if got, want := fmt.Sprint(saver.seen[sec]), fmt.Sprint(normal.seen[sec]); got != want {
					t.Errorf("second %d: data saver delivered %s, the normal client %s", sec, got, want)
				}
				claps += normal.seen[sec]["clap"]
			}
			if claps != 12 {
				t.Errorf("%d claps delivered; 12 were sent", claps)
			}
		})
	}
}

// TestApplicationTokenAgainstNode: a client given the JWT its
// application's backend signed watches as the JWT's user and taps with it;
// a client without one may watch but not tap.
func TestApplicationTokenAgainstNode(t *testing.T) {
	secret := []byte("backend-secret-0123456789abcdef0123")
	v, err := token.NewJWTVerifier(map[string][]byte{"k1": secret})
	if err != nil {
		t.Fatal(err)
	}
	url := startNodeWith(t, func(o *pull.Options) { o.JWT = v }, func(o *push.Options) { o.JWT = v })
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "stream": "show", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	alice := newTestClient(t, url, func(o *Options) { o.User, o.Token = "mallory", signed })
	s, err := alice.Watch(ctx, "show")
	if err != nil {
		t.Fatal(err)
	}
	if s.User != "alice" {
		t.Fatalf("watched as %q; want the JWT's alice", s.User)
	}
	if err := s.Send(ctx, "love", 1); err != nil {
		t.Fatalf("send with the JWT: %v", err)
	}
	nobody := newTestClient(t, url, nil)
	ns, err := nobody.Watch(ctx, "show")
	if err != nil {
		t.Fatal(err)
	}
	var apiErr *Error
	if err := ns.Send(ctx, "love", 1); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Fatalf("send without a token: %v; want 401", err)
	}
}

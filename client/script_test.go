package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// scripted is an HTTP server on loopback that answers from a script and
// records every request, for the error paths a real node does not take on
// demand.
type scripted struct {
	t   *testing.T
	url string
	ln  net.Listener
	srv *http.Server

	mu     sync.Mutex
	reqs   []record
	answer func(r record) reply
}

type record struct {
	at     time.Time
	method string
	path   string
	since  string
	header http.Header
	body   string
	n      int // index among requests to the same path and method
}

type reply struct {
	status     int
	retryAfter string
	etag       string
	body       string
}

func newScripted(t *testing.T, answer func(r record) reply) *scripted {
	t.Helper()
	s := &scripted{t: t, answer: answer}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + ln.Addr().String()
	s.serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *scripted) serve(ln net.Listener) {
	s.ln = ln
	s.srv = &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
}

// down closes the listener and every connection: the network is gone.
func (s *scripted) down() { s.srv.Close() }

// up listens again on the same address.
func (s *scripted) up() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.ln.Addr().String())
	if err != nil {
		s.t.Fatal(err)
	}
	s.serve(ln)
}

func (s *scripted) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	s.mu.Lock()
	r := record{at: time.Now(), method: req.Method, path: req.URL.Path, since: req.URL.Query().Get("since"), header: req.Header.Clone(), body: string(body)}
	for _, o := range s.reqs {
		if o.path == r.path && o.method == r.method {
			r.n++
		}
	}
	s.reqs = append(s.reqs, r)
	answer := s.answer
	s.mu.Unlock()
	rep := answer(r)
	if rep.retryAfter != "" {
		w.Header().Set("Retry-After", rep.retryAfter)
	}
	if rep.etag != "" {
		w.Header().Set("ETag", rep.etag)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

// requests returns the requests so far to path with method.
func (s *scripted) requests(method, path string) []record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []record
	for _, r := range s.reqs {
		if r.method == method && r.path == path {
			out = append(out, r)
		}
	}
	return out
}

const (
	watchPath = "/v1/streams/s/watch"
	pullPath  = "/v1/streams/s/reactions"
)

// watchReply is a watch answer pointing back at the scripted server with a
// relative URL, as a node does when the Host header is not usable.
func watchReply(since, nextMS int64, sample float64) reply {
	return reply{status: 200, body: fmt.Sprintf(`{"stream":"s","user":"u","pull":"/v1/streams/s/reactions","push":"/v1/streams/s/reactions",`+
		`"token":"","since":%d,"next_ms":%d,"sample":%v,"viewers":3,"emojis":[{"id":"love","glyph":"❤️"}]}`, since, nextMS, sample)}
}

func pollReply(now, nextMS int64, buckets string) reply {
	return reply{status: 200, body: fmt.Sprintf(`{"now":%d,"next_ms":%d,"sample":1,"viewers":5,"buckets":[%s]}`, now, nextMS, buckets)}
}

func errReply(status int, code, retryAfter string) reply {
	return reply{status: status, retryAfter: retryAfter, body: `{"error":{"code":"` + code + `","message":"scripted"}}`}
}

// fixedRand returns a Rand that always answers r.
func fixedRand(r float64) func() float64 { return func() float64 { return r } }

func newTestClient(t *testing.T, server string, mod func(*Options)) *Client {
	t.Helper()
	opts := Options{Server: server, User: "u", Rand: fixedRand(0.5)}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// collector gathers what Run delivers.
type collector struct {
	mu      sync.Mutex
	updates []Update
}

func (c *collector) add(u Update) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.updates = append(c.updates, u)
}

func (c *collector) seconds() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int64
	for _, u := range c.updates {
		for _, b := range u.Buckets {
			out = append(out, b.T)
		}
	}
	return out
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.updates)
}

// runInBackground starts s.Run and returns a function that cancels it and
// returns Run's error.
func runInBackground(t *testing.T, s *Stream, col *collector) (stop func() error, done chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() { done <- s.Run(ctx, col.add) }()
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10s of its context being cancelled")
			return nil
		}
	}
	t.Cleanup(func() { cancel() })
	return stop, done
}

// TestRunCursorRules: the cursor starts at watch's since, follows
// max(cursor, now), buckets at or before it are ignored even when a node
// that is behind or out of order sends them, and each second is delivered
// once.
func TestRunCursorRules(t *testing.T) {
	srv := newScripted(t, func(r record) reply {
		if r.path == watchPath {
			return watchReply(100, 100, 1)
		}
		switch r.n {
		case 0:
			return pollReply(103, 100, `{"t":101,"c":{"love":1}},{"t":102,"c":{"love":2}},{"t":103,"c":{"love":3}}`)
		case 1: // a node two seconds behind: nothing new
			return pollReply(101, 100, `{"t":101,"c":{"love":1}}`)
		case 2: // repeats 103, out of order
			return pollReply(105, 100, `{"t":105,"c":{"love":5}},{"t":103,"c":{"love":3}},{"t":104,"c":{"love":4}}`)
		case 3:
			return reply{status: 200, body: `{"now":170,"next_ms":100,"sample":1,"viewers":5,"gap":true,"buckets":[{"t":111,"c":{"love":9}}]}`}
		}
		return pollReply(170, 100, "")
	})
	s, err := newTestClient(t, srv.url, nil).Watch(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	var col collector
	stop, _ := runInBackground(t, s, &col)
	testutil.Eventually(t, 10*time.Second, "six polls", func() bool { return len(srv.requests("GET", pullPath)) >= 6 })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v; want context.Canceled", err)
	}
	var sinces []string
	for _, r := range srv.requests("GET", pullPath)[:6] {
		sinces = append(sinces, r.since)
	}
	if want := "[100 103 103 105 170 170]"; fmt.Sprint(sinces) != want {
		t.Errorf("polls asked since %v; want %s", sinces, want)
	}
	if got, want := fmt.Sprint(col.seconds()), "[101 102 103 104 105 111]"; got != want {
		t.Errorf("delivered seconds %s; want %s, each once", got, want)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.updates) < 4 || !col.updates[3].Gap || col.updates[0].Viewers != 5 || col.updates[0].Buckets[1].Counts["love"] != 2 {
		t.Errorf("updates %+v; want the fourth flagged as a gap and counts and viewers passed on", col.updates)
	}
}

// TestRunBacksOffAndHonoursRetryAfter: failed polls are retried with the
// same cursor after growing waits, a 429 waits at least its Retry-After,
// and success resets the backoff.
func TestRunBacksOffAndHonoursRetryAfter(t *testing.T) {
	srv := newScripted(t, func(r record) reply {
		if r.path == watchPath {
			return watchReply(100, 100, 1)
		}
		switch r.n {
		case 0, 1, 2:
			return errReply(500, "internal", "")
		case 3:
			return errReply(429, "rate_limited", "1")
		case 4:
			return pollReply(101, 100, `{"t":101,"c":{"love":1}}`)
		case 5:
			return errReply(503, "overloaded", "")
		}
		return pollReply(101, 100, "")
	})
	var mu sync.Mutex
	var waits []time.Duration
	c := newTestClient(t, srv.url, func(o *Options) {
		o.Backoff = Backoff{Initial: 50 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.5}
		o.OnRetry = func(op string, failures int, wait time.Duration, err error) {
			mu.Lock()
			defer mu.Unlock()
			waits = append(waits, wait)
		}
	})
	s, err := c.Watch(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	var col collector
	stop, _ := runInBackground(t, s, &col)
	testutil.Eventually(t, 20*time.Second, "eight polls", func() bool { return len(srv.requests("GET", pullPath)) >= 8 })
	stop()
	mu.Lock()
	got := fmt.Sprint(waits[:5])
	mu.Unlock()
	// 50ms, 100ms, 200ms; then Retry-After 1s with jitter 0.5 at r=0.5:
	// 1.25s; then after a success the backoff starts again at 50ms.
	if want := "[50ms 100ms 200ms 1.25s 50ms]"; got != want {
		t.Errorf("waits %s; want %s", got, want)
	}
	polls := srv.requests("GET", pullPath)
	for i, min := range []time.Duration{50, 100, 200, 1250} {
		if gap := polls[i+1].at.Sub(polls[i].at); gap < min*time.Millisecond {
			t.Errorf("poll %d came %v after the failed one; want at least %v", i+1, gap, min*time.Millisecond)
		}
	}
	for i, r := range polls[:5] {
		if r.since != "100" {
			t.Errorf("poll %d asked since=%s; a retry must keep the cursor 100", i, r.since)
		}
	}
	if got := col.seconds(); len(got) != 1 || got[0] != 101 {
		t.Errorf("delivered %v; want [101]", got)
	}
}

// TestRunPollJitter: the wait between polls is next_ms plus the jitter;
// with the random number at its top the wait is 10% longer than next_ms.
func TestRunPollJitter(t *testing.T) {
	const nextMS = 300
	srv := newScripted(t, func(r record) reply {
		if r.path == watchPath {
			return watchReply(100, nextMS, 1)
		}
		return pollReply(100, nextMS, "")
	})
	s, err := newTestClient(t, srv.url, func(o *Options) { o.Rand = fixedRand(0.9999) }).Watch(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var col collector
	stop, _ := runInBackground(t, s, &col)
	testutil.Eventually(t, 10*time.Second, "four polls", func() bool { return len(srv.requests("GET", pullPath)) >= 4 })
	stop()
	polls := srv.requests("GET", pullPath)
	min := time.Duration(nextMS * 1.0999 * float64(time.Millisecond))
	if first := polls[0].at.Sub(start); first < min {
		t.Errorf("first poll %v after watch; want the jittered next_ms of watch, at least %v", first, min)
	}
	for i := 1; i < 4; i++ {
		if gap := polls[i].at.Sub(polls[i-1].at); gap < min {
			t.Errorf("poll %d came %v after the previous; want next_ms+10%% = %v", i, gap, min)
		}
	}
}

// TestRunAsksWithETag: asking the same URL again (no newer second) sends
// If-None-Match; a 304 delivers nothing and keeps the cursor.
func TestRunAsksWithETag(t *testing.T) {
	srv := newScripted(t, func(r record) reply {
		if r.path == watchPath {
			return watchReply(100, 100, 1)
		}
		if r.header.Get("If-None-Match") == `"v1"` {
			return reply{status: http.StatusNotModified, etag: `"v1"`}
		}
		rep := pollReply(100, 100, "")
		rep.etag = `"v1"`
		return rep
	})
	s, err := newTestClient(t, srv.url, nil).Watch(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	var col collector
	stop, _ := runInBackground(t, s, &col)
	testutil.Eventually(t, 10*time.Second, "three polls", func() bool { return len(srv.requests("GET", pullPath)) >= 3 })
	stop()
	polls := srv.requests("GET", pullPath)
	if polls[0].header.Get("If-None-Match") != "" || polls[1].header.Get("If-None-Match") != `"v1"` || polls[2].since != "100" {
		t.Fatalf("If-None-Match %q then %q, third since=%s; want none, then the ETag, cursor kept", polls[0].header.Get("If-None-Match"), polls[1].header.Get("If-None-Match"), polls[2].since)
	}
	if n := col.len(); n != 1 {
		t.Fatalf("%d updates; want 1 (a 304 brings nothing)", n)
	}
	// Each header is paid on every poll: only what the API needs.
	for i, p := range polls[:2] {
		var names []string
		for name := range p.header {
			names = append(names, name)
		}
		slices.Sort(names)
		want := []string{"Accept-Encoding", "User-Agent"}
		if i == 1 {
			want = []string{"Accept-Encoding", "If-None-Match", "User-Agent"}
		}
		if !slices.Equal(names, want) || p.header.Get("User-Agent") != userAgent {
			t.Fatalf("poll %d sent headers %v (User-Agent %q); want %v", i, names, p.header.Get("User-Agent"), want)
		}
	}
}

// TestRunResumesAfterServerGone: the server disappears (connections refused
// and reset), the client backs off, and when it returns the client asks
// with the cursor it had, so no second is lost.
func TestRunResumesAfterServerGone(t *testing.T) {
	var mu sync.Mutex
	now := int64(100)
	srv := newScripted(t, func(r record) reply {
		if r.path == watchPath {
			return watchReply(100, 50, 1)
		}
		mu.Lock()
		defer mu.Unlock()
		now++
		return pollReply(now, 50, fmt.Sprintf(`{"t":%d,"c":{"love":1}}`, now))
	})
	var failures sync.Map
	c := newTestClient(t, srv.url, func(o *Options) {
		o.Backoff = Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
		o.OnRetry = func(op string, n int, wait time.Duration, err error) { failures.Store(n, err) }
	})
	s, err := c.Watch(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	var col collector
	stop, _ := runInBackground(t, s, &col)
	testutil.Eventually(t, 10*time.Second, "three seconds delivered", func() bool { return len(col.seconds()) >= 3 })
	srv.down()
	testutil.Eventually(t, 10*time.Second, "four failures in a row", func() bool { _, ok := failures.Load(4); return ok })
	mu.Lock()
	last := now
	mu.Unlock()
	before := len(srv.requests("GET", pullPath))
	srv.up()
	testutil.Eventually(t, 10*time.Second, "polls resume", func() bool { return len(srv.requests("GET", pullPath)) > before+2 })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	if got := srv.requests("GET", pullPath)[before].since; got != strconv.FormatInt(last, 10) {
		t.Fatalf("first poll after the outage asked since=%s; want the cursor before it, %d", got, last)
	}
	secs := col.seconds()
	for i := range secs {
		if secs[i] != 101+int64(i) {
			t.Fatalf("delivered %v; want consecutive seconds from 101, each once", secs)
		}
	}
}

// TestRunStopsOnPermanentError: retrying cannot cure a 404; Run says so.
func TestRunStopsOnPermanentError(t *testing.T) {
	srv := newScripted(t, func(r record) reply {
		if r.path == watchPath {
			return watchReply(100, 50, 1)
		}
		return errReply(404, "not_found", "")
	})
	s, err := newTestClient(t, srv.url, nil).Watch(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	var col collector
	_, done := runInBackground(t, s, &col)
	select {
	case err := <-done:
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Code != "not_found" {
			t.Fatalf("Run returned %v; want the 404 not_found", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run kept going after a 404")
	}
	if n := len(srv.requests("GET", pullPath)); n != 1 {
		t.Fatalf("%d polls; a 404 must not be retried", n)
	}
}

// TestWatchRetriesThenFailsForGood: a 503 at watch is retried after its
// Retry-After; a 400 is returned at once.
func TestWatchRetriesThenFailsForGood(t *testing.T) {
	srv := newScripted(t, func(r record) reply {
		if r.n == 0 {
			return errReply(503, "unavailable", "1")
		}
		return watchReply(100, 50, 1)
	})
	start := time.Now()
	if _, err := newTestClient(t, srv.url, func(o *Options) { o.Rand = fixedRand(0) }).Watch(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	if w := srv.requests("GET", watchPath); len(w) != 2 || w[1].at.Sub(start) < time.Second {
		t.Fatalf("%d watches, the second %v after the start; want 2, after Retry-After 1s", len(w), w[len(w)-1].at.Sub(start))
	}
	bad := newScripted(t, func(r record) reply { return errReply(400, "invalid_user", "") })
	_, err := newTestClient(t, bad.url, nil).Watch(context.Background(), "s")
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Code != "invalid_user" || len(bad.requests("GET", watchPath)) != 1 {
		t.Fatalf("watch answered 400 returned %v after %d tries; want the *Error after 1", err, len(bad.requests("GET", watchPath)))
	}
}

// TestSendRetriesWithItsID: 429, 503 and 500 are retried with the send's
// own id (a server that counted it the first time does not count it
// again), a 400 is not, and a 401 renews the token with a new watch and
// sends again.
func TestSendRetriesWithItsID(t *testing.T) {
	for _, tc := range []struct {
		name    string
		first   reply
		posts   int
		watches int
		ok      bool
	}{
		{"429", errReply(429, "rate_limited", "1"), 2, 1, true},
		{"503", errReply(503, "overloaded", ""), 2, 1, true},
		{"500", errReply(500, "internal", ""), 2, 1, true},
		{"400", errReply(400, "invalid_emoji", ""), 1, 1, false},
		{"401", errReply(401, "unauthorized", ""), 2, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScripted(t, func(r record) reply {
				switch {
				case r.path == watchPath:
					return watchReply(100, 50, 1)
				case r.n == 0:
					return tc.first
				}
				return reply{status: 202, body: `{"status":"accepted","sample":0.5}`}
			})
			c := newTestClient(t, srv.url, func(o *Options) { o.Backoff.Initial = 10 * time.Millisecond })
			s, err := c.Watch(context.Background(), "s")
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), "love", 3)
			if (err == nil) != tc.ok {
				t.Fatalf("Send: %v; want success %v", err, tc.ok)
			}
			posts := srv.requests("POST", pullPath)
			if len(posts) != tc.posts || len(srv.requests("GET", watchPath)) != tc.watches {
				t.Fatalf("%d posts and %d watches; want %d and %d", len(posts), len(srv.requests("GET", watchPath)), tc.posts, tc.watches)
			}
			if tc.name == "429" && posts[1].at.Sub(posts[0].at) < time.Second {
				t.Fatalf("retry after 429 came %v later; want at least Retry-After 1s", posts[1].at.Sub(posts[0].at))
			}
			id := regexp.MustCompile(`^\{"emoji":"love","count":3,"user":"u","sample":1,"id":"([0-9a-f]{16})"\}$`).FindStringSubmatch(posts[0].body)
			if id == nil || posts[0].header.Get("Content-Type") != "application/json" {
				t.Fatalf("send body %s, Content-Type %q", posts[0].body, posts[0].header.Get("Content-Type"))
			}
			for _, p := range posts[1:] {
				if p.body != posts[0].body {
					t.Fatalf("send sent again as %s; want the same body, id %s, as %s", p.body, id[1], posts[0].body)
				}
			}
			if tc.ok && s.Sample() != 0.5 {
				t.Fatalf("Sample() = %v after the server answered 0.5", s.Sample())
			}
		})
	}
}

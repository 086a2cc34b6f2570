package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/internal/browsertest"
	"github.com/emojicast/emojicast/internal/testutil"
)

// apiScript is a fake emojicast API on loopback that serves the real page
// and answers the API from a script, to drive the page's protocol through
// the failures a real node does not produce on demand.
type apiScript struct {
	mu     sync.Mutex
	reqs   []apiRequest
	sample float64
}

type apiRequest struct {
	at     time.Time
	route  string // watch, poll, send
	path   string
	since  string
	count  int
	emoji  string
	id     string
	sample float64 // the sample a send says its taps were forwarded at
	status int
}

func (s *apiScript) handle(ctx *fasthttp.RequestCtx, viewer *Viewer) {
	path := string(ctx.Path())
	switch {
	case path == "/v1/emojis":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"emojis":[{"id":"love","glyph":"❤️"},{"id":"fire","glyph":"🔥"}]}`)
	case strings.HasSuffix(path, "/watch"):
		s.reply(ctx, apiRequest{route: "watch"}, 200, "",
			`{"stream":"s","user":"u","pull":"/v1/streams/s/reactions","push":"/v1/streams/s/reactions","token":"","since":100,"next_ms":300,"sample":1,"viewers":7,"emojis":[]}`)
	case strings.HasSuffix(path, "/reactions") && ctx.IsPost():
		var body struct {
			Emoji  string
			Count  int
			ID     string
			Sample float64
		}
		_ = json.Unmarshal(ctx.PostBody(), &body)
		r := apiRequest{route: "send", count: body.Count, emoji: body.Emoji, id: body.ID, sample: body.Sample}
		if s.count("send") == 0 {
			s.reply(ctx, r, 429, "1", `{"error":{"code":"rate_limited","message":"slow down"}}`)
			return
		}
		s.reply(ctx, r, 202, "", `{"status":"accepted","sample":1}`)
	case strings.HasSuffix(path, "/reactions"):
		s.poll(ctx)
	default:
		viewer.Handle(ctx)
	}
}

// poll answers the n-th poll: two failures, three seconds, a node that is
// behind, a 429, then a new second each time.
func (s *apiScript) poll(ctx *fasthttp.RequestCtx) {
	r := apiRequest{route: "poll", since: string(ctx.QueryArgs().Peek("since"))}
	s.mu.Lock()
	sample := s.sample
	s.mu.Unlock()
	answer := func(now int, buckets string) string {
		return fmt.Sprintf(`{"now":%d,"next_ms":300,"sample":%g,"viewers":42,"buckets":[%s]}`, now, sample, buckets)
	}
	switch n := s.count("poll"); n {
	case 0:
		s.reply(ctx, r, 503, "2", `{"error":{"code":"overloaded","message":"busy"}}`)
	case 1:
		s.reply(ctx, r, 500, "", "oops")
	case 2:
		s.reply(ctx, r, 200, "", answer(103, `{"t":101,"c":{"love":1}},{"t":102,"c":{"love":1}},{"t":103,"c":{"love":1}}`))
	case 3:
		s.reply(ctx, r, 200, "", answer(101, `{"t":101,"c":{"love":1}}`))
	case 4:
		s.reply(ctx, r, 429, "1", `{"error":{"code":"rate_limited","message":"slow down"}}`)
	default:
		now := 100 + n
		s.reply(ctx, r, 200, "", answer(now, fmt.Sprintf(`{"t":%d,"c":{"love":1}}`, now)))
	}
}

func (s *apiScript) reply(ctx *fasthttp.RequestCtx, r apiRequest, status int, retryAfter, body string) {
	r.at, r.status, r.path = time.Now(), status, string(ctx.Path())
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
	if retryAfter != "" {
		ctx.Response.Header.Set("Retry-After", retryAfter)
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(body)
}

func (s *apiScript) count(route string) int {
	return len(s.requests(route))
}

func (s *apiScript) requests(route string) []apiRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []apiRequest
	for _, r := range s.reqs {
		if r.route == route {
			out = append(out, r)
		}
	}
	return out
}

func (s *apiScript) setSample(p float64) {
	s.mu.Lock()
	s.sample = p
	s.mu.Unlock()
}

// TestPageProtocol: in a real browser, the page watches before it polls,
// honours Retry-After on 503 and 429, backs off on a 500, keeps its cursor
// when a node that is behind answers, shows each second once, waits about
// next_ms between polls, batches quick taps into one send that it repeats
// after a 429, and forwards taps with the advised sample probability.
func TestPageProtocol(t *testing.T) {
	viewer, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	script := &apiScript{sample: 1}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { script.handle(ctx, viewer) }}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Shutdown() })
	base := "http://" + ln.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tab := browsertest.Start(t, ctx, 1000, 800)
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/?stream=s&user=u")); err != nil {
		t.Fatal(err)
	}
	// The poll gaps are checked as floors below, which a busy machine
	// only widens; the wait leaves Chromium room to be slow.
	testutil.Eventually(t, 90*time.Second, "eight polls", func() bool { return script.count("poll") >= 8 })

	polls := script.requests("poll")
	watches := script.requests("watch")
	if len(watches) != 1 || !watches[0].at.Before(polls[0].at) {
		t.Fatalf("%d watches; want one, before the first poll", len(watches))
	}
	var sinces []string
	for _, p := range polls[:8] {
		sinces = append(sinces, p.since)
	}
	// 503, 500 and the 200 ask since=100; the node behind (now 101) must
	// not move the cursor back from 103; the 429 is asked again as is.
	if got, want := strings.Join(sinces, " "), "100 100 100 103 103 103 105 106"; got != want {
		t.Errorf("polls asked since %s; want %s", got, want)
	}
	ms := time.Millisecond
	for i, min := range map[int]time.Duration{
		1: 2000 * ms, // Retry-After: 2 on the 503
		2: 500 * ms,  // second failure in a row: 1s -50%
		3: 270 * ms,  // next_ms 300 -10%
		4: 270 * ms,
		5: 1000 * ms, // Retry-After: 1 on the 429
		6: 270 * ms,
	} {
		if gap := polls[i].at.Sub(polls[i-1].at); gap < min {
			t.Errorf("poll %d came %v after poll %d (status %d); want at least %v", i, gap, i-1, polls[i-1].status, min)
		}
	}
	received := func() string {
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("stat-received").dataset.json + " " + document.getElementById("stat-seconds").textContent`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Seconds 101..103, then one a poll from poll 5 on (poll n answers
	// now=100+n): after N polls, N-2 seconds, each counted once; N-3 while
	// the last answer is on its way.
	testutil.Eventually(t, 10*time.Second, "seconds counted once", func() bool {
		n, got := script.count("poll"), received()
		return got == fmt.Sprintf(`{"love":%d} %d`, n-2, n-2) || got == fmt.Sprintf(`{"love":%d} %d`, n-3, n-3)
	})

	// Three quick taps are one send of count 3; refused with 429, it goes
	// again after Retry-After, still one send of 3.
	for range 3 {
		if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(`button[data-emoji="love"]:enabled`))); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, "the send is accepted", func() bool { return script.count("send") >= 2 })
	// A send may go once more if an answer is lost (a keep-alive
	// connection closed under it): the same id, which the server counts
	// once.
	sends := script.requests("send")
	if len(sends) < 2 || sends[0].count != 3 || sends[1].count != 3 || sends[1].at.Sub(sends[0].at) < time.Second {
		t.Errorf("sends %+v; want count 3 refused with 429, then count 3 again at least 1s later", sends)
	}
	for _, snd := range sends {
		if snd.id == "" || snd.id != sends[0].id {
			t.Errorf("sends %+v; want one send, its id on every try", sends)
			break
		}
	}
	for _, snd := range sends {
		if snd.sample != 1 {
			t.Errorf("a send says its taps were sampled at %v; the page forwarded them at sample 1", snd.sample)
		}
	}

	// At sample 0.001 nearly every tap stays on the phone.
	script.setSample(0.001)
	testutil.Eventually(t, 10*time.Second, "the page adopts sample 0.001", func() bool {
		v, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("stat-sample").textContent`))
		return v == "0.001"
	})
	for range 30 {
		if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(`button[data-emoji="fire"]`))); err != nil {
			t.Fatal(err)
		}
	}
	// A forwarded tap would be sent within 300 ms; wait for two more polls.
	n := script.count("poll")
	testutil.Eventually(t, 10*time.Second, "two more polls", func() bool { return script.count("poll") >= n+2 })
	// Only fire taps count: the love send above may be tried once more.
	forwarded := 0
	for _, s := range script.requests("send") {
		if s.emoji == "fire" {
			forwarded += s.count
		}
	}
	if forwarded > 2 {
		t.Errorf("%d of 30 taps forwarded at sample 0.001; want almost none (sends %+v)", forwarded, script.requests("send"))
	}

	// Typing another stream watches it, and the address says which.
	if err := chromedp.Do(tab, chromedp.Evaluate[chromedp.Void](`document.getElementById("stream").value = ""`), chromedp.SendKeys(chromedp.ID("stream"), "launch-2026\n")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "a watch of the typed stream", func() bool {
		w := script.requests("watch")
		return w[len(w)-1].path == "/v1/streams/launch-2026/watch"
	})
	if loc, err := chromedp.Run(tab, chromedp.Evaluate[string](`location.search`)); err != nil || !strings.Contains(loc, "stream=launch-2026") {
		t.Errorf("after picking launch-2026 the address has %q (%v)", loc, err)
	}
}

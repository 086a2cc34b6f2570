package web

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/internal/browsertest"
	"github.com/emojicast/emojicast/internal/testutil"
)

// TestReplayProtocol: in a real browser, /?stream=s&at=T asks for history
// a whole hour at a time (the ranges every replaying viewer and a CDN
// share), waits out a 503's Retry-After, plays every second once, and once
// it has caught up with what is sealed asks only for the rest of the hour
// from the current minute on.
func TestReplayProtocol(t *testing.T) {
	viewer, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	const hour = 1_795_618_800 // a whole hour
	const at = hour + 3590     // near its end, so the replay reaches the present soon
	script := &apiScript{sample: 1}
	history := func(ctx *fasthttp.RequestCtx) {
		args := ctx.QueryArgs()
		r := apiRequest{route: "history", since: string(args.Peek("from")) + "-" + string(args.Peek("to"))}
		switch n := script.count("history"); {
		case n == 0:
			script.reply(ctx, r, 503, "1", `{"error":{"code":"unavailable","message":"busy"}}`)
		case n == 1:
			// Sealed up to at+3: four seconds to play, then the present.
			script.reply(ctx, r, 200, "", fmt.Sprintf(`{"from":%d,"to":%d,"buckets":[{"t":%d,"c":{"love":2}},{"t":%d,"c":{"fire":1},"m":[{"u":"a","x":"hi"}]}]}`,
				hour, at+3, at+1, at+3))
		default:
			script.reply(ctx, r, 200, "", fmt.Sprintf(`{"from":%s,"to":%d,"buckets":[{"t":%d,"c":{"love":5}}]}`,
				args.Peek("from"), hour+3599, at+5))
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if strings.HasSuffix(string(ctx.Path()), "/history") {
			history(ctx)
			return
		}
		script.handle(ctx, viewer)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Shutdown() })
	base := "http://" + ln.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tab := browsertest.Start(t, ctx, 1000, 800)
	if err := chromedp.Do(tab, chromedp.Navigate(fmt.Sprintf("%s/?stream=s&at=%d", base, at))); err != nil {
		t.Fatal(err)
	}
	received := func() string {
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("stat-received").dataset.json + " " + document.getElementById("stat-comments").textContent`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	testutil.Eventually(t, 30*time.Second, "every replayed second played once", func() bool {
		return received() == `{"love":7,"fire":1} 1`
	})
	reqs := script.requests("history")
	want := []string{
		fmt.Sprintf("%d-%d", hour, hour+3599),         // the 503
		fmt.Sprintf("%d-%d", hour, hour+3599),         // the whole hour again
		fmt.Sprintf("%d-%d", (at+4)/60*60, hour+3599), // caught up: from the minute on
	}
	if len(reqs) < 3 {
		t.Fatalf("%d history requests; want 3", len(reqs))
	}
	for i, w := range want {
		if reqs[i].since != w {
			t.Errorf("history request %d asked for %s; want %s", i, reqs[i].since, w)
		}
	}
	if gap := reqs[1].at.Sub(reqs[0].at); gap < time.Second {
		t.Errorf("the request after a 503 with Retry-After: 1 came %v later; want at least 1s", gap)
	}
	if n := len(script.requests("watch")) + len(script.requests("poll")); n != 0 {
		t.Errorf("a replay made %d live watch or poll requests; want none", n)
	}
	time.Sleep(1500 * time.Millisecond)
	if got := received(); got != `{"love":7,"fire":1} 1` {
		t.Errorf("after the hour was complete the page shows %s; a second was played twice", got)
	}
}

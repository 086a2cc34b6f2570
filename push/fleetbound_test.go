package push_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/ratelimit"
	"github.com/emojicast/emojicast/store"
)

// fleetBound is the bound docs/api.md states for one key spread over n
// push nodes over a window of t seconds: with b = max(burst, 2w) the
// most the key may owe (w the weight of one send) and limit = rate*t + b,
// at most limit + n*limit/KeptShare (what each node keeps without asking
// the fleet) + (n-1)*(rate*exchange + b) (what the other nodes grant
// before their next exchange, a whole debt each before their first).
func fleetBound(n int, rate, t float64, b int64, exchange time.Duration) float64 {
	limit := rate*t + float64(b)
	return limit + float64(n)*limit/ratelimit.KeptShare + float64(n-1)*(rate*exchange.Seconds()+float64(b))
}

// TestFleetBoundHoldsOnRealNodes: one user sends to every one of N push
// processes on one Redis every 50 ms for a second, unsampled and at an
// advertised divisor of 10; what the fleet counts stays within the bound
// the docs state. (Before, review finding 5: the docs promised
// (rate*T + burst)(1 + N/4), which N nodes each granting a whole burst or
// debt before their first exchange exceed: N=6, k=1: 120 allowed against
// 75; N=3, k=10: 1,200 against 718.)
func TestFleetBoundHoldsOnRealNodes(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		n int
		k int64
	}{{3, 1}, {6, 1}, {3, 10}, {6, 10}} {
		t.Run(fmt.Sprintf("N=%d,k=%d", tc.n, tc.k), func(t *testing.T) {
			client, err := store.NewRedisClient(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			st, err := store.NewRedis(store.RedisOptions{Client: client, Prefix: fmt.Sprintf("fb%d-%d", tc.n, tc.k)})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			body := `{"emoji":"love","count":20,"user":"u"}`
			if tc.k > 1 {
				body = fmt.Sprintf(`{"emoji":"love","count":20,"user":"u","sample":%g}`, 1/float64(tc.k))
				if err := st.ReportControl(context.Background(), "pull", []store.ControlReport{{Stream: "s", Viewers: 1, Divisor: tc.k}}); err != nil {
					t.Fatal(err)
				}
			}
			var nodes []*push.Push
			for range tc.n {
				p, err := push.New(push.Options{Targets: []push.Target{{Store: st}}, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				p.Start()
				defer p.Stop(context.Background())
				nodes = append(nodes, p)
			}
			var ctx fasthttp.RequestCtx
			var weighted int64
			start := time.Now()
			for time.Since(start) < time.Second {
				for _, p := range nodes {
					ctx.Request.Reset()
					ctx.Response.Reset()
					ctx.Request.Header.SetMethod("POST")
					ctx.Request.Header.SetContentType("application/json")
					ctx.Request.SetBodyString(body)
					p.HandleReactions(&ctx, []byte("s"), nil)
					if ctx.Response.StatusCode() == fasthttp.StatusAccepted {
						weighted += 20 * tc.k
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
			el := time.Since(start).Seconds()
			b := int64(push.DefaultUserBurst)
			if tc.k > 1 {
				b = max(b, 2*20*tc.k)
			}
			bound := fleetBound(tc.n, push.DefaultUserRate, el, b, push.DefaultFlushInterval)
			t.Logf("N=%d k=%d: %d weighted taps allowed in %.2f s; bound %.0f", tc.n, tc.k, weighted, el, bound)
			if float64(weighted) > bound {
				t.Errorf("%d weighted taps allowed; want at most the documented bound %.0f", weighted, bound)
			}
		})
	}
}

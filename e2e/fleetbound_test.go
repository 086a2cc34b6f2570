package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/ratelimit"
	"github.com/emojicast/emojicast/store"
)

// fleetBound is the bound docs/api.md states for one key spread over n
// push nodes over a window of t seconds: with b the most the key may owe
// at once (the burst, or twice a sampled send's weight) and
// limit = rate*t + b, at most limit + n*limit/KeptShare (what each node
// keeps without asking the fleet) + (n-1)*(rate*exchange + b) (what the
// other nodes grant before their next exchange, a whole b each before
// their first).
func fleetBound(n int, rate, t float64, b int64, exchange time.Duration) float64 {
	limit := rate*t + float64(b)
	return limit + float64(n)*limit/ratelimit.KeptShare + float64(n-1)*(rate*exchange.Seconds()+float64(b))
}

// TestFleetBoundOnPushProcesses: six push processes on one Redis. One
// user sends count 20 to each of N of them every 50 ms for a second,
// unsampled and stating an advertised divisor of 10; then one address
// does the same with a fresh user id per send. What the fleet counts stays
// within the bound the docs state, for the user and for the address group.
// (Before, review finding 5: the docs promised (rate*T + burst)(1 + N/4),
// which N nodes each granting a whole burst or debt before their first
// exchange exceed: N=6, k=1: 120 allowed against 75; N=3, k=10: 1,200
// against 718.)
func TestFleetBoundOnPushProcesses(t *testing.T) {
	t.Parallel()
	rd := redistest.Start(t)
	var pushes []*proc
	for i := range 6 {
		pushes = append(pushes, startProc(t, fmt.Sprintf("push-%d", i+1), "push", "--redis", rd.URL(), "--log-level", "warn"))
	}
	for _, p := range pushes {
		p.waitReady()
	}
	client, err := store.NewRedisClient(rd.URL())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.NewRedis(store.RedisOptions{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Each case has its own address, so the address limits of one case
	// never meet another's.
	addr := byte(60)
	for _, tc := range []struct {
		n           int
		k           int64
		freshIDs    bool
		rate, burst float64
	}{
		{3, 1, false, push.DefaultUserRate, push.DefaultUserBurst},
		{6, 1, false, push.DefaultUserRate, push.DefaultUserBurst},
		{3, 10, false, push.DefaultUserRate, push.DefaultUserBurst},
		{6, 10, false, push.DefaultUserRate, push.DefaultUserBurst},
		{3, 10, true, push.DefaultAddrWeightRate, push.DefaultAddrWeightBurst},
		{6, 10, true, push.DefaultAddrWeightRate, push.DefaultAddrWeightBurst},
	} {
		addr++
		name := fmt.Sprintf("N=%d,k=%d,fresh ids=%v", tc.n, tc.k, tc.freshIDs)
		stream := fmt.Sprintf("bound%d", addr)
		if tc.k > 1 {
			if err := st.ReportAudience(context.Background(), "pull", []store.AudienceReport{{Stream: stream, Viewers: 1, Divisor: tc.k}}); err != nil {
				t.Fatal(err)
			}
		}
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 3, addr)}
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4, DialContext: (&net.Dialer{LocalAddr: local}).DialContext}}
		var weighted int64
		start := time.Now()
		for i := 0; time.Since(start) < time.Second; i++ {
			for _, p := range pushes[:tc.n] {
				user := stream + "-user"
				if tc.freshIDs {
					user = fmt.Sprintf("fresh-%d-%s", i, p.name)
				}
				body := fmt.Sprintf(`{"emoji":"love","count":20,"user":%q,"sample":%g}`, user, 1/float64(tc.k))
				resp, err := hc.Post(p.url+"/v1/streams/"+stream+"/reactions", "application/json", strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					weighted += 20 * tc.k
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		el := time.Since(start).Seconds()
		hc.CloseIdleConnections()
		b := int64(tc.burst)
		if tc.k > 1 && !tc.freshIDs {
			b = max(b, 2*20*tc.k)
		}
		bound := fleetBound(tc.n, tc.rate, el, b, push.DefaultFlushInterval)
		t.Logf("%s: %d weighted taps allowed in %.2f s; bound %.0f", name, weighted, el, bound)
		if float64(weighted) > bound {
			t.Errorf("%s: %d weighted taps allowed; want at most the documented bound %.0f", name, weighted, bound)
		}
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// The hostile edge tests attack the origin through a real nginx running
// deploy/nginx.conf, as a client on the internet would.

// transportFrom is a raw transport whose connections come from the
// loopback address local (127.0.0.2, ...), so a test can play several
// clients of the edge.
func transportFrom(t *testing.T, local string) *http.Transport {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DisableCompression: true, DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// TestEdgeNamesTheClientItSaw: behind the edge, with --trusted-proxies set
// to it as the docs require, a forged X-Forwarded-For does not make a new
// client (the per-address watch limit holds for rotating values), and two
// clients of the edge have an allowance each.
func TestEdgeNamesTheClientItSaw(t *testing.T) {
	t.Parallel()
	origin := startProc(t, "serve", "serve", "--log-level", "warn", "--trusted-proxies", "127.0.0.1",
		"--ip-watch-rate", "0.001", "--ip-watch-burst", "5")
	e := startEdge(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)})
	watch := func(tr http.RoundTripper, forged string) int {
		h := []string{}
		if forged != "" {
			h = append(h, "X-Forwarded-For", forged)
		}
		resp, body := testutil.RoundTrip(t, tr, "GET", e.url+"/v1/streams/s/watch?user=u1", "", h...)
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("watch through the edge: %d %s", resp.StatusCode, body)
		}
		return resp.StatusCode
	}
	attacker := transportFrom(t, "127.0.0.2")
	through := 0
	for i := range 30 {
		if watch(attacker, fmt.Sprintf("198.51.100.%d", i)) == http.StatusOK {
			through++
		}
	}
	if through != 5 {
		t.Fatalf("%d of 30 watches with forged X-Forwarded-For got through; want the burst of 5", through)
	}
	other := transportFrom(t, "127.0.0.3")
	for i := range 5 {
		if code := watch(other, ""); code != http.StatusOK {
			t.Fatalf("watch %d of a second client of the edge: %d; want its own allowance", i, code)
		}
	}
}

// TestEdgeKeepsUpstreamConnections: poll misses reuse the edge's
// keep-alive connections to the origin instead of opening one each.
func TestEdgeKeepsUpstreamConnections(t *testing.T) {
	t.Parallel()
	origin := startProc(t, "serve", "serve", "--log-level", "warn")
	e := startEdge(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)})
	rawGet(t, e.url+"/v1/streams/s/reactions")
	before := origin.metric("emojicast_http_connections_accepted_total")
	const misses = 20
	for i := range misses {
		// Every cursor is its own cache entry: each poll reaches the origin.
		a := rawGet(t, fmt.Sprintf("%s/v1/streams/s/reactions?since=%d", e.url, 1_000_000+i))
		if h := e.lastHit(); a.status != http.StatusOK || h.cache != "MISS" {
			t.Fatalf("poll %d: %d, cache %s; want a miss answered", i, a.status, h.cache)
		}
	}
	// The metric reads themselves take a connection each.
	if opened := origin.metric("emojicast_http_connections_accepted_total") - before - 1; opened > 3 {
		t.Fatalf("%d poll misses opened %.0f connections to the origin; want them kept alive", misses, opened)
	}
}

// TestEdgeCORSPerOrigin: with two allowed origins, each page gets an answer
// that names its own origin, never the other's cached one.
func TestEdgeCORSPerOrigin(t *testing.T) {
	t.Parallel()
	const a, b = "https://a.example", "https://b.example"
	origin := startProc(t, "serve", "serve", "--log-level", "warn", "--cors-origins", a+","+b)
	e := startEdgeCORS(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)}, []string{a, b})
	var since int64
	testutil.Eventually(t, 10*time.Second, "a cacheable poll answer", func() bool {
		r := rawGet(t, e.url+"/v1/streams/cors/reactions")
		var pb pollAnswer
		_ = json.Unmarshal(r.body, &pb)
		since = pb.Now
		return r.header.Get("Cache-Control") == pollCaching
	})
	poll := fmt.Sprintf("%s/v1/streams/cors/reactions?since=%d", e.url, since)
	for range 3 {
		for _, o := range []string{a, b} {
			r := rawGet(t, poll, "Origin", o)
			if got := r.header.Get("Access-Control-Allow-Origin"); r.status != http.StatusOK || got != o {
				t.Fatalf("poll from %s: %d, Access-Control-Allow-Origin %q; want its own origin", o, r.status, got)
			}
		}
	}
	if r := rawGet(t, poll, "Origin", "https://evil.example"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a page of another origin got Access-Control-Allow-Origin %q", r.header.Get("Access-Control-Allow-Origin"))
	}
}

// TestEdgeHidesOperations: /metrics and /readyz are for the operator's
// network; through the edge they are 404 in every spelling.
func TestEdgeHidesOperations(t *testing.T) {
	t.Parallel()
	origin := startProc(t, "serve", "serve", "--log-level", "warn")
	e := startEdge(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)})
	for _, path := range []string{"/metrics", "/readyz", "//metrics", "/metrics?x=1", "/%6detrics", "/v1/../readyz", "/./metrics"} {
		r := rawGet(t, e.url+path)
		if r.status != http.StatusNotFound || !json.Valid(r.body) {
			t.Fatalf("GET %s through the edge: %d %.200q; want a 404 JSON error", path, r.status, r.body)
		}
	}
	if r := rawGet(t, e.url+"/healthz"); r.status != http.StatusOK {
		t.Fatalf("/healthz through the edge: %d", r.status)
	}
}

// originRouteRequests sums the origin's requests_total of a route, every
// status.
func originRouteRequests(p *proc, route string) float64 {
	_, body := p.get("/metrics")
	n := 0.0
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, `emojicast_http_requests_total{route="`+route+`",`); ok {
			if _, v, ok := strings.Cut(rest, "} "); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				n += f
			}
		}
	}
	return n
}

// TestEdgeHidesAdmin: the operators' API and page are for the operator's
// network; through the edge they are 404 in every spelling nginx would
// route, even with the right token, and nothing of them reaches the
// origin's admin routes.
func TestEdgeHidesAdmin(t *testing.T) {
	t.Parallel()
	const token = "edge-admin-token-0123456789"
	origin := startProc(t, "serve", "serve", "--log-level", "warn", "--admin-token", "ops:"+token)
	e := startEdge(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)})
	if r := rawGet(t, origin.url+"/v1/admin/streams", "Authorization", "Bearer "+token); r.status != http.StatusOK {
		t.Fatalf("the admin API at the origin: %d %s", r.status, r.body)
	}
	adminBefore, indexBefore := originRouteRequests(origin, "admin"), originRouteRequests(origin, "index")
	paths := []string{
		"/admin", "/admin/", "/admin?x=1", "//admin", "/./admin", "/static/../admin", "/%61dmin", "/ADMIN", "/Admin",
		"/v1/admin/streams", "/v1/admin/", "/v1//admin/streams", "//v1/admin/streams", "/v1/./admin/streams",
		"/v1/x/../admin/streams", "/v1%2fadmin/streams", "/v1/%61dmin/streams", "/%2fv1/admin/streams",
		"/V1/ADMIN/streams", "/v1/Admin/streams", "/v1/admin/streams/s/bans",
	}
	for _, path := range paths {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			r := rawDo(t, method, e.url+path, "", "Authorization", "Bearer "+token)
			var body struct{ Error struct{ Code string } }
			if r.status != http.StatusNotFound || json.Unmarshal(r.body, &body) != nil || body.Error.Code != "not_found" {
				t.Fatalf("%s %s through the edge: %d %.200q; want a 404 JSON error", method, path, r.status, r.body)
			}
		}
	}
	if got := originRouteRequests(origin, "admin") - adminBefore; got != 0 {
		t.Fatalf("%v admin API requests reached the origin through the edge; want none", got)
	}
	if got := originRouteRequests(origin, "index") - indexBefore; got != 0 {
		t.Fatalf("%v page requests reached the origin through the edge; want none", got)
	}
	if r := rawGet(t, e.url+"/"); r.status != http.StatusOK {
		t.Fatalf("the viewer page through the edge: %d", r.status)
	}
}

// cacheablePoll waits until the edge's answer to a stream's poll is
// cacheable and returns the poll URL with that answer's cursor.
func cacheablePoll(t *testing.T, e *edge, stream string) string {
	t.Helper()
	var since int64
	testutil.Eventually(t, 10*time.Second, "a cacheable poll answer", func() bool {
		r := rawGet(t, e.url+"/v1/streams/"+stream+"/reactions")
		var pb pollAnswer
		_ = json.Unmarshal(r.body, &pb)
		since = pb.Now
		return r.header.Get("Cache-Control") == pollCaching
	})
	return fmt.Sprintf("%s/v1/streams/%s/reactions?since=%d", e.url, stream, since)
}

// TestEdgeOriginDoesNotSplitCache: an Origin header enters the edge's
// cache key only when it is one the origins allow by name. Polls and
// history replays with a new Origin each, none allowed, cost the origin no
// more than the same requests without one (plus the answers' refresh
// each second), and leave no cache entry each; with CORS off as with a
// list of origins.
func TestEdgeOriginDoesNotSplitCache(t *testing.T) {
	t.Parallel()
	const allowed = "https://app.example"
	for _, tc := range []struct {
		name string
		cors []string
	}{{"cors off", nil}, {"a list of origins", []string{allowed}}} {
		t.Run(tc.name, func(t *testing.T) {
			// Every request comes from the edge's address: the origin's
			// per-address poll limit must not be what stops the misses.
			args := []string{"serve", "--log-level", "warn", "--ip-poll-rate", "100000", "--ip-poll-burst", "100000"}
			if tc.cors != nil {
				args = append(args, "--cors-origins", strings.Join(tc.cors, ","))
			}
			origin := startProc(t, "serve", args...)
			e := startEdgeCORS(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)}, tc.cors)
			poll := cacheablePoll(t, e, "split")
			const n = 150
			polls := func(origins bool) (reached float64, took time.Duration) {
				start, before := time.Now(), originPolls(origin)
				for i := range n {
					var h []string
					if origins {
						h = []string{"Origin", fmt.Sprintf("https://x%d.example", i)}
					}
					if r := rawGet(t, poll, h...); r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "" {
						t.Fatalf("poll %d: %d, Access-Control-Allow-Origin %q", i, r.status, r.header.Get("Access-Control-Allow-Origin"))
					}
				}
				return originPolls(origin) - before, time.Since(start)
			}
			without, _ := polls(false)
			with, took := polls(true)
			t.Logf("%d polls reached the origin %v times without Origin, %v with a new Origin each (%v)", n, without, with, took.Round(time.Millisecond))
			// An answer lives a second: each second may refresh it once.
			if slack := 2 + took.Seconds(); with > without+slack {
				t.Fatalf("%d polls with a new Origin each reached the origin %v times, %v without Origins; want at most %.0f more",
					n, with, without, slack)
			}
			if got := len(cacheKeys(t, e)); got > 2 {
				t.Fatalf("the edge holds %d cached polls after %d Origins; want one (two if the cursor's answer was refreshed across a second)", got, n)
			}
			if tc.cors != nil {
				r := rawGet(t, poll, "Origin", allowed)
				if got := r.header.Get("Access-Control-Allow-Origin"); got != allowed {
					t.Fatalf("a page of the allowed origin got Access-Control-Allow-Origin %q", got)
				}
			}

			hour := time.Now().Unix()/60*60 - 3600
			replay := fmt.Sprintf("%s/v1/streams/split/history?from=%d&to=%d", e.url, hour, hour+3599)
			before := originRouteRequests(origin, "history")
			for i := range n {
				if r := rawGet(t, replay, "Origin", fmt.Sprintf("https://x%d.example", i)); r.status != http.StatusOK {
					t.Fatalf("replay %d: %d %s", i, r.status, r.body)
				}
			}
			if got := originRouteRequests(origin, "history") - before; got > 1 {
				t.Fatalf("%d replays of one sealed hour with a new Origin each reached the origin %v times; want once", n, got)
			}
		})
	}
}

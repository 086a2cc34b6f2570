package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/pull"
)

// The Varnish edge tests run deploy/varnish.vcl, the second shipped edge,
// with a real varnishd, through checks the nginx edge passes.

// startVarnishEdge renders deploy/varnish.vcl for the given pull and push
// origins (host:port each) and the origins' CORS list, runs varnishd with
// it on a free port until the test ends, and returns its URL.
func startVarnishEdge(t *testing.T, pull, push, corsOrigins []string) string {
	t.Helper()
	url, _ := startVarnishEdgeWork(t, pull, push, corsOrigins)
	return url
}

// startVarnishEdgeWork is startVarnishEdge, also returning varnishd's
// working directory (-n), where varnishncsa reads its log.
func startVarnishEdgeWork(t *testing.T, pull, push, corsOrigins []string) (url, work string) {
	t.Helper()
	dir := t.TempDir()
	tmpl, err := template.ParseFiles(filepath.Join("..", "deploy", "varnish.vcl"))
	if err != nil {
		t.Fatal(err)
	}
	vcl := filepath.Join(dir, "edge.vcl")
	f, err := os.Create(vcl)
	if err != nil {
		t.Fatal(err)
	}
	err = tmpl.Execute(f, map[string]any{"Pull": pull, "Push": push, "CORSOrigins": corsOrigins})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	addr, work := startVarnishd(t, "-f", vcl)
	return "http://" + addr, work
}

// varnishFeedQuery and varnishFeedFormat are the edge log feed of
// docs/operations.md ("A Varnish edge"): one line per poll the edge
// answered, METHOD URI STATUS CLIENT.
const (
	varnishFeedQuery  = `ReqMethod ~ "^(GET|HEAD)$" and ReqURL ~ "^/v1/streams/[^/]+/reactions"`
	varnishFeedFormat = "%m %U %s %h"
)

// startVarnishFeed runs the documented pipeline until the test ends:
// varnishncsa reading the edge's log into logger, which sends each line as
// syslog over UDP, tagged with edgeLogSecret, to feed (a pull node's
// --edge-log-listen).
func startVarnishFeed(t *testing.T, work, feed string) {
	t.Helper()
	host, port, err := net.SplitHostPort(feed)
	if err != nil {
		t.Fatal(err)
	}
	ncsa := testutil.NeedsProgram(t, "varnishncsa")
	logger := testutil.NeedsProgram(t, "logger")
	script := fmt.Sprintf("exec %q -n %q -q %q -F %q | exec %q --udp --rfc3164 --server %q --port %q --tag %q",
		ncsa, work, varnishFeedQuery, varnishFeedFormat, logger, host, port, edgeLogSecret)
	cmd := exec.Command("sh", "-c", script)
	logs := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("varnishncsa | logger output:\n%s", logs.String())
		}
	})
}

// TestVarnishEdgeFeedCountsTrueAudience: 200 viewers (four per client
// address) poll one stream through the Varnish edge, which answers almost
// all of them from its cache; the feed (varnishncsa into logger) lets the
// pull node count them all.
func TestVarnishEdgeFeedCountsTrueAudience(t *testing.T) {
	t.Parallel()
	const audience = 200
	feed := fmt.Sprintf("127.0.0.1:%d", testutil.FreeUDPPort(t))
	pl := startProc(t, "pull", "serve", "--log-level", "warn",
		"--edge-log-listen", feed, "--edge-log-secret", edgeLogSecret, "--trusted-proxies", "127.0.0.1",
		"--quiet-next-ms", "2000", "--quiet-max-next-ms", "2000", "--busy-next-ms", "2000",
		"--ip-poll-rate", "1000000", "--ip-poll-burst", "1000000")
	addr := hostOf(t, pl.url)
	e, work := startVarnishEdgeWork(t, []string{addr}, []string{addr}, nil)
	startVarnishFeed(t, work, feed)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range audience {
		wg.Go(func() {
			group := i / pull.DefaultViewersPerAddress
			local := &net.TCPAddr{IP: net.IPv4(127, 3, byte(group/250), byte(group%250+1))}
			dialer := &net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DialContext: dialer.DialContext}}
			defer client.CloseIdleConnections()
			wait := time.Duration(i) * 2 * time.Second / audience
			var cursor int64
			for {
				select {
				case <-stop:
					return
				case <-time.After(wait):
				}
				url := e + "/v1/streams/crowd/reactions"
				if cursor > 0 {
					url += fmt.Sprintf("?since=%d", cursor)
				}
				wait = 2 * time.Second
				resp, err := client.Get(url)
				if err != nil {
					continue
				}
				var pb struct {
					Now    int64 `json:"now"`
					NextMS int64 `json:"next_ms"`
				}
				if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&pb) == nil {
					cursor = max(cursor, pb.Now)
					wait = time.Duration(pb.NextMS) * time.Millisecond
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	var viewers int64
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("viewers within 10%% of %d", audience), func() bool {
		var pb struct {
			Viewers int64 `json:"viewers"`
		}
		getJSON(t, pl.url+"/v1/streams/crowd/reactions", &pb)
		viewers = pb.Viewers
		return math.Abs(float64(viewers-audience)) <= audience/10
	})
	polls := originPolls(pl)
	if fed := pl.metric("emojicast_pull_edge_polls_total"); fed < audience {
		t.Errorf("the feed reported %v polls; want every viewer's, at least %d", fed, audience)
	}
	t.Logf("%d viewers behind the Varnish edge: viewers = %d; %v polls counted from the feed, %.0f answered by the node", audience, viewers, pl.metric("emojicast_pull_edge_polls_total"), polls)
}

// TestVarnishEdgeSharesPolls: polls of one cursor from viewers with their
// own tokens, user ids and spellings of Accept-Encoding are one cache
// entry: the origin answers about one of them a second, and none gets
// another's token back.
func TestVarnishEdgeSharesPolls(t *testing.T) {
	t.Parallel()
	origin := startProc(t, "serve", "serve", "--log-level", "warn", "--trusted-proxies", "127.0.0.1")
	e := startVarnishEdge(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)}, nil)
	var since int64
	testutil.Eventually(t, 10*time.Second, "a cacheable poll answer", func() bool {
		r := rawGet(t, e+"/v1/streams/shared/reactions")
		var pb struct {
			Now int64 `json:"now"`
		}
		_ = json.Unmarshal(r.body, &pb)
		since = pb.Now
		return r.header.Get("Cache-Control") == pollCaching
	})
	before := originPolls(origin)
	start := time.Now()
	const polls = 60
	for i := range polls {
		ae := []string{"gzip", "gzip, deflate, br, zstd", ""}[i%3]
		r := rawGet(t, fmt.Sprintf("%s/v1/streams/shared/reactions?since=%d&user=u%d&cb=%d", e, since, i, i),
			"Accept-Encoding", ae, "Authorization", fmt.Sprintf("Bearer token-%d", i), "Cache-Control", "max-age=0")
		if r.status != http.StatusOK {
			t.Fatalf("poll %d through the edge: %d %s", i, r.status, r.body)
		}
		if ae == "" && r.header.Get("Content-Encoding") != "" {
			t.Fatalf("a client that takes no gzip got Content-Encoding %q", r.header.Get("Content-Encoding"))
		}
	}
	reached := originPolls(origin) - before
	if secs := time.Since(start).Seconds(); reached > 2*(secs+1) {
		t.Fatalf("%d polls of one cursor in %.1f s reached the origin %.0f times; want about one a second", polls, secs, reached)
	}
}

// TestVarnishEdgeHidesOperationsAndAdmin: /metrics, /readyz, the admin API
// and the ops page are 404 through the edge in every spelling the nginx
// edge's tests try, and none reaches the origin.
func TestVarnishEdgeHidesOperationsAndAdmin(t *testing.T) {
	t.Parallel()
	const token = "edge-admin-token-0123456789"
	origin := startProc(t, "serve", "serve", "--log-level", "warn", "--admin-token", "ops:"+token)
	e := startVarnishEdge(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)}, nil)
	adminBefore, indexBefore := originRouteRequests(origin, "admin"), originRouteRequests(origin, "index")
	paths := []string{
		"/metrics", "/readyz", "//metrics", "/metrics?x=1", "/%6detrics", "/v1/../readyz", "/./metrics", "/METRICS",
		"/admin", "/admin/", "/admin?x=1", "//admin", "/./admin", "/static/../admin", "/%61dmin", "/ADMIN", "/Admin",
		"/v1/admin/streams", "/v1/admin/", "/v1//admin/streams", "//v1/admin/streams", "/v1/./admin/streams",
		"/v1/x/../admin/streams", "/v1%2fadmin/streams", "/v1/%61dmin/streams", "/%2fv1/admin/streams",
		"/V1/ADMIN/streams", "/v1/Admin/streams", "/v1/admin/streams/s/bans",
	}
	for _, path := range paths {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			r := rawDo(t, method, e+path, "", "Authorization", "Bearer "+token)
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
	for _, path := range []string{"/", "/healthz"} {
		if r := rawGet(t, e+path); r.status != http.StatusOK {
			t.Fatalf("GET %s through the edge: %d", path, r.status)
		}
	}
}

// TestVarnishEdgeNamesTheClientItSaw: a forged X-Forwarded-For does not
// make a new client at the origin (its per-address watch limit holds for
// rotating values), and two clients of the edge have an allowance each.
func TestVarnishEdgeNamesTheClientItSaw(t *testing.T) {
	t.Parallel()
	origin := startProc(t, "serve", "serve", "--log-level", "warn", "--trusted-proxies", "127.0.0.1",
		"--ip-watch-rate", "0.001", "--ip-watch-burst", "5")
	e := startVarnishEdge(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)}, nil)
	watch := func(tr http.RoundTripper, forged string) int {
		h := []string{}
		if forged != "" {
			h = append(h, "X-Forwarded-For", forged)
		}
		resp, body := testutil.RoundTrip(t, tr, "GET", e+"/v1/streams/s/watch?user=u1", "", h...)
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

// TestVarnishEdgeStreamAffinity: behind the edge, every stream is served
// by exactly one of two pull nodes, and both serve some.
func TestVarnishEdgeStreamAffinity(t *testing.T) {
	t.Parallel()
	a := startProc(t, "pull-a", "serve", "--log-level", "warn")
	b := startProc(t, "pull-b", "serve", "--log-level", "warn")
	e := startVarnishEdge(t, []string{hostOf(t, a.url), hostOf(t, b.url)}, []string{hostOf(t, a.url)}, nil)
	const streams = 40
	for round := range 3 {
		for i := range streams {
			r := rawGet(t, fmt.Sprintf("%s/v1/streams/aff-%02d/reactions?round=%d", e, i, round))
			if r.status != http.StatusOK {
				t.Fatalf("poll of aff-%02d through the edge: %d %s", i, r.status, r.body)
			}
		}
	}
	na, nb := a.metric("emojicast_pull_active_streams"), b.metric("emojicast_pull_active_streams")
	if na+nb != streams || na == 0 || nb == 0 {
		t.Fatalf("the pull nodes serve %v and %v streams; want %d in all, each on one node, both nodes some", na, nb, streams)
	}
}

// TestVarnishEdgeCORSPerOrigin: with two allowed origins, each page gets an
// answer that names its own origin, never the other's cached one, and a
// page of another origin gets none.
func TestVarnishEdgeCORSPerOrigin(t *testing.T) {
	t.Parallel()
	const a, b = "https://a.example", "https://b.example"
	origin := startProc(t, "serve", "serve", "--log-level", "warn", "--cors-origins", a+","+b)
	e := startVarnishEdge(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)}, []string{a, b})
	var since int64
	testutil.Eventually(t, 10*time.Second, "a cacheable poll answer", func() bool {
		r := rawGet(t, e+"/v1/streams/cors/reactions")
		var pb struct {
			Now int64 `json:"now"`
		}
		_ = json.Unmarshal(r.body, &pb)
		since = pb.Now
		return r.header.Get("Cache-Control") == pollCaching
	})
	poll := fmt.Sprintf("%s/v1/streams/cors/reactions?since=%d", e, since)
	for range 3 {
		for _, o := range []string{a, b, "HTTPS://A.EXAMPLE"} {
			r := rawGet(t, poll, "Origin", o)
			if got := r.header.Get("Access-Control-Allow-Origin"); r.status != http.StatusOK || !equalFoldASCII(got, o) {
				t.Fatalf("poll from %s: %d, Access-Control-Allow-Origin %q; want its own origin", o, r.status, got)
			}
		}
	}
	if r := rawGet(t, poll, "Origin", "https://evil.example"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a page of another origin got Access-Control-Allow-Origin %q", r.header.Get("Access-Control-Allow-Origin"))
	}
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

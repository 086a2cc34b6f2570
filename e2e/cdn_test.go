package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emojicast/emojicast/client"
	"github.com/emojicast/emojicast/internal/testutil"
)

// The CDN tests put a real nginx (deploy/nginx.conf, the configuration the
// README documents) in front of emojicast and check that the API's caching
// rules make it an effective, safe shared cache.

// rawClient talks to the edge without decompressing or adding headers of
// its own, so the test sees exactly what went over the wire.
var rawClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableCompression: true}}

type rawAnswer struct {
	status int
	header http.Header
	body   []byte
}

// rawGet GETs url with the given headers (name, value pairs).
func rawGet(t *testing.T, url string, header ...string) rawAnswer {
	t.Helper()
	return rawDo(t, http.MethodGet, url, "", header...)
}

func rawDo(t *testing.T, method, url, body string, header ...string) rawAnswer {
	t.Helper()
	resp, b := testutil.RoundTrip(t, rawClient.Transport, method, url, body, header...)
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

// edgeWatch watches a stream through the edge, claiming to be user, and
// returns the user the server made up, its token and the cursor.
func edgeWatch(t *testing.T, e *edge, stream, user string) (anon, token string, since int64) {
	t.Helper()
	a := rawGet(t, e.url+"/v1/streams/"+stream+"/watch?user="+user)
	var w struct {
		User  string `json:"user"`
		Token string `json:"token"`
		Since int64  `json:"since"`
	}
	if err := json.Unmarshal(a.body, &w); a.status != http.StatusOK || err != nil {
		t.Fatalf("watch as %s through the edge: %d %s (%v)", user, a.status, a.body, err)
	}
	if w.User == "" || w.User == user || w.Token == "" {
		t.Fatalf("watch as %s through the edge answered user %q token %q; want an anonymous id and its token", user, w.User, w.Token)
	}
	if h := e.lastHit(); h.cache != "-" {
		t.Fatalf("watch went through the edge's cache (%s); it carries a viewer's token", h.cache)
	}
	return w.User, w.Token, w.Since
}

var gzipMagic = []byte{0x1f, 0x8b}

// TestCDNCachesPollsNotViewers runs the edge in front of a serve process
// with tokens on and checks each caching rule: a repeated poll is a hit
// with the same bytes, If-None-Match gets 304 from the edge, gzip and plain
// are cached apart and every spelling of Accept-Encoding shares them,
// nothing of a viewer (token, user id) is stored or served to another, and
// neither watches nor sends are cached.
func TestCDNCachesPollsNotViewers(t *testing.T) {
	t.Parallel()
	origin := startProc(t, "serve", "serve", "--token-secret", "edge-test-secret-0123456789", "--log-level", "warn")
	e := startEdge(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)})
	const stream = "cdn-rules"
	users := []string{"viewer-alice-7f3", "viewer-bob-9c1"}
	anonA, tokenA, since := edgeWatch(t, e, stream, users[0])
	anonB, tokenB, _ := edgeWatch(t, e, stream, users[1])
	if tokenA == tokenB || anonA == anonB {
		t.Fatal("two viewers got the same user or token: the edge served one's watch to the other")
	}
	poll := fmt.Sprintf("%s/v1/streams/%s/reactions?since=%d", e.url, stream, since)

	// The first answers may come before the node synced the stream: those
	// are no-store and must not be cached.
	testutil.Eventually(t, 10*time.Second, "a cacheable poll answer", func() bool {
		a := rawGet(t, poll, "Accept-Encoding", "gzip")
		if h := e.lastHit(); a.header.Get("Cache-Control") == "no-store" && h.cache != "MISS" {
			t.Fatalf("a no-store answer came from the cache (%s)", h.cache)
		}
		return a.header.Get("Cache-Control") == pollCaching
	})

	t.Run("repeat is a hit", func(t *testing.T) {
		hits := 0
		for range 10 {
			a := rawGet(t, poll+"&user="+users[0], "Accept-Encoding", "gzip", "Authorization", "Bearer "+tokenA)
			first := e.lastHit()
			// As a browser asks with fetch's cache: "no-cache": the
			// request's Cache-Control must not bypass the shared cache.
			b := rawGet(t, poll+"&user="+users[1], "Accept-Encoding", "gzip, deflate, br, zstd", "Authorization", "Bearer "+tokenB,
				"Cache-Control", "max-age=0")
			second := e.lastHit()
			if a.status != http.StatusOK || b.status != http.StatusOK || !bytes.HasPrefix(b.body, gzipMagic) {
				t.Fatalf("polls answered %d and %d, body %q", a.status, b.status, b.body)
			}
			if second.cache != "HIT" {
				continue // the first answer expired in between
			}
			hits++
			if (first.cache == "HIT" || first.cache == "MISS") && !bytes.Equal(a.body, b.body) {
				t.Fatalf("a hit right after a fresh answer served other bytes")
			}
		}
		if hits < 8 {
			t.Fatalf("%d of 10 repeated polls were cache hits; want nearly all", hits)
		}
	})

	t.Run("If-None-Match gets 304 at the edge", func(t *testing.T) {
		testutil.Eventually(t, 10*time.Second, "a 304 from the edge", func() bool {
			a := rawGet(t, poll, "Accept-Encoding", "gzip")
			etag := a.header.Get("ETag")
			b := rawGet(t, poll, "Accept-Encoding", "gzip", "If-None-Match", etag)
			if b.status == http.StatusOK {
				return false // the answer moved on in between
			}
			if b.status != http.StatusNotModified || len(b.body) != 0 || b.header.Get("ETag") != etag {
				t.Fatalf("If-None-Match %s: %d, ETag %q, body %q; want 304 with no body", etag, b.status, b.header.Get("ETag"), b.body)
			}
			if h := e.lastHit(); h.cache != "HIT" {
				t.Fatalf("304 came with cache status %s; want the edge to answer it", h.cache)
			}
			return true
		})
		a := rawGet(t, poll, "Accept-Encoding", "gzip", "If-None-Match", `"not-the-etag"`)
		if a.status != http.StatusOK || len(a.body) == 0 {
			t.Fatalf("a stale ETag got %d with %d bytes; want 200 and the body", a.status, len(a.body))
		}
	})

	t.Run("Vary Accept-Encoding", func(t *testing.T) {
		for _, ae := range []string{"", "identity", "gzip;q=0", "br"} {
			a := rawGet(t, poll, "Accept-Encoding", ae)
			if a.status != http.StatusOK || a.header.Get("Content-Encoding") != "" || !json.Valid(a.body) {
				t.Fatalf("Accept-Encoding %q got %d, Content-Encoding %q, body %q; want plain JSON", ae, a.status, a.header.Get("Content-Encoding"), a.body)
			}
			if a.header.Get("Vary") != "Accept-Encoding" {
				t.Fatalf("Vary %q; want Accept-Encoding", a.header.Get("Vary"))
			}
		}
		for _, ae := range []string{"gzip", "gzip, deflate, br, zstd", "br;q=1.0, gzip;q=0.8, *;q=0.1", "x-gzip"} {
			a := rawGet(t, poll, "Accept-Encoding", ae)
			if a.header.Get("Content-Encoding") != "gzip" || !bytes.HasPrefix(a.body, gzipMagic) {
				t.Fatalf("Accept-Encoding %q got Content-Encoding %q, body %q; want gzip", ae, a.header.Get("Content-Encoding"), a.body)
			}
			if h := e.lastHit(); h.cache != "HIT" && h.cache != "STALE" && h.cache != "UPDATING" && h.cache != "EXPIRED" {
				t.Fatalf("Accept-Encoding %q: cache status %s; want the entry other spellings filled", ae, h.cache)
			}
		}
		keys := cacheKeys(t, e)
		if !keys[stream+"|"+strconv.FormatInt(since, 10)+"||gzip|"] || !keys[stream+"|"+strconv.FormatInt(since, 10)+"|||"] {
			t.Fatalf("cache keys %v; want the gzip and the plain answer cached apart", keys)
		}
	})

	// Each cursor has one spelling, so the edge holds one entry per cursor:
	// another spelling is refused, and errors are not cached.
	t.Run("other spellings of a cursor are refused", func(t *testing.T) {
		for _, q := range []string{"-1", "-" + strconv.FormatInt(since, 10), "0" + strconv.FormatInt(since, 10), "%3" + strconv.FormatInt(since, 10)[1:]} {
			for range 2 {
				a := rawGet(t, fmt.Sprintf("%s/v1/streams/%s/reactions?since=%s", e.url, stream, q), "Accept-Encoding", "gzip")
				if h := e.lastHit(); a.status != http.StatusBadRequest || !bytes.Contains(a.body, []byte("invalid_since")) || h.cache == "HIT" {
					t.Fatalf("since=%s through the edge: %d %s, cache %s; want 400 invalid_since from the origin", q, a.status, a.body, h.cache)
				}
			}
		}
	})

	t.Run("sends pass through", func(t *testing.T) {
		body := `{"emoji":"love","count":3}`
		for range 4 {
			a := rawDo(t, http.MethodPost, e.url+"/v1/streams/"+stream+"/reactions", body,
				"Content-Type", "application/json", "Authorization", "Bearer "+tokenA)
			if a.status != http.StatusAccepted {
				t.Fatalf("send through the edge: %d %s", a.status, a.body)
			}
			if h := e.lastHit(); h.method != http.MethodPost || h.cache != "-" {
				t.Fatalf("send logged as %s with cache status %s; want a POST that never touches the cache", h.method, h.cache)
			}
		}
		testutil.Eventually(t, 10*time.Second, "all 4 sends counted once each", func() bool {
			_, b := origin.get(fmt.Sprintf("/v1/streams/%s/reactions?since=%d", stream, since))
			var pb pollAnswer
			_ = json.Unmarshal([]byte(b), &pb)
			love := int64(0)
			for _, bk := range pb.Buckets {
				love += bk.C["love"]
			}
			if love > 12 {
				t.Fatalf("the origin counted %d taps; 12 were sent", love)
			}
			return love == 12
		})
	})

	// Checked last, when the cache holds everything the subtests put in it.
	t.Run("nothing of a viewer in the cache", func(t *testing.T) {
		files := e.cacheFiles()
		if len(files) == 0 {
			t.Fatal("the edge cached nothing")
		}
		secrets := append([]string{tokenA, tokenB, anonA, anonB, "Bearer", "accepted"}, users...)
		for _, f := range files {
			for _, s := range secrets {
				if bytes.Contains(f, []byte(s)) {
					t.Fatalf("a cached answer contains %q:\n%q", s, f)
				}
			}
		}
		for k := range cacheKeys(t, e) {
			if !regexp.MustCompile(`^[A-Za-z0-9_.-]+\|[0-9]*\|(v=2&)?\|(gzip)?\|$`).MatchString(k) {
				t.Fatalf("cache key %q holds more than stream, cursor, format, encoding and origin", k)
			}
		}
	})
}

// cacheKeys returns the keys of the edge's cached answers, without the
// common path prefix: stream|since|format|encoding|origin.
func cacheKeys(t *testing.T, e *edge) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	for _, f := range e.cacheFiles() {
		_, rest, ok := bytes.Cut(f, []byte("\nKEY: "))
		if !ok {
			t.Fatalf("cache file without a key: %q", f)
		}
		key, _, _ := bytes.Cut(rest, []byte("\n"))
		k, ok := strings.CutPrefix(string(key), "/v1/streams/")
		if !ok {
			t.Fatalf("cached answer of %q: only polls may be cached", key)
		}
		keys[strings.Replace(k, "/reactions|", "|", 1)] = true
	}
	return keys
}

// waitBusy waits until the origin tells viewers of stream to poll as often
// as a busy stream's viewers (--busy-next-ms, 1000), so that viewers who
// watch it from now on start at that pace.
func waitBusy(t *testing.T, p *proc, stream string) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, stream+" is busy", func() bool {
		_, b := p.get("/v1/streams/" + stream + "/reactions")
		var pb pollAnswer
		return json.Unmarshal([]byte(b), &pb) == nil && pb.NextMS == 1000
	})
}

// crowdFigures is what a crowd of viewers cost behind the edge.
type crowdFigures struct {
	viewers       int
	edgeRate      float64 // polls per second the edge answered
	originRate    float64 // polls per second that reached the origin
	hitRatio      float64
	keysPerSecond float64 // distinct (since, encoding) asked per second
	lag           float64 // mean seconds from the end of an answer's now to its arrival
}

func (f crowdFigures) String() string {
	return fmt.Sprintf("%d viewers: %.1f polls/s at the edge, %.2f/s at the origin, hit ratio %.3f, %.1f distinct cursors/s, now %.2f s behind",
		f.viewers, f.edgeRate, f.originRate, f.hitRatio, f.keysPerSecond, f.lag)
}

// originPolls returns how many poll answers the origin gave so far.
func originPolls(p *proc) float64 {
	_, body := p.get("/metrics")
	n := 0.0
	for line := range strings.Lines(body) {
		for _, status := range []string{"200", "304"} {
			prefix := `emojicast_http_requests_total{route="reactions",status="` + status + `"} `
			if v, ok := strings.CutPrefix(line, prefix); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				n += f
			}
		}
	}
	return n
}

// runCrowd runs n viewers built on client/ through the edge for d and
// measures what reached the origin.
func runCrowd(t *testing.T, e *edge, origin *proc, stream string, n int, d time.Duration) crowdFigures {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streams := make([]*client.Stream, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := client.New(client.Options{Server: e.url})
			if err != nil {
				t.Error(err)
				return
			}
			if streams[i], err = c.Watch(ctx, stream); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Let the crowd spread over its poll interval before measuring.
	var runs sync.WaitGroup
	var lagMu sync.Mutex
	var lagSum float64
	var lagN int
	for _, s := range streams {
		runs.Go(func() {
			_ = s.Run(ctx, func(u client.Update) {
				lag := float64(time.Now().UnixMilli())/1000 - float64(u.Now+1)
				lagMu.Lock()
				lagSum += lag
				lagN++
				lagMu.Unlock()
			})
		})
	}
	time.Sleep(2 * time.Second)
	start, before := time.Now(), originPolls(origin)
	time.Sleep(d)
	end, after := time.Now(), originPolls(origin)
	cancel()
	runs.Wait()

	f := crowdFigures{viewers: n}
	hits, polls := 0, 0
	keys := map[string]bool{}
	for _, h := range e.accessLog() {
		if h.method != http.MethodGet || h.path != "/v1/streams/"+stream+"/reactions" || h.at.Before(start) || h.at.After(end) {
			continue
		}
		polls++
		if h.cache == "HIT" {
			hits++
		}
		keys[fmt.Sprint(h.at.Unix(), h.since)] = true
	}
	secs := end.Sub(start).Seconds()
	f.edgeRate = float64(polls) / secs
	f.originRate = (after - before) / secs
	f.hitRatio = float64(hits) / float64(max(polls, 1))
	f.keysPerSecond = float64(len(keys)) / secs
	f.lag = lagSum / float64(max(lagN, 1))
	return f
}

// TestCDNOriginFlatWith10xViewers: ten times the viewers behind the edge
// cost the origin about the same polls per second, bounded by the distinct
// cursors asked per second.
func TestCDNOriginFlatWith10xViewers(t *testing.T) {
	t.Parallel()
	origin := startProc(t, "serve", "serve", "--log-level", "warn")
	e := startEdge(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)})
	const stream = "crowd"
	// Taps keep the stream busy (next_ms 1000) and its answers changing.
	ctx, cancel := context.WithCancel(context.Background())
	var sender sync.WaitGroup
	sender.Go(func() { tapSteadily(ctx, nil, origin, stream) })
	defer func() { cancel(); sender.Wait() }()
	waitBusy(t, origin, stream)

	const d = 8 * time.Second
	small := runCrowd(t, e, origin, stream, 20, d)
	large := runCrowd(t, e, origin, stream, 200, d)
	t.Logf("edge in front of one origin, busy stream:\n  %v\n  %v", small, large)
	// The margins are a busy machine's: the property is the bound by
	// distinct cursors below, which holds at any load.
	if large.edgeRate < 3*small.edgeRate {
		t.Fatalf("the edge answered %.1f polls/s for 200 viewers and %.1f for 20: the crowd did not grow", large.edgeRate, small.edgeRate)
	}
	if large.originRate > 2*small.originRate+1 {
		t.Fatalf("origin polls/s grew from %.2f to %.2f with 10x viewers; want about flat", small.originRate, large.originRate)
	}
	for _, f := range []crowdFigures{small, large} {
		if f.originRate > f.keysPerSecond+1 {
			t.Fatalf("%v: the origin answered more polls than distinct cursors were asked", f)
		}
	}
	if large.hitRatio < 0.8 {
		t.Fatalf("%v: want a hit ratio of at least 0.8", large)
	}
}

// TestCDNCachesSealedHistory: a history answer for whole sealed minutes is
// kept 30 s (only a comment taken down changes it), so the edge serves the
// second request for it from its cache,
// whatever else the query holds; a range reaching past the newest sealed
// second is cached for a second at most.
func TestCDNCachesSealedHistory(t *testing.T) {
	t.Parallel()
	origin := startProc(t, "serve", "serve", "--log-level", "warn")
	e := startEdge(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)})
	hour := time.Now().Unix()/60*60 - 3600
	q := fmt.Sprintf("%s/v1/streams/replayed/history?from=%d&to=%d", e.url, hour, hour+3599)
	a, hit := edgeGet(t, e, q+"&user=alice", "Accept-Encoding", "gzip")
	if a.status != http.StatusOK || a.header.Get("Cache-Control") != historySealedCaching || hit.cache != "MISS" {
		t.Fatalf("first history request: %d, Cache-Control %q, cache %s; want 200, max-age=30 and its staleness, MISS",
			a.status, a.header.Get("Cache-Control"), hit.cache)
	}
	b, hit := edgeGet(t, e, q+"&user=bob", "Accept-Encoding", "gzip, deflate, br")
	if b.status != http.StatusOK || hit.cache != "HIT" || !bytes.Equal(a.body, b.body) {
		t.Fatalf("second history request: %d, cache %s, same bytes %v; want a HIT with the same bytes", b.status, hit.cache, bytes.Equal(a.body, b.body))
	}
	c, hit := edgeGet(t, e, q, "Accept-Encoding", "gzip", "If-None-Match", a.header.Get("ETag"))
	if c.status != http.StatusNotModified || hit.cache != "HIT" {
		t.Fatalf("revalidation at the edge: %d, cache %s; want 304 from the cache", c.status, hit.cache)
	}
	now := time.Now().Unix()
	live := rawGet(t, fmt.Sprintf("%s/v1/streams/replayed/history?from=%d&to=%d", e.url, now-600, now+600))
	if live.status != http.StatusOK || live.header.Get("Cache-Control") != historyPartialCaching {
		t.Fatalf("history reaching past the horizon: %d, Cache-Control %q; want max-age=1", live.status, live.header.Get("Cache-Control"))
	}
	bad := rawGet(t, fmt.Sprintf("%s/v1/streams/replayed/history?from=%d&to=%d", e.url, now, now-1))
	if bad.status != http.StatusBadRequest || !bytes.Contains(bad.body, []byte("invalid_range")) {
		t.Fatalf("a bad range through the edge: %d %s; want 400 invalid_range", bad.status, bad.body)
	}
}

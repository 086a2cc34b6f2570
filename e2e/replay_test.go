package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/internal/testutil"
)

// TestReplayAfterTheWindowOnRedisCluster is the one test that waits in real
// time: taps go through a push process into a Redis Cluster; once the ring's
// 60 s window has passed them (a poll from before them says gap), history
// from each of two pull processes holds, second by second, what the push
// node accepted, in the same bytes from both, and through the edge
// (deploy/nginx.conf) a second request for the same whole minutes is a
// cache hit.
func TestReplayAfterTheWindowOnRedisCluster(t *testing.T) {
	t.Parallel()
	testutil.Long(t, "waits more than a minute for the ring's window to pass")
	cluster := redistest.StartCluster(t, 3)
	common := []string{"--redis", cluster.Addrs(), "--seal-delay", fleetSealDelay, "--log-level", "warn"}
	push := startProc(t, "push", append(append([]string{"push"}, loadSender...), common...)...)
	pullArgs := append(append([]string{"pull"}, exact...), common...)
	pulls := []*proc{startProc(t, "pull-1", pullArgs...), startProc(t, "pull-2", pullArgs...)}
	for _, p := range append(pulls, push) {
		p.waitReady()
	}
	e := startEdge(t, []string{hostOf(t, pulls[0].url)}, []string{hostOf(t, push.url)})

	const stream = "replay-final"
	ta := newTally()
	sendFor(t, ta, []*proc{push}, []string{stream}, 4*time.Second)
	if ta.accepted < 200 || ta.refused > 0 {
		t.Fatalf("%d taps accepted, %d sends refused; want hundreds accepted and none refused", ta.accepted, ta.refused)
	}
	first, last := ta.span(stream)
	from, to := first/60*60, (last/60+1)*60-1

	// Wait until the ring no longer holds the first tap's second.
	poll := fmt.Sprintf("/v1/streams/%s/reactions?since=%d", stream, first-1)
	testutil.Eventually(t, 150*time.Second, "the ring's window to pass the taps and the range to seal", func() bool {
		_, b := pulls[1].get(poll)
		var pb pollAnswer
		_ = json.Unmarshal([]byte(b), &pb)
		return pb.Gap && pb.Now > to
	})

	q := fmt.Sprintf("/v1/streams/%s/history?from=%d&to=%d", stream, from, to)
	var answers [2]rawAnswer
	for i, p := range pulls {
		answers[i] = rawGet(t, p.url+q, "Accept-Encoding", "gzip")
		a := answers[i]
		if a.status != http.StatusOK || a.header.Get("Cache-Control") != historySealedCaching || a.header.Get("ETag") == "" {
			t.Fatalf("history from %s: %d, Cache-Control %q, ETag %q: %s", p.name, a.status, a.header.Get("Cache-Control"), a.header.Get("ETag"), a.body)
		}
	}
	if !bytes.Equal(answers[0].body, answers[1].body) || answers[0].header.Get("ETag") != answers[1].header.Get("ETag") {
		t.Fatalf("the two pull nodes answered the same history with different bytes or ETags (%s, %s)",
			answers[0].header.Get("ETag"), answers[1].header.Get("ETag"))
	}
	_, plain := pulls[0].get(q)
	var h pollAnswer
	if err := json.Unmarshal([]byte(plain), &h); err != nil || h.From != from || h.To != to {
		t.Fatalf("history body %s (%v); want from %d to %d", plain, err, from, to)
	}
	seen := counts{}
	for _, b := range h.Buckets {
		for e, n := range b.C {
			seen.add(b.T, e, n)
		}
	}
	ta.checkSeconds(t, "history", stream, seen)
	if got, want := seen.total(), ta.totals(stream); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history holds %v; push accepted %v", got, want)
	}

	// Through the edge: the first request fills the cache, the second hits.
	a, hit := edgeGet(t, e, e.url+q+"&user=someone", "Accept-Encoding", "gzip")
	if a.status != http.StatusOK || hit.cache != "MISS" {
		t.Fatalf("first history request through the edge: %d, cache %s; want 200 MISS", a.status, hit.cache)
	}
	b, hit := edgeGet(t, e, e.url+q, "Accept-Encoding", "gzip, deflate, br")
	if b.status != http.StatusOK || hit.cache != "HIT" || !bytes.Equal(a.body, b.body) || !bytes.Equal(a.body, answers[0].body) {
		t.Fatalf("second history request through the edge: %d, cache %s, same bytes %v; want a HIT with the origin's bytes",
			b.status, hit.cache, bytes.Equal(a.body, b.body))
	}
	t.Logf("%d taps in %d s replayed from history after %s", ta.accepted, last-first+1, time.Duration(to-first)*time.Second)
}

// span returns the first and last second a stream's accepted taps are in.
func (ta *tally) span(stream string) (first, last int64) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	first = 1 << 62
	for _, c := range []counts{ta.definite[stream], ta.straddled[stream]} {
		for s := range c {
			first, last = min(first, s), max(last, s+1)
		}
	}
	return first, last
}

// edgeGet GETs url through the edge and returns the answer with the
// access log line of that request: nginx writes the line after the answer,
// so it waits for it.
func edgeGet(t *testing.T, e *edge, url string, header ...string) (rawAnswer, edgeHit) {
	t.Helper()
	n := len(e.accessLog())
	a := rawGet(t, url, header...)
	var hits []edgeHit
	testutil.Eventually(t, 5*time.Second, "the edge to log the request", func() bool {
		hits = e.accessLog()
		return len(hits) > n
	})
	return a, hits[n]
}

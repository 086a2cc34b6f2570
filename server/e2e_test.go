package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/pull"
)

// TestSendAndPollExactCounts sends taps from several users and emojis over
// several seconds, polls like a client, and must see exactly what was sent,
// in the second it was sent.
func TestSendAndPollExactCounts(t *testing.T) {
	n := startNode(t)
	v := n.newViewer("launch-2026")
	want := map[int64]map[string]int64{}
	emojis := []string{"love", "haha", "fire", "clap"}
	for s := range 6 {
		sec := n.clk.Now().Unix()
		if s == 3 {
			// One second without taps: it must be left out.
			n.step()
			continue
		}
		for u := range 5 {
			for e, emo := range emojis {
				if (s+u+e)%3 == 0 {
					continue // leave some emojis out of some seconds
				}
				count := 1 + (s+u*e)%4
				if got := n.send("launch-2026", fmt.Sprintf("u%d", u), emo, count); got != http.StatusAccepted {
					t.Fatalf("send: status %d", got)
				}
				if want[sec] == nil {
					want[sec] = map[string]int64{}
				}
				want[sec][emo] += int64(count)
			}
		}
		n.step()
		v.poll()
	}
	n.step()
	n.step()
	pb := v.poll()
	if pb.NextMS <= 0 || pb.Sample != 1 {
		t.Fatalf("next_ms %d, sample %v; want a positive next_ms and sample 1", pb.NextMS, pb.Sample)
	}
	if !maps.EqualFunc(v.seen, want, maps.Equal) {
		t.Fatalf("viewer saw %v;\nsent %v", v.seen, want)
	}
	if v.gaps != 0 {
		t.Fatalf("a client polling every second saw %d gaps", v.gaps)
	}
}

// TestClientBackAfter40sGetsEverySecond: a viewer that stops polling for 40 s
// and comes back with its old cursor gets every second it missed.
func TestClientBackAfter40sGetsEverySecond(t *testing.T) {
	n := startNode(t)
	v := n.newViewer("s")
	v.poll()
	want := map[int64]map[string]int64{}
	for i := range 40 {
		sec := n.clk.Now().Unix()
		if n.send("s", fmt.Sprintf("u%d", i), "wow", 1+i%5) != http.StatusAccepted {
			t.Fatal("send refused")
		}
		want[sec] = map[string]int64{"wow": int64(1 + i%5)}
		n.step()
	}
	n.step()
	pb := v.poll()
	if pb.Gap || v.gaps != 0 {
		t.Fatal("40 s away reported a gap; the window is 60 s")
	}
	if !maps.EqualFunc(v.seen, want, maps.Equal) {
		t.Fatalf("after 40 s away the viewer got %d seconds; want all %d: %v", len(v.seen), len(want), slices.Sorted(maps.Keys(v.seen)))
	}
}

// TestCursorOlderThanWindowReportsGap: 70 s away loses 10 s, and says so.
func TestCursorOlderThanWindowReportsGap(t *testing.T) {
	n := startNode(t)
	v := n.newViewer("s")
	old := v.cursor
	other := n.newViewer("s") // keeps the stream from being evicted as idle
	for i := range 70 {
		n.send("s", fmt.Sprintf("u%d", i), "sad", 1)
		n.step()
		other.poll()
	}
	pb, _ := n.poll("s", &old)
	if !pb.Gap {
		t.Fatal("a cursor 70 s old got no gap flag")
	}
	if len(pb.Buckets) != 60 || pb.Buckets[0].T != pb.Now-59 {
		t.Fatalf("gap answer has %d buckets from %d; want the whole window, 60 from %d", len(pb.Buckets), pb.Buckets[0].T, pb.Now-59)
	}
}

func TestPollCursorRules(t *testing.T) {
	n := startNode(t)
	n.newViewer("s")
	for i := range 8 {
		n.send("s", fmt.Sprintf("u%d", i), "like", 1)
		n.step()
	}
	pb, _ := n.poll("s", nil)
	if len(pb.Buckets) != 5 || pb.Buckets[0].T != pb.Now-4 {
		t.Fatalf("poll without since: %d buckets from %d; want the last 5 seconds", len(pb.Buckets), pb.Buckets[0].T)
	}
	future := pb.Now + 100
	if pb2, _ := n.poll("s", &future); len(pb2.Buckets) != 0 || pb2.Now != pb.Now {
		t.Fatalf("since in the future: %d buckets, now %d; want none and now %d", len(pb2.Buckets), pb2.Now, pb.Now)
	}
	at := pb.Now
	if pb3, _ := n.poll("s", &at); len(pb3.Buckets) != 0 {
		t.Fatalf("since = now returned %d buckets", len(pb3.Buckets))
	}
}

// TestPollCaching checks the rules that make bodies shareable: the same
// (stream, since, now) gives the same bytes; ETag and 304; gzip only when
// asked for; Cache-Control and Vary.
func TestPollCaching(t *testing.T) {
	n := startNode(t)
	n.newViewer("s")
	for i := range 3 {
		n.send("s", fmt.Sprintf("u%d", i), "fire", 25)
		n.step()
	}
	path := "/v1/streams/s/reactions?since=" + fmt.Sprint(n.pull.Horizon()-3)
	gz := map[string]string{"Accept-Encoding": "gzip"}
	a := n.do("GET", path, "", gz)
	b := n.do("GET", path, "", gz)
	plain := n.do("GET", path, "", nil)
	if a.status != 200 || !bytes.Equal(a.body, b.body) {
		t.Fatalf("two polls with the same cursor in the same second got different bytes")
	}
	if a.header.Get("Content-Encoding") != "gzip" || plain.header.Get("Content-Encoding") != "" {
		t.Fatalf("Content-Encoding: %q with gzip, %q without", a.header.Get("Content-Encoding"), plain.header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(a.body))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, _ := io.ReadAll(zr)
	if !bytes.Equal(unzipped, plain.body) {
		t.Fatalf("gzip body does not decode to the plain body")
	}
	for _, r := range []response{a, plain} {
		if r.header.Get("Cache-Control") != "public, stale-while-revalidate=1, stale-if-error=10" || r.header.Get("Expires") == "" || r.header.Get("Vary") != "Accept-Encoding" || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("caching headers: %v", r.header)
		}
	}
	etag := a.header.Get("ETag")
	if etag == "" || etag == plain.header.Get("ETag") || etag[0] != '"' {
		t.Fatalf("ETags: gzip %q, plain %q; want two different strong tags", etag, plain.header.Get("ETag"))
	}
	nm := n.do("GET", path, "", map[string]string{"Accept-Encoding": "gzip", "If-None-Match": etag})
	if nm.status != http.StatusNotModified || len(nm.body) != 0 || nm.header.Get("ETag") != etag {
		t.Fatalf("If-None-Match with the current ETag: %d, %d body bytes", nm.status, len(nm.body))
	}
	stale := n.do("GET", path, "", map[string]string{"If-None-Match": etag})
	if stale.status != http.StatusOK {
		t.Fatalf("If-None-Match with the gzip ETag on a plain request: %d; want 200", stale.status)
	}
	var pb pollBody
	if err := json.Unmarshal(plain.body, &pb); err != nil {
		t.Fatal(err)
	}
	for _, bk := range pb.Buckets {
		if !slices.Equal(bk.Burst, []string{"fire"}) {
			t.Fatalf("second with fire 25 (threshold 20) has burst %v", bk.Burst)
		}
	}
}

// TestBurstAtThreshold: 19 is not a burst, 20 is.
func TestBurstAtThreshold(t *testing.T) {
	n := startNode(t)
	v := n.newViewer("s")
	n.send("s", "a", "love", 19)
	n.send("s", "b", "haha", 20)
	sec := n.clk.Now().Unix()
	n.step()
	n.step()
	v.poll()
	if got := v.bursts[sec]; !slices.Equal(got, []string{"haha"}) {
		t.Fatalf("burst = %v; want [haha] (love 19 is under the threshold 20)", got)
	}
}

func TestWatch(t *testing.T) {
	n := startNode(t)
	n.step()
	w := n.watch("launch-2026", "u12345")
	if w.Stream != "launch-2026" || w.User != "u12345" || w.Token != "" || w.Sample != 1 || w.NextMS <= 0 || w.MaxNextMS != 30_000 {
		t.Fatalf("watch = %+v", w)
	}
	wantURL := n.url + "/v1/streams/launch-2026/reactions"
	if w.Pull != wantURL || w.Push != wantURL {
		t.Fatalf("watch urls = %q, %q; want %q", w.Pull, w.Push, wantURL)
	}
	if w.Since < n.pull.Horizon()-1 || len(w.Emojis) != 8 || w.Emojis[0].ID != "like" || w.Emojis[0].Glyph != "👍" {
		t.Fatalf("watch since %d (horizon %d), emojis %v", w.Since, n.pull.Horizon(), w.Emojis)
	}
	if resp := n.do("GET", "/v1/streams/x/watch?user=u1", "", nil); resp.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("watch answer is cacheable: %q", resp.header.Get("Cache-Control"))
	}
}

func TestOperationsEndpoints(t *testing.T) {
	n := startNode(t)
	if r := n.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	n.step()
	testutil.Eventually(t, 5*time.Second, "readyz turns 200", func() bool { return n.do("GET", "/readyz", "", nil).status == 200 })
	n.send("s", "u1", "love", 1)
	m := n.do("GET", "/metrics", "", nil)
	for _, want := range []string{
		`emojicast_http_requests_total{route="send",status="202"}`,
		"emojicast_http_request_duration_seconds_bucket",
		"emojicast_push_taps_accepted_total",
		"emojicast_pull_active_streams",
		"emojicast_push_backlog_deltas",
		"emojicast_pull_sync_duration_seconds",
		"emojicast_http_response_body_bytes_total",
	} {
		if !bytes.Contains(m.body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if r := n.do("GET", "/v1/emojis", "", nil); r.status != 200 || !bytes.Contains(r.body, []byte(`{"id":"fire","glyph":"🔥"}`)) {
		t.Fatalf("/v1/emojis: %d %s", r.status, r.body)
	}
}

// TestSampleDivisorCapIsExported: the alert on sampling at the cap
// (EmojicastSamplingAtCap) compares the divisor with the process's own
// --max-divisor, which /metrics must therefore carry.
func TestSampleDivisorCapIsExported(t *testing.T) {
	n := startNode(t, func(c *nodeConfig) {
		c.pullOpts = func(o *pull.Options) { o.MaxDivisor = 4000 }
	})
	page := n.do("GET", "/metrics", "", nil).body
	if got := metricValue(t, page, "emojicast_pull_sample_divisor_cap"); got != 4000 {
		t.Errorf("emojicast_pull_sample_divisor_cap = %v; want the pull node's MaxDivisor, 4000", got)
	}
	if got := metricValue(t, page, "emojicast_pull_sample_divisor_max"); got != 1 {
		t.Errorf("emojicast_pull_sample_divisor_max = %v with no sampled stream; want 1", got)
	}
}

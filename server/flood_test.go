package server

import (
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestFloodOfDistinctIDsStaysBounded sends 1,000,000 sends and 1,000,000
// polls, each for a stream id, user id and client address never seen
// before, and checks that every map keyed by them stays within its bound:
// push's per-stream sums and per-user buckets, pull's streams, the memory
// store's streams and the per-address limits. The live heap after the
// flood must grow by less than 32 MiB; without the bounds it would hold a
// million of each: tens of MiB for the user and address buckets, GiBs for
// pull's streams.
//
// The requests go through the server's handler without a socket: two
// million loopback round trips would take minutes under the race detector,
// and the socket path is what the other tests cover. Under the race
// detector, where scripts/test.sh runs it, the flood is 150,000 ids (the
// handler is ten times slower there): still 15 times the key bound and
// 150 times the streams bound: unbounded, pull's streams alone would
// outgrow the heap bound many times over, and the gauges would pass their
// bounds.
func TestFloodOfDistinctIDsStaysBounded(t *testing.T) {
	testutil.Long(t, "floods a million ids")
	total := 1_000_000
	if testutil.RaceEnabled {
		total = 150_000
	}
	// Twenty clock moves, each letting maxStreams new streams in: the
	// store (5 × maxStreams) has to evict.
	step := total / 20
	const (
		maxStreams = 1000
		maxKeys    = 10_000
		heapBound  = 32 << 20
	)
	n := startNode(t, func(c *nodeConfig) {
		c.maxStreams, c.storeMaxStreams, c.maxUsers = maxStreams, 5*maxStreams, maxKeys
		c.server.MaxClientIPs = maxKeys
		c.server.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	n.step()
	base := liveHeap()

	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
	statuses := map[string]map[int]int{"send": {}, "poll": {}}
	var id, body []byte
	for i := range total {
		id = append(strconv.AppendInt(id[:0], int64(i), 36), "-flood"...)
		xff := netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)}).String()

		body = append(append(append(body[:0], `{"emoji":"love","user":"`...), id...), `"}`...)
		request(&ctx, "POST", "/v1/streams/"+string(id)+"/reactions", xff, body)
		n.srv.handle(&ctx)
		statuses["send"][ctx.Response.StatusCode()]++

		request(&ctx, "GET", "/v1/streams/"+string(id)+"/reactions", xff, nil)
		n.srv.handle(&ctx)
		statuses["poll"][ctx.Response.StatusCode()]++

		if (i+1)%step == 0 {
			// Let the bounded maps forget what went idle: push drains its
			// sums, then evicts them once idle for 5 s; pull drops streams
			// nobody polled for 60 s.
			n.flush()
			now := n.clk.Add(6 * time.Second)
			n.flush()
			n.waitPublished(now.Unix() - 2)
		}
	}
	t.Logf("statuses %v", statuses)
	for what, by := range statuses {
		for status := range by {
			if status != http.StatusAccepted && status != http.StatusOK && status != http.StatusServiceUnavailable {
				t.Fatalf("%s answered %d; want only 2xx or 503 overloaded", what, status)
			}
		}
	}
	if statuses["send"][http.StatusAccepted] < maxStreams || statuses["poll"][http.StatusOK] < maxStreams {
		t.Fatalf("too few requests accepted: %v", statuses)
	}

	grown := liveHeap() - base
	t.Logf("live heap grew by %.1f MiB over the flood", float64(grown)/(1<<20))
	if grown > heapBound {
		t.Fatalf("live heap grew by %d bytes; want under %d", grown, heapBound)
	}
	m := n.do("GET", "/metrics", "", nil).body
	for _, gauge := range []string{"emojicast_pull_active_streams", "emojicast_push_active_streams"} {
		if v := metricValue(t, m, gauge); v > maxStreams {
			t.Errorf("%s = %v; want at most %d", gauge, v, maxStreams)
		}
	}
	if v := metricValue(t, m, "emojicast_store_streams_evicted_total"); v == 0 {
		t.Error("the memory store never evicted a stream; the flood did not reach its bound")
	}
	// Once the flood's streams are idle for pull's 60 s, real viewers of
	// new streams get in again.
	n.clk.Add(60 * time.Second)
	n.step()
	testutil.Eventually(t, 10*time.Second, "pull drops the idle flood streams", func() bool {
		return metricValue(t, n.do("GET", "/metrics", "", nil).body, "emojicast_pull_active_streams") == 0
	})
	n.newViewer("after-the-flood")
	if got := n.send("after-the-flood", "u1", "love", 1); got != http.StatusAccepted {
		t.Fatalf("send after the flood: %d", got)
	}
}

// request resets ctx to a new request from a client behind the proxy.
func request(ctx *fasthttp.RequestCtx, method, path, forwardedFor string, body []byte) {
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	ctx.Request.Header.SetHost("flood")
	ctx.Request.Header.Set(fasthttp.HeaderXForwardedFor, forwardedFor)
	if body != nil {
		ctx.Request.Header.SetContentType("application/json")
		ctx.Request.SetBody(body)
	}
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

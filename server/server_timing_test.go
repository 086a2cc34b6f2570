package server

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/pull"
	"github.com/emojicast/emojicast/store"
)

// BenchmarkServePoll measures a cached poll through everything the server
// does per request (routing, the drain check, stream id check, the poll
// handler, per-route metrics) beside a handler that writes the same answer
// as a constant byte slice, which is what the load generator's ceiling
// server does. Over HTTP both also pay fasthttp's parsing and the socket.
func BenchmarkServePoll(b *testing.B) {
	clk := clock.NewManual(t0)
	st := store.NewMemory(store.MemoryOptions{Clock: clk})
	pl, err := pull.New(pull.Options{Store: st, Clock: clk, SyncInterval: time.Millisecond, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	pl.Start()
	b.Cleanup(pl.Stop)
	// Every poll comes from one address at once: lift its allowance, so
	// that the benchmark measures polls (the limiter still runs), not 429s.
	s := New(Options{Pull: pl, Logger: quiet, PollRatePerIP: 1e9, PollBurstPerIP: 1e9})

	uri := "/v1/streams/s/reactions?since="
	var probe fasthttp.RequestCtx
	probe.Request.SetRequestURI(uri + "0")
	s.handle(&probe) // registers the stream
	for i := range 3 {
		err := st.Add(context.Background(), store.Batch{ID: strconv.Itoa(i), Deltas: []store.Delta{
			{Stream: "s", Second: clk.Now().Unix(), Emoji: "love", Count: 30},
			{Stream: "s", Second: clk.Now().Unix(), Emoji: "fire", Count: 7},
		}})
		if err != nil {
			b.Fatal(err)
		}
		clk.Add(time.Second)
	}
	horizon := store.Horizon(clk.Now(), store.DefaultSealDelay)
	testutil.Eventually(b, 5*time.Second, "stream synced", func() bool { return pl.Horizon() >= horizon })
	uri += strconv.FormatInt(horizon-1, 10)

	probe.Request.Reset()
	probe.Request.SetRequestURI(uri)
	probe.Request.Header.Set("Accept-Encoding", "gzip")
	s.handle(&probe)
	if probe.Response.StatusCode() != fasthttp.StatusOK || string(probe.Response.Header.ContentEncoding()) != "gzip" {
		b.Fatalf("probe poll: status %d, headers %s", probe.Response.StatusCode(), probe.Response.Header.Header())
	}
	type header struct{ k, v []byte }
	var headers []header
	for k, v := range probe.Response.Header.All() {
		if string(k) != fasthttp.HeaderContentLength {
			headers = append(headers, header{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
	}
	body := append([]byte(nil), probe.Response.Body()...)

	run := func(b *testing.B, handle func(ctx *fasthttp.RequestCtx)) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		b.RunParallel(func(pb *testing.PB) {
			var ctx fasthttp.RequestCtx
			for pb.Next() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.SetRequestURI(uri)
				ctx.Request.Header.Set("Accept-Encoding", "gzip")
				handle(&ctx)
			}
		})
	}
	b.Run("poll", func(b *testing.B) { run(b, s.handle) })
	b.Run("constant", func(b *testing.B) {
		run(b, func(ctx *fasthttp.RequestCtx) {
			for _, h := range headers {
				ctx.Response.Header.SetCanonical(h.k, h.v)
			}
			ctx.Response.SetBodyRaw(body)
		})
	})
}

// cachedPoll returns a node whose stream s has a cached poll body, and a
// function that serves that poll through the whole server handler:
// routing, the stream check, CORS and metrics.
func cachedPoll(tb testing.TB, mods ...func(*nodeConfig)) (n *node, serve func(ctx *fasthttp.RequestCtx)) {
	// Thousands of polls in one instant from one address: lift its
	// allowance, so that they measure the poll, not the refusal.
	n = startNode(tb, append([]func(*nodeConfig){oneAddressManyUsers}, mods...)...)
	v := n.newViewer("s")
	n.send("s", "u1", "love", 3)
	n.step()
	v.poll()
	uri := []byte("/v1/streams/s/reactions?since=" + strconv.FormatInt(n.pull.Horizon()-2, 10))
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	serve = func(ctx *fasthttp.RequestCtx) {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.SetRemoteAddr(peer)
		ctx.Request.SetRequestURIBytes(uri)
		ctx.Request.Header.Set("Accept-Encoding", "gzip")
		ctx.Request.Header.Set("Origin", "https://viewer.example")
		n.srv.handle(ctx)
	}
	return n, serve
}

// TestCachedPollThroughServerDoesNotAllocate: the server around the poll
// handler keeps a cache hit free of allocations, with either CORS mode.
func TestCachedPollThroughServerDoesNotAllocate(t *testing.T) {
	for name, origins := range map[string][]string{"any origin": {"*"}, "origin list": {"https://viewer.example"}} {
		t.Run(name, func(t *testing.T) {
			_, serve := cachedPoll(t, func(c *nodeConfig) { c.server.CORSOrigins = origins })
			var ctx fasthttp.RequestCtx
			serve(&ctx)
			if ctx.Response.StatusCode() != 200 || len(ctx.Response.Header.Peek("Access-Control-Allow-Origin")) == 0 {
				t.Fatalf("poll: %d, headers %s", ctx.Response.StatusCode(), ctx.Response.Header.Header())
			}
			testutil.NoAllocs(t, "a cached poll through the server", func() { serve(&ctx) })
			if ctx.Response.StatusCode() != 200 {
				t.Fatalf("the last poll: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
		})
	}
}

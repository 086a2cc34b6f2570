package server

import (
	"net"
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/internal/testutil"
)

// cachedPoll returns a node whose stream s has a cached poll body, and a
// function that serves that poll through the whole server handler:
// routing, the stream check, CORS and metrics.
func cachedPoll(tb testing.TB, mods ...func(*nodeConfig)) (n *node, serve func(ctx *fasthttp.RequestCtx)) {
	n = startNode(tb, mods...)
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
	for name, origins := range map[string][]string{"any origin": nil, "origin list": {"https://viewer.example"}} {
		t.Run(name, func(t *testing.T) {
			_, serve := cachedPoll(t, func(c *nodeConfig) { c.server.CORSOrigins = origins })
			var ctx fasthttp.RequestCtx
			serve(&ctx)
			if ctx.Response.StatusCode() != 200 || len(ctx.Response.Header.Peek("Access-Control-Allow-Origin")) == 0 {
				t.Fatalf("poll: %d, headers %s", ctx.Response.StatusCode(), ctx.Response.Header.Header())
			}
			testutil.NoAllocs(t, "a cached poll through the server", func() { serve(&ctx) })
		})
	}
}

// BenchmarkServerPoll measures a cached poll through the whole server
// handler; compare with pull's BenchmarkPollHandler for the handler alone.
func BenchmarkServerPoll(b *testing.B) {
	_, serve := cachedPoll(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			serve(&ctx)
		}
	})
}

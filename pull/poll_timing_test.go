package pull

import (
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkPollHandler measures the poll handler on a cached body beside
// the cheapest possible handler that writes a constant slice of the same
// size with the same headers: the ratio is what the poll path costs over
// serving bytes.
func BenchmarkPollHandler(b *testing.B) {
	f := newFixture(b)
	f.poll("s", "")
	f.sync()
	for range 3 {
		f.add("s", "love", 30)
		f.add("s", "fire", 7)
		f.step()
	}
	uri := []byte("/v1/streams/s/reactions?since=" + strconv.FormatInt(f.p.Horizon()-2, 10))
	id := []byte("s")
	var probe fasthttp.RequestCtx
	probe.Request.SetRequestURIBytes(uri)
	probe.Request.Header.Set("Accept-Encoding", "gzip")
	f.p.HandlePoll(&probe, id)
	constBody := append([]byte(nil), probe.Response.Body()...)
	etag := append([]byte(nil), probe.Response.Header.Peek("ETag")...)

	run := func(b *testing.B, handle func(ctx *fasthttp.RequestCtx)) {
		b.ReportAllocs()
		b.SetBytes(int64(len(constBody)))
		b.RunParallel(func(pb *testing.PB) {
			var ctx fasthttp.RequestCtx
			for pb.Next() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.SetRequestURIBytes(uri)
				ctx.Request.Header.Set("Accept-Encoding", "gzip")
				handle(&ctx)
			}
		})
	}
	b.Run("poll", func(b *testing.B) {
		run(b, func(ctx *fasthttp.RequestCtx) { f.p.HandlePoll(ctx, id) })
	})
	b.Run("constant", func(b *testing.B) {
		run(b, func(ctx *fasthttp.RequestCtx) {
			h := &ctx.Response.Header
			h.SetCanonical([]byte("Cache-Control"), cachePublic)
			h.SetCanonical([]byte("Vary"), []byte("Accept-Encoding"))
			h.SetCanonical([]byte("ETag"), etag)
			h.SetContentTypeBytes(contentTypeJSON)
			h.SetCanonical([]byte("Content-Encoding"), []byte("gzip"))
			ctx.Response.SetBodyRaw(constBody)
		})
	})
}

// BenchmarkEncodeBody measures a cache miss: encoding and gzipping a poll
// body of a busy stream.
func BenchmarkEncodeBody(b *testing.B) {
	f := newFixture(b)
	f.poll("s", "")
	f.sync()
	for range 10 {
		for _, e := range []string{"like", "love", "haha", "wow", "clap", "fire"} {
			f.add("s", e, 25)
		}
		f.step()
	}
	st := f.p.streams.get([]byte("s"), f.p.initial, 0)
	now := st.ring.Tail()
	body := f.p.encodeBody(st, now, 5)
	b.ReportAllocs()
	b.SetBytes(int64(len(body.Plain)))
	b.ReportMetric(float64(len(body.Gzip)), "gzip-bytes")
	for b.Loop() {
		_ = f.p.encodeBody(st, now, 5)
	}
}

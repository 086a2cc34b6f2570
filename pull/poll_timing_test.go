package pull

import (
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/compress"
	"github.com/emojicast/emojicast/ringbuffer"
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
	f.p.HandlePoll(&probe, id, nil)
	constBody := append([]byte(nil), probe.Response.Body()...)
	etag := []byte(responseETag(&probe))

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
		run(b, func(ctx *fasthttp.RequestCtx) { f.p.HandlePoll(ctx, id, nil) })
	})
	b.Run("constant", func(b *testing.B) {
		run(b, func(ctx *fasthttp.RequestCtx) {
			h := &ctx.Response.Header
			h.SetCanonical([]byte("Cache-Control"), pollCacheControl)
			h.SetCanonical([]byte("Vary"), []byte("Accept-Encoding"))
			h.SetCanonical([]byte("ETag"), etag)
			h.SetContentTypeBytes(contentTypeJSON)
			h.SetCanonical([]byte("Content-Encoding"), []byte("gzip"))
			ctx.Response.SetBodyRaw(constBody)
		})
	})
}

// BenchmarkEncodeBody measures a cache miss of a viewer who keeps up:
// encoding and gzipping whole the poll body of a busy stream.
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
	var scratch [ringbuffer.Size]*ringbuffer.Bucket[bucket]
	parts := f.p.bodyParts(st, scratch[:0], formatV1, now, wholeSlots)
	body := compress.NewBody(parts.appendPlain(nil))
	b.ReportAllocs()
	b.SetBytes(int64(len(body.Plain)))
	b.ReportMetric(float64(len(body.Gzip)), "gzip-bytes")
	for b.Loop() {
		parts := f.p.bodyParts(st, scratch[:0], formatV1, now, wholeSlots)
		_ = compress.NewBodyTag(parts.appendPlain(nil), parts.tag())
	}
}

// BenchmarkDistinctCursors is the cache-miss amplification attack on a
// stream with a full minute of comments: each op is one second in which a
// client asks for every cursor there is (62 slots, gzip). "assembled" is
// the poll handler; "whole-per-cursor" encodes and gzips each slot's body
// whole, as every cache miss did before bodies were assembled from pieces.
// ns/op is CPU time per second of attack: 1e9 ns/op is one core.
func BenchmarkDistinctCursors(b *testing.B) {
	run := func(b *testing.B, serve func(f *fixture, st *stream, now int64)) {
		f := busyMinute(b)
		st := f.p.streams.get([]byte("s"), f.p.initial, 0)
		serve(f, st, st.ring.Tail()) // the minute's pieces, once
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			f.addBusySecond("s")
			f.step()
			b.StartTimer()
			serve(f, st, st.ring.Tail())
		}
	}
	var ctx fasthttp.RequestCtx
	uri := make([]byte, 0, 64)
	id := []byte("s")
	b.Run("assembled", func(b *testing.B) {
		run(b, func(f *fixture, st *stream, now int64) {
			for d := int64(0); d <= ringbuffer.Size+1; d++ {
				ctx.Request.Reset()
				ctx.Response.Reset()
				uri = strconv.AppendInt(append(uri[:0], "/v1/streams/s/reactions?since="...), now-d, 10)
				ctx.Request.SetRequestURIBytes(uri)
				ctx.Request.Header.Set("Accept-Encoding", "gzip")
				f.p.HandlePoll(&ctx, id, nil)
			}
		})
	})
	b.Run("whole-per-cursor", func(b *testing.B) {
		run(b, func(f *fixture, st *stream, now int64) {
			var scratch [ringbuffer.Size]*ringbuffer.Bucket[bucket]
			for slot := 0; slot < bodySlots; slot++ {
				parts := f.p.bodyParts(st, scratch[:0], formatV1, now, slot)
				_ = compress.NewBody(parts.appendPlain(nil))
			}
		})
	})
}

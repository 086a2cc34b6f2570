package push_test

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/store"
)

// BenchmarkSlowModeComments: comments of distinct users (each one's first,
// so each asks Redis for its turn) to a stream in slow mode, from parallel
// clients, against a stream without settings ("off", which never waits on
// Redis). Reports the script calls per comment: under load the turns that
// queued while a call ran share the next one; with few clients, each
// comment pays about one round trip.
func BenchmarkSlowModeComments(b *testing.B) {
	srv := redistest.Start(b)
	client, err := store.NewRedisClient(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	runs := 0
	for _, tc := range []struct {
		name, stream string
		par          int // clients per GOMAXPROCS
	}{{"off", "open", 16}, {"slow", "calm", 16}, {"slow-few-clients", "calm", 1}} {
		b.Run(tc.name, func(b *testing.B) {
			runs++ // each run its own keys: users take their turn once
			p := slowModeNode(b, srv, "bench-"+strconv.Itoa(runs), 3600)
			var seq atomic.Int64
			before := readCommands(b, client)
			b.ReportAllocs()
			b.SetParallelism(tc.par)
			b.RunParallel(func(pb *testing.PB) {
				var ctx fasthttp.RequestCtx
				for pb.Next() {
					ctx.Request.Reset()
					ctx.Response.Reset()
					ctx.Request.Header.SetMethod("POST")
					ctx.Request.Header.SetContentType("application/json")
					ctx.Request.SetBodyString(`{"text":"hello","user":"u` + strconv.FormatInt(seq.Add(1), 10) + `"}`)
					p.HandleComments(&ctx, []byte(tc.stream), nil)
					if code := ctx.Response.StatusCode(); code != fasthttp.StatusAccepted {
						b.Fatalf("comment: %d %s", code, ctx.Response.Body())
					}
				}
			})
			after := readCommands(b, client)
			b.ReportMetric(float64(after.scripts-before.scripts)/float64(b.N), "scripts/op")
		})
	}
}

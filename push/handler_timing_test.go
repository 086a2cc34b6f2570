package push

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/moderation"
	"github.com/emojicast/emojicast/store"
	"github.com/emojicast/emojicast/token"
)

// benchUsers is how many distinct users the send benchmarks rotate through,
// so the rate limiter looks up many keys as it does in production.
const benchUsers = 4096

// BenchmarkPushHandler measures an accepted send through the whole handler
// (content type, body parse, user check, rate limit, aggregator add, the 202
// body) on a running node whose flusher drains to a memory store, beside
// the cheapest handler that writes the same 202 body: the ratio is what
// accepting a tap costs over answering at all. The user rate and burst are
// set so high that no send is refused: the accept path is what is measured.
// "sampled": the fleet advertises 1/10 and every send states it; "redis":
// the node writes to a real Redis, through which it shares its limits.
func BenchmarkPushHandler(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	signer, err := token.NewSigner(secret, nil, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	stream := []byte("launch-2026")
	for _, bc := range []struct {
		name    string
		signer  *token.Signer
		sampled bool
		redis   bool
	}{{"open", nil, false, false}, {"token", signer, false, false}, {"open-sampled", nil, true, false}, {"open-redis", nil, false, true}} {
		var st store.Store = store.NewMemory(store.MemoryOptions{})
		if bc.redis {
			client, err := store.NewRedisClient(redistest.Start(b).URL())
			if err != nil {
				b.Fatal(err)
			}
			if st, err = store.NewRedis(store.RedisOptions{Client: client}); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
		}
		sample := ""
		if bc.sampled {
			sample = `,"sample":0.1`
			err := st.ReportAudience(context.Background(), "pull-1", []store.AudienceReport{{Stream: string(stream), Viewers: 1, Divisor: 10}})
			if err != nil {
				b.Fatal(err)
			}
		}
		p := benchNode(b, bc.signer, st)
		reqs := benchRequests(bc.signer, string(stream), sample)
		b.Run(bc.name, func(b *testing.B) {
			runSends(b, reqs, func(ctx *fasthttp.RequestCtx, i int) { p.HandleReactions(ctx, stream, benchClients[i]) })
		})
	}
	// The same open sends to a stream an operator moderates: an emoji
	// subset, slow mode and a thousand bans of other users, so each send
	// looks its stream and user up in the moderation snapshot.
	p := benchNode(b, nil, store.NewMemory(store.MemoryOptions{}))
	p.opts.Moderation = benchModeration(b, string(stream))
	reqs := benchRequests(nil, string(stream), "")
	b.Run("open-moderated", func(b *testing.B) {
		runSends(b, reqs, func(ctx *fasthttp.RequestCtx, i int) { p.HandleReactions(ctx, stream, benchClients[i]) })
	})
	b.Run("constant", func(b *testing.B) {
		runSends(b, benchRequests(nil, string(stream), ""), func(ctx *fasthttp.RequestCtx, _ int) { writeAccepted(ctx, 1) })
	})
}

func benchModeration(b *testing.B, stream string) *moderation.Rules {
	st := store.NewMemory(store.MemoryOptions{})
	ctx := context.Background()
	set := store.Settings{Emojis: []string{"like", "love", "haha", "wow", "clap", "fire"}, SlowModeS: 5}
	if err := st.PutSettings(ctx, stream, set); err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		ban := store.Ban{Stream: stream, User: "banned" + strconv.Itoa(i), Until: time.Now().Add(time.Hour)}
		if err := st.BanUser(ctx, ban); err != nil {
			b.Fatal(err)
		}
	}
	r, err := moderation.New(moderation.Options{Store: st, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Refresh(); err != nil {
		b.Fatal(err)
	}
	return r
}

// benchClients are the address group keys of the requests' senders: four
// users to an address, as in a household, so the address limits look up
// many keys too.
var benchClients = func() [][]byte {
	keys := make([][]byte, benchUsers)
	for i := range keys {
		keys[i] = []byte{203, 0, byte(i / 4 >> 8), byte(i / 4)}
	}
	return keys
}()

func benchNode(b *testing.B, signer *token.Signer, st store.Store) *Node {
	p, err := New(Options{
		Targets: []Target{{Name: "bench", Store: st}},
		Signer:  signer, UserRate: 1e9, UserBurst: 1 << 20, AddrWeightRate: 1e9, AddrWeightBurst: 1 << 20, Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	p.Start()
	b.Cleanup(func() { p.Stop(context.Background()) })
	return p
}

// benchRequests returns one send request per user, with a token when signer
// is set and the user in the body otherwise, and more fields (sample) if
// given.
func benchRequests(signer *token.Signer, stream, more string) []*fasthttp.Request {
	emojis := []string{"like", "love", "haha", "wow", "clap", "fire"}
	reqs := make([]*fasthttp.Request, benchUsers)
	for i := range reqs {
		user := "u" + strconv.Itoa(i)
		r := new(fasthttp.Request)
		r.Header.SetMethod(fasthttp.MethodPost)
		r.SetRequestURI("/v1/streams/" + stream + "/reactions")
		r.Header.SetContentType("application/json")
		if signer != nil {
			r.Header.Set("Authorization", "Bearer "+signer.Issue(user, stream, time.Now()))
		}
		r.SetBodyString(`{"emoji":"` + emojis[i%len(emojis)] + `","count":` + strconv.Itoa(1+i%3) + `,"user":"` + user + `"` + more + `}`)
		reqs[i] = r
	}
	return reqs
}

// runSends serves the requests round robin from parallel goroutines, each
// with its own users (a user sending from two goroutines at once could see
// the later clock reading charged first, and be limited), and fails unless
// every answer is 202.
func runSends(b *testing.B, reqs []*fasthttp.Request, handle func(ctx *fasthttp.RequestCtx, i int)) {
	b.ReportAllocs()
	b.SetBytes(int64(len(reqs[0].Body())))
	procs := runtime.GOMAXPROCS(0)
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		span := len(reqs) / procs
		first := (int(next.Add(1)) - 1) % procs * span
		i := 0
		for pb.Next() {
			i++
			reqs[first+i%span].CopyTo(&ctx.Request)
			ctx.Response.Reset()
			handle(&ctx, first+i%span)
			if code := ctx.Response.StatusCode(); code != fasthttp.StatusAccepted {
				b.Errorf("status %d: %s", code, ctx.Response.Body())
				return
			}
		}
	})
}

package push_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/store"
)

// redisCommands are Redis's command counters: script calls (EVALSHA and
// EVAL, what a client sends per shard and flush), every command run, those
// inside scripts included, and GETs (only the limit exchange runs them).
type redisCommands struct{ scripts, run, gets int64 }

func readCommands(t testing.TB, c redis.UniversalClient) redisCommands {
	t.Helper()
	stats, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var rc redisCommands
	for _, m := range regexp.MustCompile(`cmdstat_(\w+):calls=(\d+)`).FindAllStringSubmatch(stats, -1) {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		rc.run += n
		switch m[1] {
		case "evalsha", "eval":
			rc.scripts += n
		case "get":
			rc.gets += n
		}
	}
	return rc
}

// tapsAtRate runs a push node on Redis, sends tapsPerSec taps a second for
// d over 10 streams x 4 emojis through its handler, and returns the Redis
// commands per second it caused.
func tapsAtRate(t *testing.T, srv *redistest.Server, tapsPerSec, count int, d time.Duration) (scripts, run float64) {
	t.Helper()
	client, err := store.NewRedisClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.NewRedis(store.RedisOptions{Client: client, Prefix: "rate" + strconv.Itoa(tapsPerSec)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := push.New(push.Options{
		Targets: []push.Target{{Name: "redis", Store: st}}, UserRate: 1e9, UserBurst: 1e9,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	defer p.Stop(context.Background())
	emojis := []string{"like", "love", "fire", "wow"}
	var bodies [][]byte
	var streams [][]byte
	for s := range 10 {
		for _, e := range emojis {
			streams = append(streams, []byte(fmt.Sprintf("stream-%d", s)))
			bodies = append(bodies, []byte(fmt.Sprintf(`{"emoji":%q,"count":%d,"user":"u%d"}`, e, count, s)))
		}
	}
	sendsPerTick := tapsPerSec / count / 100
	var ctx fasthttp.RequestCtx
	send := func(i int) {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.Header.SetContentType("application/json")
		ctx.Request.SetBody(bodies[i%len(bodies)])
		p.HandleReactions(&ctx, streams[i%len(streams)], nil)
		if code := ctx.Response.StatusCode(); code != fasthttp.StatusAccepted {
			t.Fatalf("send: %d %s", code, ctx.Response.Body())
		}
	}
	before := readCommands(t, client)
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; time.Since(start) < d; {
		<-tick.C
		for range sendsPerTick {
			send(i)
			i++
		}
	}
	after := readCommands(t, client)
	secs := time.Since(start).Seconds()
	return float64(after.scripts-before.scripts) / secs, float64(after.run-before.run) / secs
}

// TestRedisCommandsDoNotGrowWithTaps prints the Redis commands per second
// of a push node at 1x and 10x the tap rate over the same streams and
// emojis: they must not grow with taps (go test -v -run this to see them).
func TestRedisCommandsDoNotGrowWithTaps(t *testing.T) {
	srv := redistest.Start(t)
	const d = 3 * time.Second
	scripts1, run1 := tapsAtRate(t, srv, 2_000, 5, d)
	scripts10, run10 := tapsAtRate(t, srv, 20_000, 20, d)
	var b strings.Builder
	fmt.Fprintf(&b, "Redis commands per second, 10 streams x 4 emojis, flush every 250 ms:\n")
	fmt.Fprintf(&b, "  %6d taps/s: %5.1f script calls, %6.1f commands run (inside scripts included)\n", 2_000, scripts1, run1)
	fmt.Fprintf(&b, "  %6d taps/s: %5.1f script calls, %6.1f commands run\n", 20_000, scripts10, run10)
	t.Log(b.String())
	if scripts10 > 1.25*scripts1 || run10 > 1.25*run1 {
		t.Fatalf("commands grew with the tap rate:\n%s", b.String())
	}
}

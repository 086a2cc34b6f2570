package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/admin"
	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/store"
)

// topFleet is a Redis store holding the reports of nodes pull nodes, each
// of its 1000 busiest streams (every pull node sees every stream, as
// behind a balancer that spreads viewers), and an Admin reading them.
func topFleet(t testing.TB, nodes int) (*admin.Handler, redis.UniversalClient) {
	t.Helper()
	srv := redistest.Start(t)
	client, err := store.NewRedisClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.NewRedis(store.RedisOptions{Client: client, Prefix: "top"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for n := range nodes {
		rep := make([]store.StreamStats, store.MaxTopStreams)
		for i := range rep {
			rep[i] = store.StreamStats{ID: fmt.Sprintf("stream-%04d", i), Viewers: int64(100000 - 97*i + n),
				TapsPerS: 1234.5, CommentsPerS: 12.25, Sample: 0.125}
		}
		if err := st.ReportTop(context.Background(), fmt.Sprintf("pull-%d", n), rep); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := admin.ParseTokens("ops:top-test-secret-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	a, err := admin.New(admin.Options{Tokens: tok, Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return a, client
}

func adminGet(a *admin.Handler, path string) (int, []byte) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI(path)
	ctx.Request.Header.Set("Authorization", "Bearer top-test-secret-0123456789")
	a.Handle(&ctx)
	return ctx.Response.StatusCode(), ctx.Response.Body()
}

// hgetalls returns how many HGETALLs Redis ran since it started.
func hgetalls(t testing.TB, c redis.UniversalClient) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`cmdstat_hgetall:calls=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// TestTopReadsTheStoreOncePerMaxAge: the ops pages polling the busiest
// streams and a stream's stats cost the store one read of the reports per
// second, however many calls ask, and the answers are still right.
func TestTopReadsTheStoreOncePerMaxAge(t *testing.T) {
	a, client := topFleet(t, 4)
	before := hgetalls(t, client)
	start := time.Now()
	for i := range 20 {
		code, body := adminGet(a, fmt.Sprintf("/v1/admin/streams?top=%d", 1+i*50))
		var got struct{ Streams []store.StreamStats }
		if code != fasthttp.StatusOK || json.Unmarshal(body, &got) != nil {
			t.Fatalf("GET streams: %d %s", code, body)
		}
		if len(got.Streams) != 1+i*50 || got.Streams[0].ID != "stream-0000" || got.Streams[0].Viewers != 100003 {
			t.Fatalf("top=%d lists %d streams, first %+v; want %d, stream-0000 with the most viewers a node saw (100003)",
				1+i*50, len(got.Streams), got.Streams[0], 1+i*50)
		}
		code, body = adminGet(a, "/v1/admin/streams/stream-0500")
		var one struct{ Stats *store.StreamStats }
		if code != fasthttp.StatusOK || json.Unmarshal(body, &one) != nil || one.Stats == nil || one.Stats.Viewers != 100000-97*500+3 {
			t.Fatalf("GET stream-0500: %d %s", code, body)
		}
	}
	reads := hgetalls(t, client) - before
	// LoadModeration's transaction reads two hashes per stream call.
	if took := time.Since(start); took < admin.DefaultTopMaxAge && reads-2*20 != 1 {
		t.Errorf("40 calls within %v read the reports %d times; want once", took.Round(time.Millisecond), reads-2*20)
	}
	// Past the age, the next call reads them again.
	time.Sleep(admin.DefaultTopMaxAge)
	adminGet(a, "/v1/admin/streams?top=5")
	if again := hgetalls(t, client) - before - reads; again != 1 {
		t.Errorf("a call past the max age read the reports %d times; want once", again)
	}
}

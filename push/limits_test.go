package push_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/store"
)

// TestQuietSendersCostNoLimitExchanges: 200 users tapping at a fifth of
// their limit (2 taps a second, 10 allowed) cause no limit exchange with
// Redis (the exchange script's GET per key), while one user near the
// limit does. Before, every key that sent was exchanged every 250 ms.
func TestQuietSendersCostNoLimitExchanges(t *testing.T) {
	srv := redistest.Start(t)
	client, err := store.NewRedisClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.NewRedis(store.RedisOptions{Client: client, Prefix: "quiet"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := push.New(push.Options{
		Targets: []push.Target{{Name: "redis", Store: st}},
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	defer p.Stop(context.Background())
	var ctx fasthttp.RequestCtx
	send := func(user string, count int) {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.Header.SetContentType("application/json")
		ctx.Request.SetBody(fmt.Appendf(nil, `{"emoji":"love","count":%d,"user":%q}`, count, user))
		p.HandleReactions(&ctx, []byte("limits"), nil)
		if code := ctx.Response.StatusCode(); code != fasthttp.StatusAccepted {
			t.Fatalf("send of %s: %d %s", user, code, ctx.Response.Body())
		}
	}
	// The exchange runs one GET per key (store/redis_limits.lua); the
	// flushes run none.
	exchanged := func() int64 { return readCommands(t, client).gets }
	before := exchanged()
	const users = 200
	for s := range 4 { // 4 s, each user sending once a second
		start := time.Now()
		for u := range users {
			send(fmt.Sprintf("quiet-%d", u), 2)
		}
		time.Sleep(time.Until(start.Add(time.Second)))
		if n := exchanged() - before; n != 0 {
			t.Fatalf("after %d s, %d users at 20%% of their limit caused %d key exchanges; want none", s+1, users, n)
		}
	}
	// One user at the limit crosses its share at once and is exchanged.
	send("loud", 20)
	deadline := time.Now().Add(5 * time.Second)
	for exchanged() == before {
		if time.Now().After(deadline) {
			t.Fatal("a user who sent the whole burst was not exchanged within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

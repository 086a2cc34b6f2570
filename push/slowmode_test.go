package push_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/moderation"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/store"
)

// slowModeNode is a push node on a Redis store whose stream "calm" is in
// slow mode for period.
func slowModeNode(t testing.TB, srv *redistest.Server, prefix string, period int) *push.Node {
	t.Helper()
	client, err := store.NewRedisClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.NewRedis(store.RedisOptions{Client: client, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.PutSettings(context.Background(), "calm", store.Settings{SlowModeS: period}); err != nil {
		t.Fatal(err)
	}
	rules, err := moderation.New(moderation.Options{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := rules.Refresh(); err != nil {
		t.Fatal(err)
	}
	p, err := push.New(push.Options{
		Targets: []push.Target{{Name: "redis", Store: st}}, Moderation: rules,
		SlowModeTimeout: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	t.Cleanup(func() { p.Stop(context.Background()) })
	return p
}

func comment(p *push.Node, user string) int {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.SetBodyString(`{"text":"hello","user":"` + user + `"}`)
	p.HandleComments(&ctx, []byte("calm"), nil)
	return ctx.Response.StatusCode()
}

// TestSlowModeWithoutTheStore: while Redis does not answer, a comment in
// slow mode is answered within SlowModeTimeout by the node's own record
// (it never hangs), and the node still refuses the user's next comment.
func TestSlowModeWithoutTheStore(t *testing.T) {
	srv := redistest.Start(t)
	p := slowModeNode(t, srv, "slow-stall", 60)
	if got := comment(p, "before"); got != fasthttp.StatusAccepted {
		t.Fatalf("a comment while Redis answers: %d; want 202", got)
	}
	srv.Pause()
	defer srv.Resume()
	start := time.Now()
	if got := comment(p, "alice"); got != fasthttp.StatusAccepted {
		t.Fatalf("alice's first comment while Redis is paused: %d; want 202 from the node's own record", got)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the comment waited %v for a paused Redis; want about SlowModeTimeout (100 ms)", took)
	}
	if got := comment(p, "alice"); got != fasthttp.StatusTooManyRequests {
		t.Fatalf("alice's second comment on the same node: %d; want 429", got)
	}
}

func commentFrom(p *push.Node, user, client string) int {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.SetBodyString(`{"text":"hello","user":"` + user + `"}`)
	p.HandleComments(&ctx, []byte("calm"), []byte(client))
	return ctx.Response.StatusCode()
}

// TestSlowModeBindsTheAddressGroup: in the open mode ids are whatever the
// body says, so slow mode takes one turn per address group: a second id
// from the same address waits its period; another address does not.
// (Before, review finding 7: one address posted 95 comments in 5 s with
// slow mode at 600 s, with 198 ids.)
func TestSlowModeBindsTheAddressGroup(t *testing.T) {
	srv := redistest.Start(t)
	p := slowModeNode(t, srv, "slow-group", 600)
	if got := commentFrom(p, "id1", "addr-a"); got != fasthttp.StatusAccepted {
		t.Fatalf("first comment: %d; want 202", got)
	}
	for i, id := range []string{"id2", "id3", "id4"} {
		if got := commentFrom(p, id, "addr-a"); got != fasthttp.StatusTooManyRequests {
			t.Errorf("comment %d from a fresh id, same address: %d; want 429", i+2, got)
		}
	}
	if got := commentFrom(p, "id5", "addr-b"); got != fasthttp.StatusAccepted {
		t.Errorf("a comment from another address: %d; want 202", got)
	}
}

// TestGroupCommentLimitBindsFreshIDs: outside slow mode, fresh ids from
// one address get the address group's comment allowance, not one each.
func TestGroupCommentLimitBindsFreshIDs(t *testing.T) {
	srv := redistest.Start(t)
	p := slowModeNode(t, srv, "slow-none", 0)
	accepted := 0
	for i := range 100 {
		if commentFrom(p, "fresh"+string(rune('a'+i%26))+string(rune('a'+i/26)), "addr-a") == fasthttp.StatusAccepted {
			accepted++
		}
	}
	if accepted > push.DefaultGroupCommentBurst+1 {
		t.Errorf("100 comments from fresh ids of one address: %d accepted; want at most the group's burst, %d (+1 refill)", accepted, push.DefaultGroupCommentBurst)
	}
}

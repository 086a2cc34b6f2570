package pull

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/store"
)

// TestCursorBeforeFirstSyncIsNotAheadOfTheStore: a pull node whose clock
// is 10 s ahead of the store's hands out cursors, before its first sync,
// from watch and from polls without one. A cursor ahead of the store's
// horizon would make the viewer skip every second up to it.
func TestCursorBeforeFirstSyncIsNotAheadOfTheStore(t *testing.T) {
	storeClk := clock.NewManual(t0)
	st := store.NewMemory(store.MemoryOptions{Clock: storeClk})
	p, err := New(Options{Store: st, Clock: clock.NewManual(t0.Add(10 * time.Second)), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	horizon, _ := st.Horizon(context.Background())

	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/v1/streams/s/watch?user=u")
	p.HandleWatch(&ctx, []byte("s"))
	var w struct{ Since int64 }
	if err := json.Unmarshal(ctx.Response.Body(), &w); err != nil {
		t.Fatalf("%v: %s", err, ctx.Response.Body())
	}
	if w.Since > horizon {
		t.Errorf("watch before the first sync gave cursor %d, %d s ahead of the store's horizon %d", w.Since, w.Since-horizon, horizon)
	}

	var poll fasthttp.RequestCtx
	poll.Request.SetRequestURI("/v1/streams/t/reactions")
	p.HandlePoll(&poll, []byte("t"), nil)
	var b struct{ Now int64 }
	if err := json.Unmarshal(poll.Response.Body(), &b); err != nil {
		t.Fatalf("%v: %s", err, poll.Response.Body())
	}
	if b.Now > horizon {
		t.Errorf("a poll without cursor before the first sync answered now %d, ahead of the store's horizon %d", b.Now, horizon)
	}
}

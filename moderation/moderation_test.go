package moderation

import (
	"context"
	"testing"
	"time"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/emoji"
	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/store"
)

func TestRulesFollowTheStore(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_763_700_000, 0))
	st := store.NewMemory(store.MemoryOptions{Clock: clk})
	r, err := New(Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.PutSettings(ctx, "s", store.Settings{Emojis: []string{"fire", "love"}, SlowModeS: 3, CommentBudget: 5}); err != nil {
		t.Fatal(err)
	}
	if err := st.BanUser(ctx, store.Ban{Stream: "b", User: "u1", Until: clk.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if r.Stream([]byte("s")) != nil {
		t.Fatal("rules enforce settings before they read the store")
	}
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	s := r.Stream([]byte("s"))
	love, _ := emoji.Default().IndexString("love")
	like, _ := emoji.Default().IndexString("like")
	if s == nil || !s.AllowsEmoji(love) || s.AllowsEmoji(like) || s.SlowMode != 3*time.Second || s.CommentBudget != 5 || s.Closed {
		t.Fatalf("stream s = %+v; want love and fire only, slow mode 3 s, budget 5", s)
	}
	b := r.Stream([]byte("b"))
	now := clk.Now().UnixMilli()
	if b == nil || !b.Banned([]byte("u1"), now) || b.Banned([]byte("u2"), now) || !b.AllowsEmoji(like) {
		t.Fatalf("stream b = %+v; want u1 banned, every emoji", b)
	}
	if b.Banned([]byte("u1"), now+time.Minute.Milliseconds()) {
		t.Fatal("a ban outlives its end")
	}
	if r.Stream([]byte("other")) != nil {
		t.Fatal("an unmoderated stream has rules")
	}
}

// TestStreamLookupDoesNotAllocate: the send path's lookups of a stream and
// a ban cost no allocation.
func TestStreamLookupDoesNotAllocate(t *testing.T) {
	st := store.NewMemory(store.MemoryOptions{})
	ctx := context.Background()
	_ = st.BanUser(ctx, store.Ban{Stream: "s", User: "u1", Until: time.Now().Add(time.Hour)})
	r, _ := New(Options{Store: st})
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	id, user := []byte("s"), []byte("u2")
	testutil.NoAllocs(t, "a moderated stream's lookup", func() {
		if s := r.Stream(id); s == nil || s.Banned(user, 0) {
			t.Fatal("wrong rules")
		}
	})
}

func TestSlowModeIsBounded(t *testing.T) {
	s := NewSlowMode(64, nil)
	now := time.Now().UnixNano()
	if w := s.Allow([]byte("s"), []byte("u"), time.Second, now); w != 0 {
		t.Fatalf("first comment waits %v", w)
	}
	if w := s.Allow([]byte("s"), []byte("u"), time.Second, now+int64(400*time.Millisecond)); w != 600*time.Millisecond {
		t.Fatalf("second comment after 400ms waits %v; want 600ms", w)
	}
	if w := s.Allow([]byte("t"), []byte("u"), time.Second, now); w != 0 {
		t.Fatalf("another stream's comment waits %v", w)
	}
	for i := range 1000 {
		s.Allow([]byte("s"), []byte{byte(i), byte(i >> 8)}, time.Second, now)
	}
	if len(s.last) > 64 {
		t.Fatalf("slow mode remembers %d users; want at most 64", len(s.last))
	}
}

package moderation

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/emojicast/emojicast/store"
)

// BenchmarkSendCheck measures what moderation adds to a send: the lookup
// of its stream, and for a moderated stream the ban and emoji checks,
// with 1000 other streams moderated and 1000 users banned from this one.
func BenchmarkSendCheck(b *testing.B) {
	st := store.NewMemory(store.MemoryOptions{})
	ctx := context.Background()
	for i := range 1000 {
		_ = st.PutSettings(ctx, "other"+strconv.Itoa(i), store.Settings{SlowModeS: 5})
		_ = st.BanUser(ctx, store.Ban{Stream: "moderated", User: "banned" + strconv.Itoa(i), Until: time.Now().Add(time.Hour)})
	}
	_ = st.PutSettings(ctx, "moderated", store.Settings{Emojis: []string{"love", "fire"}})
	r, err := New(Options{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Refresh(); err != nil {
		b.Fatal(err)
	}
	empty, _ := New(Options{Store: store.NewMemory(store.MemoryOptions{})})
	if err := empty.Refresh(); err != nil {
		b.Fatal(err)
	}
	user, now := []byte("u12345"), time.Now().UnixMilli()
	for _, bc := range []struct {
		name   string
		rules  *Rules
		stream string
	}{
		{"nothing-moderated", empty, "launch-2026"},
		{"stream-not-moderated", r, "launch-2026"},
		{"stream-moderated", r, "moderated"},
	} {
		id := []byte(bc.stream)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if m := bc.rules.Stream(id); m != nil && (m.Banned(user, now) || !m.AllowsEmoji(1)) {
						b.Fatal("refused")
					}
				}
			})
		})
	}
}

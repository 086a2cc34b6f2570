package store

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/emojicast/emojicast/clock"
)

// The moderation part of the contract: every Store that is a Moderator
// must meet it too.

func moderator(t *testing.T, s Store) Moderator {
	t.Helper()
	m, ok := s.(Moderator)
	if !ok {
		t.Fatalf("%T is not a Moderator", s)
	}
	return m
}

func contractCommentIDsAndRetractions(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	mustAddBatch(t, s, Batch{ID: "with-ids", Comments: []CommentAt{
		{"a", t0, Comment{User: "u1", Text: "spam: buy now", ID: "n1.1"}},
		{"a", t0, Comment{User: "u2", Text: "old node, no id"}},
	}})
	sealThrough(clk, t0+1)
	first := mustCollect(t, s, Cursor{"a", t0 - 1})
	want := []Second{{"a", t0, []Count{}, []Comment{{"u1", "spam: buy now", "n1.1"}, {"u2", "old node, no id", ""}}, nil}}
	if !reflect.DeepEqual(first.Seconds, want) {
		t.Fatalf("Seconds = %s; want %s", describe(first.Seconds), describe(want))
	}
	// The second is full of comments: the retraction still gets in.
	var texts []string
	for range DefaultMaxComments {
		texts = append(texts, "flood")
	}
	mustAddBatch(t, s, Batch{ID: "flood", Comments: comments("a", t0+2, texts...)})
	m := moderator(t, s)
	for range 2 { // retracting twice lists it once
		if err := m.Retract(ctx, "a", "n1.1"); err != nil {
			t.Fatalf("Retract: %v", err)
		}
	}
	sealThrough(clk, t0+3)
	next := mustCollect(t, s, Cursor{"a", first.Horizon})
	if len(next.Seconds) != 1 || next.Seconds[0].Second <= t0 || !reflect.DeepEqual(next.Seconds[0].Retracted, []string{"n1.1"}) ||
		len(next.Seconds[0].Comments) != DefaultMaxComments {
		t.Fatalf("after the retraction: %s; want a later second with %d comments retracting n1.1 once",
			describe(next.Seconds), DefaultMaxComments)
	}
}

func contractSettingsReplaceAndVersion(t *testing.T, s Store, _ *clock.Manual) {
	m := moderator(t, s)
	v0, err := m.ModerationVersion(ctx)
	if err != nil {
		t.Fatalf("ModerationVersion: %v", err)
	}
	set := Settings{Emojis: []string{"love", "fire"}, CommentBudget: 10, SlowModeS: 5}
	if err := m.PutSettings(ctx, "a", set); err != nil {
		t.Fatalf("PutSettings: %v", err)
	}
	if err := m.PutSettings(ctx, "b", Settings{Closed: true, CommentsOff: true}); err != nil {
		t.Fatalf("PutSettings: %v", err)
	}
	v1, _ := m.ModerationVersion(ctx)
	if v1 <= v0 {
		t.Fatalf("version %d after two changes; want more than %d", v1, v0)
	}
	got := mustLoad(t, m)
	want := map[string]Settings{"a": set, "b": {Closed: true, CommentsOff: true}}
	if got.Version != v1 || !reflect.DeepEqual(got.Settings, want) {
		t.Fatalf("LoadModeration = %+v; want version %d and %+v", got, v1, want)
	}
	// Zero settings remove the stream.
	if err := m.PutSettings(ctx, "a", Settings{}); err != nil {
		t.Fatalf("PutSettings: %v", err)
	}
	if got := mustLoad(t, m); len(got.Settings) != 1 || got.Version <= v1 {
		t.Fatalf("after clearing a: %+v; want only b, a newer version", got)
	}
}

func contractBansExpire(t *testing.T, s Store, clk *clock.Manual) {
	m := moderator(t, s)
	now := clk.Now()
	for _, b := range []Ban{
		{"a", "u1", now.Add(10 * time.Second)},
		{"a", "u2", now.Add(time.Hour)},
		{"b", "u1", now.Add(time.Hour)},
	} {
		if err := m.BanUser(ctx, b); err != nil {
			t.Fatalf("BanUser: %v", err)
		}
	}
	if got := mustLoad(t, m).Bans; len(got) != 3 || got[0].User != "u1" || !got[0].Until.Equal(now.Add(10*time.Second)) {
		t.Fatalf("bans = %+v; want three, a/u1 first", got)
	}
	clk.Add(11 * time.Second)
	if got := mustLoad(t, m).Bans; len(got) != 2 || got[0].User != "u2" {
		t.Fatalf("after a/u1's ban ended: %+v; want a/u2 and b/u1", got)
	}
	if ok, err := m.UnbanUser(ctx, "a", "u2"); err != nil || !ok {
		t.Fatalf("UnbanUser(a, u2) = %v, %v; want true", ok, err)
	}
	if ok, err := m.UnbanUser(ctx, "a", "nobody"); err != nil || ok {
		t.Fatalf("UnbanUser(a, nobody) = %v, %v; want false", ok, err)
	}
	if got := mustLoad(t, m).Bans; len(got) != 1 || got[0].Stream != "b" {
		t.Fatalf("after unbanning a/u2: %+v; want b/u1 only", got)
	}
}

func contractTopMergesFreshReports(t *testing.T, s Store, clk *clock.Manual) {
	m := moderator(t, s)
	report := func(node string, streams ...StreamStats) {
		t.Helper()
		if err := m.ReportTop(ctx, node, streams); err != nil {
			t.Fatalf("ReportTop: %v", err)
		}
	}
	report("pull-1", StreamStats{ID: "a", Viewers: 100, TapsPerS: 5, Sample: 1}, StreamStats{ID: "b", Viewers: 7, Sample: 1})
	clk.Add(TopTTL - time.Second)
	report("pull-2", StreamStats{ID: "a", Viewers: 120, TapsPerS: 6, CommentsPerS: 1, Sample: 0.5}, StreamStats{ID: "c", Viewers: 50, Sample: 1})
	top, err := m.Top(ctx, 2)
	want := []StreamStats{{ID: "a", Viewers: 120, TapsPerS: 6, CommentsPerS: 1, Sample: 0.5}, {ID: "c", Viewers: 50, Sample: 1}}
	if err != nil || !reflect.DeepEqual(top, want) {
		t.Fatalf("Top(2) = %+v, %v; want %+v", top, err, want)
	}
	clk.Add(2 * time.Second) // pull-1's report expires
	if top, _ := m.Top(ctx, 10); len(top) != 2 || top[1].ID != "c" {
		t.Fatalf("after pull-1 stopped reporting: %+v; want a and c", top)
	}
}

func contractModerationIsBounded(t *testing.T, s Store, _ *clock.Manual) {
	m := moderator(t, s)
	for i := range MaxModeratedStreams {
		if err := m.PutSettings(ctx, fmt.Sprintf("s%d", i), Settings{SlowModeS: 1}); err != nil {
			t.Fatalf("PutSettings #%d: %v", i, err)
		}
	}
	if err := m.PutSettings(ctx, "one-more", Settings{SlowModeS: 1}); !errors.Is(err, ErrModerationFull) {
		t.Fatalf("PutSettings past the bound: %v; want ErrModerationFull", err)
	}
	// Replacing or clearing a stream's settings is never refused.
	if err := m.PutSettings(ctx, "s0", Settings{SlowModeS: 2}); err != nil {
		t.Fatalf("PutSettings of a held stream: %v", err)
	}
	if err := m.PutSettings(ctx, "s1", Settings{}); err != nil {
		t.Fatalf("clearing: %v", err)
	}
	if err := m.PutSettings(ctx, "one-more", Settings{SlowModeS: 1}); err != nil {
		t.Fatalf("PutSettings once there is room: %v", err)
	}
}

func mustLoad(t *testing.T, m Moderator) Moderation {
	t.Helper()
	md, err := m.LoadModeration(ctx)
	if err != nil {
		t.Fatalf("LoadModeration: %v", err)
	}
	return md
}

package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/emojicast/emojicast/clock"
)

func mustHistory(t *testing.T, s Store, stream string, from, to int64) History {
	t.Helper()
	h, err := s.History(ctx, stream, from, to)
	if err != nil {
		t.Fatalf("History(%s, %d, %d): %v", stream, from, to, err)
	}
	return h
}

// contractHistoryKeepsSealedSecondsPastTheWindow adds three minutes of
// counts and comments, moves far past the ring's window and reads back
// exactly what was added, second by second, clipped to what is sealed.
func contractHistoryKeepsSealedSecondsPastTheWindow(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	var want []Second
	for i := int64(0); i < 180; i++ {
		sec := t0 + i
		clk.Set(time.Unix(sec, 100e6))
		if i%7 == 3 {
			continue // a silent second
		}
		deltas := []Delta{{"a", sec, "like", i + 1}, {"b", sec, "wow", 1}}
		w := Second{Stream: "a", Second: sec, Counts: []Count{{"like", i + 1}}}
		if i%5 == 0 {
			deltas = append(deltas, Delta{"a", sec, "fire", 2})
			w.Counts = []Count{{"fire", 2}, {"like", i + 1}}
		}
		batch := Batch{ID: fmt.Sprintf("h-%d", i), Deltas: deltas}
		if i%4 == 0 {
			batch.Comments = comments("a", sec, fmt.Sprintf("at %d", i), "second: one")
			w.Comments = []Comment{{User: "u0", Text: fmt.Sprintf("at %d", i)}, {User: "u1", Text: "second: one"}}
		}
		mustAddBatch(t, s, batch)
		want = append(want, w)
	}
	// Seconds up to t0+179 are sealed; t0+179 is still open a moment
	// before its seal.
	clk.Set(time.Unix(t0+180, 0).Add(DefaultSealDelay / 2))
	h := mustHistory(t, s, "a", t0-100, t0+500)
	if h.Horizon != t0+178 {
		t.Fatalf("Horizon = %d; want %d", h.Horizon, t0+178)
	}
	if !reflect.DeepEqual(h.Seconds, want[:len(want)-1]) {
		t.Fatalf("history before the last seal:\n%s\nwant\n%s", describe(h.Seconds), describe(want[:len(want)-1]))
	}
	// Long past the window (and the live keys' retention), every second is there.
	sealThrough(clk, t0+1000)
	h = mustHistory(t, s, "a", t0-100, t0+500)
	if !reflect.DeepEqual(h.Seconds, want) {
		t.Fatalf("history past the window:\n%s\nwant\n%s", describe(h.Seconds), describe(want))
	}
	// A sub-range, across a minute boundary, holds only its seconds.
	h = mustHistory(t, s, "a", t0+58, t0+61)
	var sub []Second
	for _, w := range want {
		if w.Second >= t0+58 && w.Second <= t0+61 {
			sub = append(sub, w)
		}
	}
	if !reflect.DeepEqual(h.Seconds, sub) {
		t.Fatalf("history of [t0+58, t0+61] = %s; want %s", describe(h.Seconds), describe(sub))
	}
	if h := mustHistory(t, s, "nobody", t0, t0+100); len(h.Seconds) != 0 {
		t.Fatalf("history of an unknown stream = %s; want none", describe(h.Seconds))
	}
}

// contractHistoryHoldsCarriedSecondsOnce: a late delta shows in history at
// the second it was carried into, as viewers saw it, and nowhere else.
func contractHistoryHoldsCarriedSecondsOnce(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	mustAdd(t, s, Delta{"a", t0, "love", 1})
	sealThrough(clk, t0+3)
	mustAddBatch(t, s, Batch{ID: "late", Deltas: []Delta{{"a", t0, "love", 7}}, Comments: comments("a", t0, "late")})
	sealThrough(clk, t0+200)
	h := mustHistory(t, s, "a", t0-10, t0+100)
	want := []Second{
		{"a", t0, []Count{{"love", 1}}, nil, nil},
		{"a", t0 + 4, []Count{{"love", 7}}, []Comment{{User: "u0", Text: "late"}}, nil},
	}
	if !reflect.DeepEqual(h.Seconds, want) {
		t.Fatalf("history with a carried delta = %s; want %s", describe(h.Seconds), describe(want))
	}
}

func contractHistoryBoundsItsRange(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	if _, err := s.History(ctx, "a", t0, t0+MaxHistoryRange); err == nil {
		t.Fatalf("History over %d s succeeded; want an error", MaxHistoryRange+1)
	}
	mustAdd(t, s, Delta{"a", t0, "love", 1})
	sealThrough(clk, t0)
	if h := mustHistory(t, s, "a", t0, t0+MaxHistoryRange-1); len(h.Seconds) != 1 {
		t.Fatalf("History over exactly %d s = %s; want the one second", MaxHistoryRange, describe(h.Seconds))
	}
	if h := mustHistory(t, s, "a", t0+1, t0); len(h.Seconds) != 0 || h.Horizon != t0 {
		t.Fatalf("History of an empty range = %+v; want nothing and the horizon", h)
	}
}

// contractHistoryDropsRetractedComments: a replay never shows a comment an
// operator took down, whether it was retracted while its second was open,
// just after it was sealed, or long after, once only history holds it; the
// second's counts and other comments stay, and a second left with nothing
// is no second.
func contractHistoryDropsRetractedComments(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	m := moderator(t, s)
	mustAddBatch(t, s, Batch{ID: "hist-ids", Deltas: []Delta{{"a", t0, "love", 2}}, Comments: []CommentAt{
		{"a", t0, Comment{User: "u1", Text: "spam early", ID: "n1.1"}},
		{"a", t0, Comment{User: "u2", Text: "fine", ID: "n1.2"}},
		{"a", t0 + 1, Comment{User: "u1", Text: "spam late", ID: "n1.3"}},
		{"a", t0 + 2, Comment{User: "u3", Text: "alone, spam", ID: "n1.4"}},
		{"b", t0, Comment{User: "u1", Text: "same id, other stream", ID: "n1.1"}},
	}})
	// Retracted before its second is sealed.
	if err := m.Retract(ctx, "a", "n1.1"); err != nil {
		t.Fatalf("Retract: %v", err)
	}
	sealThrough(clk, t0+3)
	// Retracted just after.
	if err := m.Retract(ctx, "a", "n1.4"); err != nil {
		t.Fatalf("Retract: %v", err)
	}
	h := mustHistory(t, s, "a", t0-5, t0+2)
	want := []Second{
		{"a", t0, []Count{{"love", 2}}, []Comment{{"u2", "fine", "n1.2"}}, nil},
		{"a", t0 + 1, []Count{}, []Comment{{"u1", "spam late", "n1.3"}}, nil},
	}
	if !equalHistory(h.Seconds, want) {
		t.Fatalf("history with two retracted comments = %s; want %s", describe(h.Seconds), describe(want))
	}
	// An hour later, past the live keys and the ring, a retraction still
	// takes the comment out of history.
	clk.Add(time.Hour)
	if err := m.Retract(ctx, "a", "n1.3"); err != nil {
		t.Fatalf("Retract: %v", err)
	}
	h = mustHistory(t, s, "a", t0-5, t0+2)
	if !equalHistory(h.Seconds, want[:1]) {
		t.Fatalf("history after a retraction an hour later = %s; want %s", describe(h.Seconds), describe(want[:1]))
	}
	// Ids are per stream.
	if h := mustHistory(t, s, "b", t0-5, t0+2); len(h.Seconds) != 1 || len(h.Seconds[0].Comments) != 1 {
		t.Fatalf("history of another stream with the same comment id = %s; want its comment kept", describe(h.Seconds))
	}
}

// equalHistory compares seconds, taking no counts and empty counts alike.
func equalHistory(got, want []Second) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if len(g.Counts) == 0 && len(w.Counts) == 0 {
			g.Counts, w.Counts = nil, nil
		}
		if !reflect.DeepEqual(g, w) {
			return false
		}
	}
	return true
}

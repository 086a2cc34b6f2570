package store

import (
	"reflect"
	"testing"
)

// TestRedisPointsOfCommentsAndTakedowns: the data-point stream holds, in
// the order written, a record per count (with the second it was carried
// into when late), per comment (with its place in its second) and per
// takedown: all an archive needs to hold what History answers.
func TestRedisPointsOfCommentsAndTakedowns(t *testing.T) {
	r, clk := newRedisOnClock(t, RedisOptions{})
	t0 := contractT0.Unix()
	mustAddBatch(t, r, Batch{ID: "n-1",
		Deltas:   []Delta{{"a", t0, "love", 3}},
		Comments: []CommentAt{{"a", t0, Comment{User: "u1", Text: "hi", ID: "c1"}}, {"a", t0, Comment{User: "u2", Text: "yo", ID: "c2"}}},
	})
	sealThrough(clk, t0+3)
	mustAddBatch(t, r, Batch{ID: "n-2",
		Deltas:      []Delta{{"a", t0, "fire", 2}},
		Retractions: []Retraction{{"a", t0 + 4, "c1"}},
	})
	msgs, err := r.client.XRange(ctx, PointsKey(r.opts.Prefix, ShardOf("a")), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var got []Point
	for _, m := range msgs {
		p, err := ParsePoint(m.Values)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	open := t0 + 4 // the oldest open second once t0+3 is sealed
	want := []Point{
		{Kind: PointCount, Stream: "a", Second: t0, At: t0, Emoji: "love", Count: 3},
		{Kind: PointComment, Stream: "a", Second: t0, At: t0, Comment: Comment{User: "u1", Text: "hi", ID: "c1"}, Index: 0},
		{Kind: PointComment, Stream: "a", Second: t0, At: t0, Comment: Comment{User: "u2", Text: "yo", ID: "c2"}, Index: 1},
		{Kind: PointCount, Stream: "a", Second: t0, At: open, Emoji: "fire", Count: 2},
		{Kind: PointRetraction, Stream: "a", Second: t0 + 4, At: open, Comment: Comment{ID: "c1"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("data points\n%+v\nwant\n%+v", got, want)
	}
}

func TestParsePointRefusesMalformed(t *testing.T) {
	for _, v := range []map[string]any{
		{},
		{"stream": "a", "second": "x", "emoji": "love", "count": "1"},
		{"stream": "a", "second": "1", "emoji": "love", "count": "many"},
		{"stream": "a", "second": "1", "comment": "no colon", "i": "0"},
		{"stream": "a", "second": "1", "at": "soon", "retract": "c1"},
		{"second": "1", "emoji": "love", "count": "1"},
		{"stream": "a", "second": "1"},
	} {
		if p, err := ParsePoint(v); err == nil {
			t.Errorf("ParsePoint(%v) = %+v; want an error", v, p)
		}
	}
}

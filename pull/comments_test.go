package pull

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/emojicast/emojicast/compress"
	"github.com/emojicast/emojicast/store"
)

type commentBody struct {
	Now     int64 `json:"now"`
	Buckets []struct {
		T     int64            `json:"t"`
		C     map[string]int64 `json:"c"`
		Burst []string         `json:"burst"`
		M     []struct {
			U string `json:"u"`
			X string `json:"x"`
		} `json:"m"`
	} `json:"buckets"`
}

func (f *fixture) addComments(stream string, deltas []store.Delta, comments ...store.Comment) {
	f.t.Helper()
	f.seq++
	b := store.Batch{ID: fmt.Sprint(f.seq), Deltas: deltas}
	for _, c := range comments {
		b.Comments = append(b.Comments, store.CommentAt{Stream: stream, Second: f.clk.Now().Unix(), Comment: c})
	}
	if err := f.st.Add(context.Background(), b); err != nil {
		f.t.Fatal(err)
	}
}

// TestCommentsInBuckets: a second's comments are in its bucket as "m",
// oldest first and escaped; a second with comments and no reactions is
// not empty.
func TestCommentsInBuckets(t *testing.T) {
	f := newFixture(t)
	f.poll("s", "")
	f.sync()
	since := f.p.Horizon()
	f.addComments("s", []store.Delta{{Stream: "s", Second: f.clk.Now().Unix(), Emoji: "love", Count: 2}},
		store.Comment{User: "u1", Text: "what a goal!"}, store.Comment{User: "u2", Text: `say "hi" \ 🔥`})
	f.step()
	f.addComments("s", nil, store.Comment{User: "u3", Text: "words only"})
	f.step()
	f.step()
	ctx := f.poll("s", fmt.Sprintf("?since=%d", since))
	var b commentBody
	if err := json.Unmarshal(ctx.Response.Body(), &b); err != nil {
		t.Fatalf("%v: %s", err, ctx.Response.Body())
	}
	if len(b.Buckets) != 2 {
		t.Fatalf("got %d buckets; want 2: %s", len(b.Buckets), ctx.Response.Body())
	}
	type m = struct{ U, X string }
	var got [][]m
	for _, bk := range b.Buckets {
		var ms []m
		for _, c := range bk.M {
			ms = append(ms, m{c.U, c.X})
		}
		got = append(got, ms)
	}
	want := [][]m{{{"u1", "what a goal!"}, {"u2", `say "hi" \ 🔥`}}, {{"u3", "words only"}}}
	if !reflect.DeepEqual(got, want) || b.Buckets[0].C["love"] != 2 || len(b.Buckets[1].C) != 0 {
		t.Fatalf("buckets %s; want the comments %v with love 2 in the first", ctx.Response.Body(), want)
	}
}

// busyComments are 30 comments such as a busy second brings: short
// cheers, some longer sentences, several languages, some repeated.
func busyComments() []store.Comment {
	texts := []string{
		"GOOOOAL!!!", "what a strike 🔥🔥🔥", "unbelievable", "he did it again", "進球了！！！",
		"¡qué golazo!", "replay please", "that keeper had no chance", "GOAL", "😱😱😱",
		"best match of the season so far, no doubt about it", "ref was right", "no way",
		"ゴール！", "let's gooo", "what a goal!", "top corner", "incredible pass before that too",
		"this is why we watch", "GOAL GOAL GOAL", "wow", "❤️❤️", "9 minutes left, hold on",
		"he's been quiet all game and then this", "legend", "what a goal!", "omg", "ставлю на победу",
		"my heart cannot take this", "🐐",
	}
	out := make([]store.Comment, len(texts))
	for i, x := range texts {
		out[i] = store.Comment{User: fmt.Sprintf("u%07d", 1_000_000+i*7919), Text: x}
	}
	return out
}

// TestBusySecondWith30CommentsIsOneSmallBody: a second with a full budget
// of comments and busy reactions is still one compact gzip body.
func TestBusySecondWith30CommentsIsOneSmallBody(t *testing.T) {
	f := newFixture(t)
	f.poll("busy", "")
	f.sync()
	since := f.p.Horizon()
	sec := f.clk.Now().Unix()
	deltas := []store.Delta{{Stream: "busy", Second: sec, Emoji: "love", Count: 1204}, {Stream: "busy", Second: sec, Emoji: "fire", Count: 388},
		{Stream: "busy", Second: sec, Emoji: "clap", Count: 97}, {Stream: "busy", Second: sec, Emoji: "wow", Count: 12}}
	f.addComments("busy", deltas, busyComments()...)
	f.step()
	f.step()
	ctx := f.poll("busy", fmt.Sprintf("?since=%d", since))
	var b commentBody
	if err := json.Unmarshal(ctx.Response.Body(), &b); err != nil || len(b.Buckets) != 1 || len(b.Buckets[0].M) != 30 {
		t.Fatalf("poll = %s (%v); want one bucket with 30 comments", ctx.Response.Body(), err)
	}
	body := compress.NewBody(ctx.Response.Body())
	t.Logf("a busy second with 30 comments: %d bytes of JSON, %d bytes gzipped", len(body.Plain), len(body.Gzip))
	if len(body.Gzip) > 1500 {
		t.Errorf("gzipped body is %d bytes; want under 1,500", len(body.Gzip))
	}
}

// retract takes comments down in the current second, as an operator does.
func (f *fixture) retract(stream string, ids ...string) {
	f.t.Helper()
	f.seq++
	b := store.Batch{ID: fmt.Sprint(f.seq)}
	for _, id := range ids {
		b.Retractions = append(b.Retractions, store.Retraction{Stream: stream, Second: f.clk.Now().Unix(), ID: id})
	}
	if err := f.st.Add(context.Background(), b); err != nil {
		f.t.Fatal(err)
	}
}

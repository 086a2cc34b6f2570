package pull

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/compress"
	"github.com/emojicast/emojicast/store"
)

func (f *fixture) history(stream, query string, headers ...string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/v1/streams/" + stream + "/history" + query)
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Set(headers[i], headers[i+1])
	}
	f.p.HandleHistory(&ctx, []byte(stream))
	return &ctx
}

type historyBody struct {
	From    int64             `json:"from"`
	To      int64             `json:"to"`
	Buckets []json.RawMessage `json:"buckets"`
}

func decodeHistory(t *testing.T, ctx *fasthttp.RequestCtx) historyBody {
	t.Helper()
	if ctx.Response.StatusCode() != fasthttp.StatusOK {
		t.Fatalf("history answered %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	var b historyBody
	d := json.NewDecoder(bytes.NewReader(ctx.Response.Body()))
	d.DisallowUnknownFields()
	if err := d.Decode(&b); err != nil {
		t.Fatalf("%v: %s", err, ctx.Response.Body())
	}
	return b
}

// TestHistoryReplaysWhatPollsSaw: every bucket a poll served while it was in
// the ring comes back from history byte for byte, long after the ring
// dropped it; whole sealed minutes are kept 30 s, anything else 1 s.
func TestHistoryReplaysWhatPollsSaw(t *testing.T) {
	f := newFixture(t)
	f.poll("s", "")
	f.sync()
	start := f.clk.Now().Unix()
	minute := (start/60 + 1) * 60 // the first whole minute
	seen := map[int64]string{}
	for i := int64(0); f.clk.Now().Unix() < minute+120; i++ {
		var comments []store.Comment
		if i%3 == 0 {
			comments = []store.Comment{{User: "u" + strconv.FormatInt(i, 10), Text: fmt.Sprintf(`"hi" %d ✨`, i)}}
		}
		f.addComments("s", []store.Delta{
			{Stream: "s", Second: f.clk.Now().Unix(), Emoji: "like", Count: i%30 + 1},
			{Stream: "s", Second: f.clk.Now().Unix(), Emoji: "fire", Count: 25},
		}, comments...)
		f.step()
		var b struct{ Buckets []json.RawMessage }
		if err := json.Unmarshal(f.poll("s", "?since="+strconv.FormatInt(f.p.Horizon()-1, 10)).Response.Body(), &b); err != nil {
			t.Fatal(err)
		}
		for _, raw := range b.Buckets {
			var bt struct{ T int64 }
			_ = json.Unmarshal(raw, &bt)
			seen[bt.T] = string(raw)
		}
	}
	// Past the ring's window.
	for range 2 * store.Window {
		f.step()
	}
	q := fmt.Sprintf("?from=%d&to=%d", minute, minute+119)
	ctx := f.history("s", q)
	b := decodeHistory(t, ctx)
	if b.From != minute || b.To != minute+119 || len(b.Buckets) != 120 {
		t.Fatalf("history of two minutes: from %d to %d with %d buckets; want %d, %d, 120", b.From, b.To, len(b.Buckets), minute, minute+119)
	}
	for i, raw := range b.Buckets {
		if want := seen[minute+int64(i)]; string(raw) != want {
			t.Fatalf("history bucket %d = %s; the poll served %s", i, raw, want)
		}
	}
	if cc := string(ctx.Response.Header.Peek("Cache-Control")); cc != string(cacheSealed) {
		t.Fatalf("whole sealed minutes served with Cache-Control %q; want max-age=30", cc)
	}
	var etag string
	for k, v := range ctx.Response.Header.All() {
		if strings.EqualFold(string(k), "ETag") {
			etag = string(v)
		}
	}
	if !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag %q is not strong", etag)
	}
	if again := f.history("s", q, "If-None-Match", etag); again.Response.StatusCode() != fasthttp.StatusNotModified {
		t.Fatalf("revalidating with the ETag answered %d; want 304", again.Response.StatusCode())
	}

	// Not minute-aligned, or reaching past the horizon: max-age=1, to clipped.
	for _, tc := range []struct {
		from, to, wantTo int64
	}{
		{minute + 1, minute + 60, minute + 60},
		{minute + 120, minute + 1000, f.p.Horizon()},
	} {
		ctx := f.history("s", fmt.Sprintf("?from=%d&to=%d", tc.from, tc.to))
		b := decodeHistory(t, ctx)
		if cc := string(ctx.Response.Header.Peek("Cache-Control")); cc != string(cachePartial) {
			t.Fatalf("history [%d, %d] served with Cache-Control %q; want max-age=1", tc.from, tc.to, cc)
		}
		if b.From != tc.from || b.To != tc.wantTo {
			t.Fatalf("history [%d, %d] answered from %d to %d; want to %d", tc.from, tc.to, b.From, b.To, tc.wantTo)
		}
	}
}

func TestHistoryRejectsBadRanges(t *testing.T) {
	f := newFixture(t)
	f.sync()
	for _, q := range []string{
		"", "?from=60", "?to=60", "?from=120&to=60", "?from=-60&to=0", "?from=0&to=3600",
		"?from=1.5&to=60", "?from=0x10&to=60", "?from=&to=", "?from=99999999999999999999&to=1",
	} {
		ctx := f.history("s", q)
		if ctx.Response.StatusCode() != fasthttp.StatusBadRequest || !bytes.Contains(ctx.Response.Body(), []byte(`"invalid_range"`)) {
			t.Errorf("history%s answered %d %s; want 400 invalid_range", q, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	if ctx := f.history("s", "?from=0&to=3599"); ctx.Response.StatusCode() != fasthttp.StatusOK {
		t.Errorf("history of exactly an hour answered %d %s; want 200", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range [][2]string{
		{"1763700000", "1763703599"}, {"0", "0"}, {"-1", "5"}, {"10", "9"}, {"", "1"},
		{"1.0", "2"}, {"0", "3600"}, {"99999999999999999999", "1"},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, fromArg, toArg []byte) {
		from, to, ok := parseRange(fromArg, toArg)
		wantFrom, errFrom := strconv.ParseInt(string(fromArg), 10, 64)
		wantTo, errTo := strconv.ParseInt(string(toArg), 10, 64)
		valid := errFrom == nil && errTo == nil && len(fromArg) <= 19 && len(toArg) <= 19 &&
			wantFrom >= 0 && wantTo >= wantFrom && wantTo-wantFrom < store.MaxHistoryRange &&
			fromArg[0] != '+' && toArg[0] != '+'
		if !ok {
			if valid && len(fromArg) <= 18 && len(toArg) <= 18 {
				t.Fatalf("parseRange(%q, %q) refused a valid range", fromArg, toArg)
			}
			return
		}
		if !valid || from != wantFrom || to != wantTo {
			t.Fatalf("parseRange(%q, %q) = %d, %d; strconv says %d (%v), %d (%v)", fromArg, toArg, from, to, wantFrom, errFrom, wantTo, errTo)
		}
	})
}

func TestHistoryCacheIsBounded(t *testing.T) {
	c := newHistoryCache(historyCacheBytes, historyCacheEntries, newMetrics(nil))
	body := compress.NewBody(bytes.Repeat([]byte(`{"t":1,"c":{"love":1}},`), 20_000))
	size := len(body.Plain) + len(body.Gzip)
	for i := range int64(10 * historyCacheBytes / size) {
		c.put(historyKey{stream: "s", from: i * 60, to: i*60 + 59}, body, time.Unix(0, 0))
		if c.bytes > historyCacheBytes {
			t.Fatalf("cache holds %d bytes in %d bodies; bound is %d", c.bytes, c.len(), historyCacheBytes)
		}
	}
	last := int64(10*historyCacheBytes/size) - 1
	at := time.Unix(1, 0)
	if c.get(historyKey{stream: "s", from: last * 60, to: last*60 + 59}, at) == nil || c.get(historyKey{stream: "s", from: 0, to: 59}, at) != nil {
		t.Fatal("the cache kept the oldest body or lost the newest")
	}
}

// TestHistoryLeavesOutRetractedComments: a replay never shows a comment an
// operator took down, and a comment taken down after its minute was
// replayed (and kept by this node and the edge) leaves the replay once the
// answer's max-age has passed. The counts and other comments stay.
func TestHistoryLeavesOutRetractedComments(t *testing.T) {
	f := newFixture(t)
	f.sync()
	minute := (f.clk.Now().Unix()/60 + 1) * 60
	f.clk.Set(time.Unix(minute, 200e6))
	f.addComments("s", []store.Delta{{Stream: "s", Second: minute, Emoji: "like", Count: 3}},
		store.Comment{User: "u1", Text: "spam early", ID: "n1.1"},
		store.Comment{User: "u2", Text: "a fine comment", ID: "n1.2"})
	if err := f.st.Retract(context.Background(), "s", "n1.1"); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(10 * time.Second)
	f.addComments("s", nil, store.Comment{User: "u1", Text: "spam late", ID: "n1.3"})
	f.clk.Set(time.Unix(minute+62, 0))
	f.sync()
	q := fmt.Sprintf("?from=%d&to=%d", minute, minute+59)
	texts := func() string {
		ctx := f.history("s", q)
		if cc := string(ctx.Response.Header.Peek("Cache-Control")); cc != string(cacheSealed) {
			t.Fatalf("a sealed minute served with Cache-Control %q; want public, max-age=30: it may still change", cc)
		}
		var got []string
		for _, raw := range decodeHistory(t, ctx).Buckets {
			var bt struct{ M []struct{ X string } }
			_ = json.Unmarshal(raw, &bt)
			for _, m := range bt.M {
				got = append(got, m.X)
			}
		}
		return strings.Join(got, "|")
	}
	if got := texts(); got != "a fine comment|spam late" {
		t.Fatalf("replay of a minute with a comment taken down while live: %q; want %q", got, "a fine comment|spam late")
	}
	// Taken down an hour later: the node's kept answer ages out.
	f.clk.Add(time.Hour)
	if err := f.st.Retract(context.Background(), "s", "n1.3"); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(HistorySealedMaxAge)
	if got := texts(); got != "a fine comment" {
		t.Fatalf("replay %v after a comment was taken down an hour later: %q; want %q", HistorySealedMaxAge, got, "a fine comment")
	}
}

package pull

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/store"
)

// busyMinute fills stream s with a minute of busy seconds, each with
// reactions and a full budget of comments, and returns the fixture.
func busyMinute(t testing.TB) *fixture {
	f := newFixture(t)
	f.poll("s", "")
	f.sync()
	for range 62 {
		f.addBusySecond("s")
		f.step()
		f.poll("s", "") // a stream nobody polls for a minute is dropped
	}
	return f
}

func (f *fixture) addBusySecond(stream string) {
	sec := f.clk.Now().Unix()
	f.addComments(stream, []store.Delta{{Stream: stream, Second: sec, Emoji: "love", Count: 1204}, {Stream: stream, Second: sec, Emoji: "fire", Count: 388},
		{Stream: stream, Second: sec, Emoji: "clap", Count: f.clk.Now().Unix() % 97}}, busyComments()...)
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	zr.Multistream(false)
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	if rest, _ := io.ReadAll(zr); len(rest) != 0 {
		t.Fatalf("%d bytes after the gzip member", len(rest))
	}
	return out
}

// TestEveryCursorGetsItsBody: for every cursor distance, whole and
// assembled bodies alike, the gzip answer (checked by the standard
// library's reader) decodes to the plain answer, which holds exactly the
// seconds after the cursor; HEAD gives GET's ETag, a repeated poll with
// that ETag gets 304, and the two representations have different tags.
func TestEveryCursorGetsItsBody(t *testing.T) {
	f := busyMinute(t)
	now := f.p.Horizon()
	etags := map[string]int64{}
	for d := int64(0); d <= 70; d++ {
		q := "?since=" + strconv.FormatInt(now-d, 10)
		gz := f.poll("s", q, "Accept-Encoding", "gzip")
		plain := f.poll("s", q)
		if gz.Response.StatusCode() != 200 || string(gz.Response.Header.ContentEncoding()) != "gzip" || plain.Response.StatusCode() != 200 {
			t.Fatalf("d=%d: status %d/%d, encoding %q", d, gz.Response.StatusCode(), plain.Response.StatusCode(), gz.Response.Header.ContentEncoding())
		}
		if got := gunzip(t, gz.Response.Body()); !bytes.Equal(got, plain.Response.Body()) {
			t.Fatalf("d=%d: gzip decodes to\n%s\nplain is\n%s", d, got, plain.Response.Body())
		}
		var b commentBody
		b2 := decode(t, plain)
		if err := json.Unmarshal(plain.Response.Body(), &b); err != nil {
			t.Fatal(err)
		}
		wantN := min(d, 60)
		if b2.Now != now || int64(len(b.Buckets)) != wantN {
			t.Fatalf("d=%d: now %d, %d buckets; want %d, %d", d, b2.Now, len(b.Buckets), now, wantN)
		}
		for i, bk := range b.Buckets {
			if want := now - wantN + 1 + int64(i); bk.T != want || len(bk.M) != 30 || bk.C["love"] != 1204 {
				t.Fatalf("d=%d: bucket %d is second %d with %d comments; want %d with 30", d, i, bk.T, len(bk.M), want)
			}
		}
		if gap := bytes.Contains(plain.Response.Body(), []byte(`"gap":true`)); gap != (d > 60) {
			t.Fatalf("d=%d: gap %v", d, gap)
		}
		for _, r := range []*fasthttp.RequestCtx{gz, plain} {
			etag := responseETag(r)
			enc := string(r.Response.Header.ContentEncoding())
			head := f.pollMethod("HEAD", "s", q, "Accept-Encoding", enc)
			if got := responseETag(head); etag == "" || got != etag || head.Response.StatusCode() != 200 {
				t.Fatalf("d=%d %s: HEAD status %d, ETag %s; GET's ETag is %s", d, enc, head.Response.StatusCode(), got, etag)
			}
			if again := f.poll("s", q, "Accept-Encoding", enc, "If-None-Match", etag); again.Response.StatusCode() != 304 || len(again.Response.Body()) != 0 {
				t.Fatalf("d=%d %s: If-None-Match %s answered %d", d, enc, etag, again.Response.StatusCode())
			}
			// Equal bodies (every cursor past the window) share a tag;
			// different ones never do.
			key := etag
			if prev, ok := etags[key]; ok && prev != d && !(prev > 60 && d > 60) {
				t.Fatalf("d=%d and d=%d share ETag %s", prev, d, etag)
			}
			etags[key] = d
		}
	}
}

func (f *fixture) pollMethod(method, stream, query string, headers ...string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI("/v1/streams/" + stream + "/reactions" + query)
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Set(headers[i], headers[i+1])
	}
	f.p.HandlePoll(&ctx, []byte(stream), nil)
	return &ctx
}

// TestDistinctCursorsAreNotEncodedPerRequest is the cache-miss
// amplification attack: a client asking, every second, for every cursor
// there is (GET and HEAD, gzip and plain) on a stream with a full minute of
// comments. Each second may compress whole only the bodies of viewers who
// keep up, and pieces only for the seconds that are new; every other
// answer is assembled from stored pieces.
func TestDistinctCursorsAreNotEncodedPerRequest(t *testing.T) {
	f := busyMinute(t)
	attack := func() {
		now := f.p.Horizon()
		for d := int64(-2); d <= 63; d++ {
			q := "?since=" + strconv.FormatInt(now-d, 10)
			f.poll("s", q, "Accept-Encoding", "gzip")
			f.poll("s", q)
			f.pollMethod("HEAD", "s", q, "Accept-Encoding", "gzip")
		}
		f.poll("s", "?since=0", "Accept-Encoding", "gzip")
	}
	attack() // compresses the minute's pieces once
	for sec := range 5 {
		f.addBusySecond("s")
		f.step()
		whole, pieces := counter(t, f.p.metrics.bodiesEncoded), counter(t, f.p.metrics.piecesEncoded)
		attack()
		whole, pieces = counter(t, f.p.metrics.bodiesEncoded)-whole, counter(t, f.p.metrics.piecesEncoded)-pieces
		// Whole: the slots of viewers who keep up (0..5), each once.
		// Pieces: the second's head, and the new bucket once as the
		// first of a list and once after a comma.
		if whole > wholeSlots+1 || pieces > 3 {
			t.Fatalf("second %d: %d distinct cursors cost %v whole encodings and %v pieces; want at most %d and 3",
				sec, 66*3+1, whole, pieces, wholeSlots+1)
		}
	}
}

// TestNonCanonicalCursorsAreRefused: each cursor has one spelling, so a
// cache keyed on the spelling holds one entry per cursor.
func TestNonCanonicalCursorsAreRefused(t *testing.T) {
	f := busyMinute(t)
	now := f.p.Horizon()
	for _, q := range []string{"?since=-1", "?since=-" + fmt.Sprint(now), "?since=0" + fmt.Sprint(now), "?since=%3" + fmt.Sprint(now)[1:], "?since=", "?since=00"} {
		ctx := f.poll("s", q)
		if ctx.Response.StatusCode() != 400 || !bytes.Contains(ctx.Response.Body(), []byte("invalid_since")) {
			t.Errorf("%s: %d %.80s; want 400 invalid_since", q, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	for _, q := range []string{"?since=0", "?since=" + fmt.Sprint(now), "?since=" + fmt.Sprint(now) + "&since=-1", ""} {
		if ctx := f.poll("s", q); ctx.Response.StatusCode() != 200 {
			t.Errorf("%s: %d %.80s; want 200", q, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// responseETag returns a response's ETag as the handler spelled it (fasthttp's
// Peek would look for "Etag").
func responseETag(ctx *fasthttp.RequestCtx) string {
	for k, v := range ctx.Response.Header.All() {
		if string(k) == "ETag" {
			return string(v)
		}
	}
	return ""
}

// compactAnswer decodes a compact (v=2) body into v1's shape, with the
// emoji set's ids for the indices.
func compactAnswer(t *testing.T, f *fixture, b []byte) (now int64, gap bool, buckets []map[string]any) {
	t.Helper()
	var top []json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || len(top) < 5 || len(top) > 6 {
		t.Fatalf("compact body %.200s: %v", b, err)
	}
	_ = json.Unmarshal(top[0], &now)
	gap = len(top) == 6 && string(top[5]) == "1"
	buckets = []map[string]any{}
	var raw [][]json.RawMessage
	if err := json.Unmarshal(top[4], &raw); err != nil {
		t.Fatalf("compact buckets %.200s: %v", top[4], err)
	}
	for _, r := range raw {
		var sec, burst int64
		var counts []int64
		_ = json.Unmarshal(r[0], &sec)
		_ = json.Unmarshal(r[1], &burst)
		_ = json.Unmarshal(r[2], &counts)
		bk := map[string]any{"t": sec}
		c := map[string]int64{}
		var bursts []string
		for i, n := range counts {
			id := f.p.opts.Emojis.At(i).ID
			if n > 0 {
				c[id] = n
			}
			if burst&(1<<i) != 0 {
				bursts = append(bursts, id)
			}
		}
		bk["c"] = c
		if len(bursts) > 0 {
			bk["burst"] = bursts
		}
		if len(r) > 6 {
			t.Fatalf("compact bucket %s has %d fields; want at most 6", r, len(r))
		}
		var um, ids, retracted []string
		for i, dst := range []*[]string{&um, &ids, &retracted} {
			if len(r) > 3+i {
				if err := json.Unmarshal(r[3+i], dst); err != nil {
					t.Fatalf("compact bucket field %d: %v", 3+i, err)
				}
			}
		}
		if len(ids) != len(um)/2 {
			t.Fatalf("compact bucket %s: %d comments, %d ids", r, len(um)/2, len(ids))
		}
		var ms []map[string]string
		for i := 0; i+1 < len(um); i += 2 {
			m := map[string]string{"u": um[i], "x": um[i+1]}
			if id := ids[i/2]; id != "" {
				m["id"] = id
			}
			ms = append(ms, m)
		}
		if len(ms) > 0 {
			bk["m"] = ms
		}
		if len(retracted) > 0 {
			bk["r"] = retracted
		}
		buckets = append(buckets, bk)
	}
	return now, gap, buckets
}

// TestCompactBodySaysWhatV1Says: for every cursor distance the compact
// body (v=2) holds exactly the seconds, counts, bursts, comments with their
// ids and retractions of the v1 body, gzip or not.
func TestCompactBodySaysWhatV1Says(t *testing.T) {
	f := busyMinute(t)
	f.addComments("s", []store.Delta{{Stream: "s", Second: f.clk.Now().Unix(), Emoji: "wow", Count: 3}},
		store.Comment{User: "u1", Text: "what a goal!", ID: "c1.1"}, store.Comment{User: "u2", Text: `say "hi"`, ID: "c1.2"},
		store.Comment{User: "u3", Text: "no id"})
	f.step()
	// The next second takes c1.2 down, and a comment of its own with it;
	// the one after has nothing but a retraction.
	f.addComments("s", nil, store.Comment{User: "u4", Text: "gone at once", ID: "c2.1"}, store.Comment{User: "u5", Text: "stays", ID: "c2.2"})
	f.retract("s", "c1.2", "c2.1")
	f.step()
	f.retract("s", "c2.2")
	f.step()
	now := f.p.Horizon()
	for d := int64(0); d <= 62; d++ {
		q := "?since=" + strconv.FormatInt(now-d, 10)
		var v1 struct {
			Now     int64            `json:"now"`
			Gap     bool             `json:"gap"`
			Buckets []map[string]any `json:"buckets"`
		}
		if err := json.Unmarshal(f.poll("s", q).Response.Body(), &v1); err != nil {
			t.Fatal(err)
		}
		for _, enc := range []string{"", "gzip"} {
			r := f.poll("s", q+"&v=2", "Accept-Encoding", enc)
			b := r.Response.Body()
			if string(r.Response.Header.ContentEncoding()) == "gzip" {
				b = gunzip(t, b)
			}
			if etag := responseETag(r); etag != "" || len(r.Response.Header.Peek("Vary")) == 0 && string(r.Response.Header.ContentEncoding()) == "gzip" {
				t.Fatalf("d=%d %q: compact answer with ETag %q and Vary %q", d, enc, etag, r.Response.Header.Peek("Vary"))
			}
			if ct := r.Response.Header.ContentType(); string(ct) == "application/json" {
				t.Fatalf("d=%d %q: compact answer with Content-Type %s; want none", d, enc, ct)
			}
			cnow, cgap, cb := compactAnswer(t, f, b)
			want, _ := json.Marshal(v1.Buckets)
			got, _ := json.Marshal(cb)
			if cnow != v1.Now || cgap != v1.Gap || string(got) != string(want) {
				t.Fatalf("d=%d %q: compact says now %d gap %v\n%.300s\nv1 says now %d gap %v\n%.300s", d, enc, cnow, cgap, got, v1.Now, v1.Gap, want)
			}
		}
	}
	for _, q := range []string{"?v=3", "?v=02", "?v=", "?v=%32"} {
		if r := f.poll("s", q); r.Response.StatusCode() != 400 || !bytes.Contains(r.Response.Body(), []byte("invalid_version")) {
			t.Errorf("%s: %d %.80s; want 400 invalid_version", q, r.Response.StatusCode(), r.Response.Body())
		}
	}
	if r := f.poll("fresh", "?v=2&since=5"); string(r.Response.Body()) != "[5,250,1,0,[]]" {
		t.Errorf("unsynced compact answer %s", r.Response.Body())
	}
	// A busy stream's compact answer paces its viewer at CompactMinNextMS.
	var top []json.RawMessage
	if err := json.Unmarshal(f.poll("s", "?v=2").Response.Body(), &top); err != nil || string(top[1]) != "2000" {
		t.Errorf("compact answer next_ms %s (%v); want 2000", top[1], err)
	}
}

package pull

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/store"
)

var t0 = time.Unix(1_763_700_000, 500_000_000)

// fixture is a Pull node whose syncer the test runs by hand.
type fixture struct {
	t   testing.TB
	clk *clock.Manual
	st  *store.Memory
	p   *Node
	sc  syncScratch
	seq int
}

func newFixture(t testing.TB) *fixture {
	clk := clock.NewManual(t0)
	st := store.NewMemory(store.MemoryOptions{Clock: clk})
	p, err := New(Options{Store: st, Clock: clk, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return &fixture{t: t, clk: clk, st: st, p: p}
}

func (f *fixture) add(stream, emoji string, n int64) {
	f.seq++
	err := f.st.Add(context.Background(), store.Batch{ID: strconv.Itoa(f.seq), Deltas: []store.Delta{
		{Stream: stream, Second: f.clk.Now().Unix(), Emoji: emoji, Count: n},
	}})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) sync() {
	if err := f.p.sync(context.Background(), &f.sc); err != nil {
		f.t.Fatal(err)
	}
}

// step moves the clock a second and syncs.
func (f *fixture) step() {
	f.clk.Add(time.Second)
	f.sync()
}

func (f *fixture) poll(stream, query string, headers ...string) *fasthttp.RequestCtx {
	return f.pollFrom(nil, stream, query, headers...)
}

// pollFrom polls as the client with the given address key.
func (f *fixture) pollFrom(client []byte, stream, query string, headers ...string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/v1/streams/" + stream + "/reactions" + query)
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Set(headers[i], headers[i+1])
	}
	f.p.HandlePoll(&ctx, []byte(stream), client)
	return &ctx
}

type body struct {
	Now     int64 `json:"now"`
	NextMS  int64 `json:"next_ms"`
	Viewers int64 `json:"viewers"`
	Buckets []struct {
		T int64            `json:"t"`
		C map[string]int64 `json:"c"`
	} `json:"buckets"`
}

func decode(t *testing.T, ctx *fasthttp.RequestCtx) body {
	t.Helper()
	var b body
	if err := json.Unmarshal(ctx.Response.Body(), &b); err != nil {
		t.Fatalf("%v: %s", err, ctx.Response.Body())
	}
	return b
}

func TestUnsyncedStreamAnswersWithTheClientsCursor(t *testing.T) {
	f := newFixture(t)
	f.sync()
	ctx := f.poll("fresh", "?since=1763699990")
	b := decode(t, ctx)
	if b.Now != 1763699990 || len(b.Buckets) != 0 || b.NextMS != unsyncedNextMS {
		t.Fatalf("unsynced poll = %+v; want now = the cursor, no buckets, next_ms %d", b, unsyncedNextMS)
	}
	if cc := string(ctx.Response.Header.Peek("Cache-Control")); cc != "no-store" {
		t.Fatalf("unsynced answer Cache-Control %q; want no-store", cc)
	}
	// Without a cursor, the answer points a few seconds back, never ahead.
	b = decode(t, f.poll("fresh2", ""))
	if b.Now > f.p.Horizon() {
		t.Fatalf("unsynced poll without cursor: now %d is after the horizon %d", b.Now, f.p.Horizon())
	}
	f.sync()
	if b := decode(t, f.poll("fresh", "?since=1763699990")); b.Now != f.p.Horizon() {
		t.Fatalf("after a sync: now %d; want the horizon %d", b.Now, f.p.Horizon())
	}
}

func TestNewStreamIsBackfilled(t *testing.T) {
	f := newFixture(t)
	var want []int64
	for i := range 10 {
		f.add("s", "like", int64(i+1))
		want = append(want, f.clk.Now().Unix())
		f.step()
	}
	f.step()
	f.poll("s", "") // registers the stream
	f.sync()
	b := decode(t, f.poll("s", "?since=0"))
	if len(b.Buckets) != 10 || b.Buckets[0].T != want[0] || b.Buckets[9].C["like"] != 10 {
		t.Fatalf("backfilled stream: %+v; want the 10 seconds written before anyone polled", b.Buckets)
	}
}

func TestQuietStreamsPollLess(t *testing.T) {
	f := newFixture(t)
	f.poll("busy", "")
	f.poll("quiet", "")
	f.sync()
	for range 15 {
		f.add("busy", "clap", 3)
		f.step()
	}
	busy, quiet := decode(t, f.poll("busy", "")), decode(t, f.poll("quiet", ""))
	if busy.NextMS != f.p.opts.BusyNextMS || quiet.NextMS != f.p.opts.QuietNextMS {
		t.Fatalf("next_ms busy %d, quiet %d; want %d and %d", busy.NextMS, quiet.NextMS, f.p.opts.BusyNextMS, f.p.opts.QuietNextMS)
	}
	if quiet.NextMS <= busy.NextMS {
		t.Fatal("a quiet stream is not polled less often than a busy one")
	}
}

func TestIdleStreamsAreEvicted(t *testing.T) {
	f := newFixture(t)
	f.poll("kept", "")
	f.poll("idle", "")
	f.sync()
	for range 70 {
		f.poll("kept", "")
		f.step()
	}
	if f.p.streams.len() != 1 {
		t.Fatalf("%d streams after 70 s; want 1, the idle one evicted", f.p.streams.len())
	}
}

func TestStreamBound(t *testing.T) {
	f := newFixture(t)
	f.p.streams = newRegistry(100, newMetrics(nil).streamsEvicted)
	for i := range 1000 {
		f.poll(fmt.Sprintf("s%d", i), "")
	}
	if n := f.p.streams.len(); n != 100 {
		t.Fatalf("registry holds %d streams; want the bound, 100", n)
	}
}

func TestCachedPollDoesNotAllocate(t *testing.T) {
	f := newFixture(t)
	f.poll("s", "")
	f.sync()
	for range 3 {
		f.add("s", "love", 30)
		f.step()
	}
	query := "?since=" + strconv.FormatInt(f.p.Horizon()-2, 10)
	var ctx fasthttp.RequestCtx
	uri := []byte("/v1/streams/s/reactions" + query)
	id, client := []byte("s"), []byte{127, 0, 0, 1}
	run := func() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.SetRequestURIBytes(uri)
		ctx.Request.Header.Set("Accept-Encoding", "gzip")
		f.p.HandlePoll(&ctx, id, client)
	}
	run() // encodes and caches the body
	if ctx.Response.StatusCode() != 200 || len(ctx.Response.Body()) == 0 {
		t.Fatalf("poll: %d, %d bytes", ctx.Response.StatusCode(), len(ctx.Response.Body()))
	}
	testutil.NoAllocs(t, "a cached poll", run)
}

func TestParseSince(t *testing.T) {
	for _, tc := range []struct {
		in          string
		want        int64
		present, ok bool
	}{
		{"1763700000", 1763700000, true, true},
		{"0", 0, true, true},
		{"-5", 0, true, false},
		{"007", 0, true, false},
		{"00", 0, true, false},
		{"%31", 0, true, false},
		{"", 0, true, false},
		{"-", 0, true, false},
		{"+5", 0, true, false},
		{"1.5", 0, true, false},
		{"1e9", 0, true, false},
		{" 1", 0, true, false},
		{"1234567890123456789", 0, true, false},
	} {
		got, present, ok := parseSince([]byte(tc.in))
		if got != tc.want || present != tc.present || ok != tc.ok {
			t.Errorf("parseSince(%q) = %d, %v, %v; want %d, %v, %v", tc.in, got, present, ok, tc.want, tc.present, tc.ok)
		}
	}
	if _, present, ok := parseSince(nil); present || !ok {
		t.Error("an absent since must be fine")
	}
}

func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"1763700000", "-1", "", "99999999999999999999", "1.0", "0x10"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, present, ok := parseSince(b)
		if !present || !ok {
			return
		}
		// One spelling per cursor: what is accepted is what the server
		// itself would write.
		if want := strconv.FormatInt(got, 10); got < 0 || want != string(b) {
			t.Fatalf("parseSince(%q) = %d, spelled %q by the server", b, got, want)
		}
	})
}

func TestRawSince(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{"since=5", "5"},
		{"a=1&since=%35&since=6", "%35"},
		{"%73ince=5", "<nil>"},
		{"since", "<nil>"},
		{"since=", ""},
		{"", "<nil>"},
	} {
		got := rawArg([]byte(tc.query), "since")
		if s := string(got); got == nil && tc.want != "<nil>" || got != nil && s != tc.want {
			t.Errorf("rawArg(%q, since) = %q; want %s", tc.query, got, tc.want)
		}
	}
}

func TestSlotOf(t *testing.T) {
	const now = 1000
	for _, tc := range []struct {
		since int64
		want  int
	}{{now, 0}, {now + 5, 0}, {now - 1, 1}, {now - 60, 60}, {now - 61, gapSlot}, {-1 << 40, gapSlot}} {
		if got := slotOf(now, tc.since); got != tc.want {
			t.Errorf("slotOf(%d, %d) = %d; want %d", now, tc.since, got, tc.want)
		}
	}
}

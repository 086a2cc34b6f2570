package store

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/emojicast/emojicast/clock"
)

// contractT0 is a second boundary; tests move the clock from there.
var contractT0 = time.Unix(1_763_700_000, 0)

// newStoreFunc makes an empty store whose sealing follows clk.
type newStoreFunc func(t *testing.T, clk clock.Clock) Store

// runContract runs the contract every Store implementation must meet.
func runContract(t *testing.T, newStore newStoreFunc) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s Store, clk *clock.Manual)
	}{
		{"SealedSecondsAreCollected", contractSealedSecondsAreCollected},
		{"OpenSecondsAreNotCollected", contractOpenSecondsAreNotCollected},
		{"CountsAccumulate", contractCountsAccumulate},
		{"LateCountsAreCarriedOnce", contractLateCountsAreCarriedOnce},
		{"CursorsFilterAndGroup", contractCursorsFilterAndGroup},
		{"WindowBoundsBackfill", contractWindowBoundsBackfill},
		{"SealedSecondsNeverChange", contractSealedSecondsNeverChange},
		{"RetriedBatchesCountOnce", contractRetriedBatchesCountOnce},
		{"ControlSumsFreshNodeReports", contractControlSumsFreshNodeReports},
		{"ControlKeepsSteadyDivisor", contractControlKeepsSteadyDivisor},
		{"CommentsTravelWithCounts", contractCommentsTravelWithCounts},
		{"LateCommentsAreCarriedOnce", contractLateCommentsAreCarriedOnce},
		{"CommentsPerSecondAreBounded", contractCommentsPerSecondAreBounded},
		{"CarriedCommentsSpillIntoFollowingSeconds", contractCarriedCommentsSpill},
		{"CommentSpillIsBounded", contractCommentSpillIsBounded},
		{"CommentLoadKeepsFreshReports", contractCommentLoadKeepsFreshReports},
		{"HistoryKeepsSealedSecondsPastTheWindow", contractHistoryKeepsSealedSecondsPastTheWindow},
		{"HistoryHoldsCarriedSecondsOnce", contractHistoryHoldsCarriedSecondsOnce},
		{"HistoryBoundsItsRange", contractHistoryBoundsItsRange},
		{"HistoryDropsRetractedComments", contractHistoryDropsRetractedComments},
		{"CommentIDsAndRetractions", contractCommentIDsAndRetractions},
		{"SettingsReplaceAndVersion", contractSettingsReplaceAndVersion},
		{"BansExpire", contractBansExpire},
		{"TopMergesFreshReports", contractTopMergesFreshReports},
		{"ModerationIsBounded", contractModerationIsBounded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewManual(contractT0.Add(100 * time.Millisecond))
			tc.run(t, newStore(t, clk), clk)
		})
	}
}

var ctx = context.Background()

var batchSeq int

func mustAdd(t *testing.T, s Store, deltas ...Delta) {
	t.Helper()
	batchSeq++
	mustAddBatch(t, s, Batch{ID: fmt.Sprintf("test-%d", batchSeq), Deltas: deltas})
}

func mustAddBatch(t *testing.T, s Store, b Batch) {
	t.Helper()
	if err := s.Add(ctx, b); err != nil {
		t.Fatalf("Add: %v", err)
	}
}

func mustCollect(t *testing.T, s Store, cursors ...Cursor) Collection {
	t.Helper()
	c, err := s.Collect(ctx, cursors)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	for i := range c.Seconds {
		slices.SortFunc(c.Seconds[i].Counts, func(a, b Count) int {
			if a.Emoji < b.Emoji {
				return -1
			}
			if a.Emoji > b.Emoji {
				return 1
			}
			return 0
		})
	}
	return c
}

// sealThrough moves the clock until second sec is sealed.
func sealThrough(clk *clock.Manual, sec int64) {
	clk.Set(time.Unix(sec+1, 0).Add(DefaultSealDelay + time.Millisecond))
}

func describe(secs []Second) string {
	out := ""
	for _, s := range secs {
		out += fmt.Sprintf("%s@%d%v%v ", s.Stream, s.Second, s.Counts, s.Comments)
	}
	return out
}

func contractSealedSecondsAreCollected(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	mustAdd(t, s, Delta{"a", t0, "love", 3}, Delta{"a", t0, "haha", 1}, Delta{"a", t0 + 2, "love", 5})
	sealThrough(clk, t0+2)
	c := mustCollect(t, s, Cursor{"a", t0 - 1})
	if c.Horizon != t0+2 {
		t.Fatalf("Collect's Horizon = %d; want %d", c.Horizon, t0+2)
	}
	if h, err := s.Horizon(ctx); err != nil || h != t0+2 {
		t.Fatalf("Horizon() = %d, %v; want %d", h, err, t0+2)
	}
	want := []Second{
		{"a", t0, []Count{{"haha", 1}, {"love", 3}}, nil, nil},
		{"a", t0 + 2, []Count{{"love", 5}}, nil, nil},
	}
	if !reflect.DeepEqual(c.Seconds, want) {
		t.Fatalf("Seconds = %s; want %s", describe(c.Seconds), describe(want))
	}
}

func contractOpenSecondsAreNotCollected(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	mustAdd(t, s, Delta{"a", t0, "love", 3})
	// Half a second after t0 ends, within the seal delay: still open.
	clk.Set(time.Unix(t0+1, 0).Add(DefaultSealDelay / 2))
	c := mustCollect(t, s, Cursor{"a", t0 - 10})
	if c.Horizon != t0-1 || len(c.Seconds) != 0 {
		t.Fatalf("Collect before the seal = horizon %d, %s; want horizon %d and nothing", c.Horizon, describe(c.Seconds), t0-1)
	}
}

func contractCountsAccumulate(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	for range 10 {
		mustAdd(t, s, Delta{"a", t0, "clap", 2})
	}
	sealThrough(clk, t0)
	c := mustCollect(t, s, Cursor{"a", t0 - 1})
	if len(c.Seconds) != 1 || !reflect.DeepEqual(c.Seconds[0].Counts, []Count{{"clap", 20}}) {
		t.Fatalf("Seconds = %s; want clap 20 at %d", describe(c.Seconds), t0)
	}
}

func contractLateCountsAreCarriedOnce(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	mustAdd(t, s, Delta{"a", t0, "love", 1})
	sealThrough(clk, t0+3)
	first := mustCollect(t, s, Cursor{"a", t0 - 1})
	// A delta for t0 arrives after t0 was sealed and published.
	mustAdd(t, s, Delta{"a", t0, "love", 7})
	sealThrough(clk, t0+5)
	next := mustCollect(t, s, Cursor{"a", first.Horizon})
	want := []Second{{"a", first.Horizon + 1, []Count{{"love", 7}}, nil, nil}}
	if !reflect.DeepEqual(next.Seconds, want) {
		t.Fatalf("after a late delta: %s; want it carried into %s", describe(next.Seconds), describe(want))
	}
	all := mustCollect(t, s, Cursor{"a", t0 - 1})
	total := int64(0)
	for _, sec := range all.Seconds {
		for _, c := range sec.Counts {
			total += c.N
		}
	}
	if total != 8 {
		t.Fatalf("total over all seconds = %d; want 8 (no loss, no double count): %s", total, describe(all.Seconds))
	}
}

func contractCursorsFilterAndGroup(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	mustAdd(t, s,
		Delta{"b", t0 + 1, "wow", 1}, Delta{"a", t0 + 1, "like", 1},
		Delta{"a", t0, "like", 1}, Delta{"b", t0, "wow", 2}, Delta{"a", t0 + 2, "like", 4},
	)
	sealThrough(clk, t0+2)
	c := mustCollect(t, s, Cursor{"b", t0 - 1}, Cursor{"nobody", 0}, Cursor{"a", t0})
	want := []Second{
		{"b", t0, []Count{{"wow", 2}}, nil, nil},
		{"b", t0 + 1, []Count{{"wow", 1}}, nil, nil},
		{"a", t0 + 1, []Count{{"like", 1}}, nil, nil},
		{"a", t0 + 2, []Count{{"like", 4}}, nil, nil},
	}
	if !reflect.DeepEqual(c.Seconds, want) {
		t.Fatalf("Seconds = %s; want %s", describe(c.Seconds), describe(want))
	}
}

func contractWindowBoundsBackfill(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	for i := int64(0); i < 90; i++ {
		mustAdd(t, s, Delta{"a", t0 + i, "fire", i + 1})
		clk.Set(time.Unix(t0+i+1, 0))
	}
	sealThrough(clk, t0+89)
	c := mustCollect(t, s, Cursor{"a", 0})
	if len(c.Seconds) != Window || c.Seconds[0].Second != t0+30 || c.Seconds[Window-1].Second != t0+89 {
		t.Fatalf("backfill from cursor 0 returned %d seconds from %d; want the last %d ending at %d",
			len(c.Seconds), c.Seconds[0].Second, Window, t0+89)
	}
}

func contractSealedSecondsNeverChange(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	mustAdd(t, s, Delta{"a", t0, "sad", 2})
	sealThrough(clk, t0)
	before := mustCollect(t, s, Cursor{"a", t0 - 1})
	mustAdd(t, s, Delta{"a", t0, "sad", 5}, Delta{"a", t0 - 3, "sad", 1})
	after := mustCollect(t, s, Cursor{"a", t0 - 1})
	if !reflect.DeepEqual(before.Seconds, after.Seconds) {
		t.Fatalf("sealed second changed: %s then %s", describe(before.Seconds), describe(after.Seconds))
	}
}

func contractRetriedBatchesCountOnce(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	b := Batch{ID: "node-1/42", Deltas: []Delta{{"a", t0, "love", 3}, {"b", t0, "love", 1}}}
	for range 3 {
		mustAddBatch(t, s, b)
	}
	mustAddBatch(t, s, Batch{ID: "node-1/43", Deltas: []Delta{{"a", t0, "love", 1}}})
	sealThrough(clk, t0)
	c := mustCollect(t, s, Cursor{"a", t0 - 1}, Cursor{"b", t0 - 1})
	want := []Second{{"a", t0, []Count{{"love", 4}}, nil, nil}, {"b", t0, []Count{{"love", 1}}, nil, nil}}
	if !reflect.DeepEqual(c.Seconds, want) {
		t.Fatalf("after retrying a batch: %s; want %s", describe(c.Seconds), describe(want))
	}
}

func mustReport(t *testing.T, s Store, node string, reports ...AudienceReport) {
	t.Helper()
	if err := s.ReportAudience(ctx, node, reports); err != nil {
		t.Fatalf("ReportAudience: %v", err)
	}
}

func mustControl(t *testing.T, s Store, streams ...string) []Audience {
	t.Helper()
	c, err := s.Audience(ctx, streams)
	if err != nil {
		t.Fatalf("Control: %v", err)
	}
	return c
}

func contractControlSumsFreshNodeReports(t *testing.T, s Store, clk *clock.Manual) {
	if got := mustControl(t, s, "a"); !reflect.DeepEqual(got, []Audience{{Viewers: 0, Divisor: 1}}) {
		t.Fatalf("Control of an unknown stream = %+v; want 0 viewers, divisor 1", got)
	}
	mustReport(t, s, "pull-1", AudienceReport{Stream: "a", Viewers: 1200, Divisor: 4}, AudienceReport{Stream: "b", Viewers: 7})
	mustReport(t, s, "pull-2", AudienceReport{Stream: "a", Viewers: 800})
	// A node's new report replaces its old one.
	mustReport(t, s, "pull-2", AudienceReport{Stream: "a", Viewers: 900})
	want := []Audience{{Viewers: 2100, Divisor: 4}, {Viewers: 7, Divisor: 1}, {Viewers: 0, Divisor: 1}}
	if got := mustControl(t, s, "a", "b", "c"); !reflect.DeepEqual(got, want) {
		t.Fatalf("Control = %+v; want %+v", got, want)
	}
	// pull-1 stops reporting: its viewers drop out after the TTL, the
	// divisor it chose stays.
	clk.Add(AudienceTTL - time.Second)
	mustReport(t, s, "pull-2", AudienceReport{Stream: "a", Viewers: 900})
	clk.Add(2 * time.Second)
	if got := mustControl(t, s, "a"); !reflect.DeepEqual(got, []Audience{{Viewers: 900, Divisor: 4}}) {
		t.Fatalf("after pull-1 went quiet: %+v; want 900 viewers, divisor 4", got)
	}
}

// A steady divisor is reported once, when chosen; the reports that follow
// keep it alive however long the stream runs, and the divisor it replaced
// is known for RecentFor.
func contractControlKeepsSteadyDivisor(t *testing.T, s Store, clk *clock.Manual) {
	mustReport(t, s, "pull-1", AudienceReport{Stream: "a", Viewers: 10, Divisor: 8})
	mustReport(t, s, "pull-1", AudienceReport{Stream: "a", Viewers: 10, Divisor: 12, Previous: 8})
	if got := mustControl(t, s, "a"); !reflect.DeepEqual(got, []Audience{{Viewers: 10, Divisor: 12, Previous: 8}}) {
		t.Fatalf("Control = %+v; want divisor 12 replacing 8", got)
	}
	for range 3 * int(DivisorTTL/time.Second) {
		clk.Add(time.Second)
		mustReport(t, s, "pull-1", AudienceReport{Stream: "a", Viewers: 10})
	}
	if got := mustControl(t, s, "a"); !reflect.DeepEqual(got, []Audience{{Viewers: 10, Divisor: 12}}) {
		t.Fatalf("after %v of steady reports: %+v; want divisor 12, the replaced one forgotten", 3*DivisorTTL, got)
	}
	clk.Add(DivisorTTL + time.Second)
	if got := mustControl(t, s, "a"); !reflect.DeepEqual(got, []Audience{{Divisor: 1}}) {
		t.Fatalf("%v after the last report: %+v; want divisor 1", DivisorTTL, got)
	}
}

func comments(stream string, sec int64, texts ...string) []CommentAt {
	var out []CommentAt
	for i, x := range texts {
		out = append(out, CommentAt{stream, sec, Comment{User: fmt.Sprintf("u%d", i), Text: x}})
	}
	return out
}

func contractCommentsTravelWithCounts(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	mustAddBatch(t, s, Batch{
		ID:     "comments-1",
		Deltas: []Delta{{"a", t0, "love", 2}},
		Comments: append(comments("a", t0, "what a goal!", "ｗｏｗ: 🔥", `"quoted" \\ back`),
			append(comments("a", t0+1, "only words here"), comments("b", t0, "other stream")...)...),
	})
	mustAddBatch(t, s, Batch{ID: "comments-2", Comments: []CommentAt{{"a", t0, Comment{User: "late-one", Text: "third batch, last"}}}})
	sealThrough(clk, t0+1)
	c := mustCollect(t, s, Cursor{"a", t0 - 1}, Cursor{"b", t0 - 1})
	want := []Second{
		{"a", t0, []Count{{"love", 2}}, []Comment{{"u0", "what a goal!", ""}, {"u1", "ｗｏｗ: 🔥", ""}, {"u2", `"quoted" \\ back`, ""}, {"late-one", "third batch, last", ""}}, nil},
		{"a", t0 + 1, []Count{}, []Comment{{"u0", "only words here", ""}}, nil},
		{"b", t0, []Count{}, []Comment{{"u0", "other stream", ""}}, nil},
	}
	if !reflect.DeepEqual(c.Seconds, want) {
		t.Fatalf("Seconds = %s; want %s", describe(c.Seconds), describe(want))
	}
}

func contractLateCommentsAreCarriedOnce(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	mustAddBatch(t, s, Batch{ID: "on-time", Comments: comments("a", t0, "on time")})
	sealThrough(clk, t0+3)
	first := mustCollect(t, s, Cursor{"a", t0 - 1})
	late := Batch{ID: "late", Comments: comments("a", t0, "late but here")}
	for range 3 { // a retried batch adds its comments once
		mustAddBatch(t, s, late)
	}
	sealThrough(clk, t0+5)
	next := mustCollect(t, s, Cursor{"a", first.Horizon})
	want := []Second{{"a", first.Horizon + 1, []Count{}, []Comment{{"u0", "late but here", ""}}, nil}}
	if !reflect.DeepEqual(next.Seconds, want) {
		t.Fatalf("after a late comment: %s; want it carried once into %s", describe(next.Seconds), describe(want))
	}
}

// A second given more comments than it holds keeps the first ones; the
// others, accepted too, go into the next second.
func contractCommentsPerSecondAreBounded(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	mustAddBatch(t, s, Batch{ID: "many", Comments: numbered("a", t0, "comment", DefaultMaxComments+5)})
	sealThrough(clk, t0+1)
	c := mustCollect(t, s, Cursor{"a", t0 - 1})
	if len(c.Seconds) != 2 || len(c.Seconds[0].Comments) != DefaultMaxComments || c.Seconds[0].Comments[0].Text != "comment 0" ||
		c.Seconds[1].Second != t0+1 || len(c.Seconds[1].Comments) != 5 || c.Seconds[1].Comments[0].Text != fmt.Sprintf("comment %d", DefaultMaxComments) {
		t.Fatalf("a second given %d comments: %s; want the first %d in it and the other 5 in the next",
			DefaultMaxComments+5, describe(c.Seconds), DefaultMaxComments)
	}
}

// numbered returns n comments of a stream's second with texts "prefix i".
func numbered(stream string, sec int64, prefix string, n int) []CommentAt {
	out := make([]CommentAt, n)
	for i := range out {
		out[i] = CommentAt{stream, sec, Comment{User: "u", Text: fmt.Sprintf("%s %d", prefix, i)}}
	}
	return out
}

// commentTexts returns the texts of the comments of secs, in order, and
// fails if a second holds more than the cap.
func commentTexts(t *testing.T, secs []Second) []string {
	t.Helper()
	var texts []string
	for _, sec := range secs {
		if len(sec.Comments) > DefaultMaxComments {
			t.Fatalf("second %d holds %d comments; the cap is %d", sec.Second, len(sec.Comments), DefaultMaxComments)
		}
		for _, c := range sec.Comments {
			texts = append(texts, c.Text)
		}
	}
	return texts
}

// A push node's backlog, written after an outage, holds seconds of
// accepted comments, all sealed by now: they fill the oldest open second
// and spill into the following ones, none lost and no second over the cap,
// and comments accepted for those seconds afterwards go on past them.
func contractCarriedCommentsSpill(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	sealThrough(clk, t0+2)
	h := mustCollect(t, s, Cursor{"a", t0 - 1}).Horizon
	open := h + 1
	var want []string
	add := func(id string, comments []CommentAt) {
		t.Helper()
		mustAddBatch(t, s, Batch{ID: id, Comments: comments})
		for _, c := range comments {
			want = append(want, c.Text)
		}
	}
	add("live-before", numbered("a", open, "live", 10))
	var backlog []CommentAt
	for sec := t0; sec <= h; sec++ {
		backlog = append(backlog, numbered("a", sec, fmt.Sprintf("backlog of %d", sec-t0), DefaultMaxComments)...)
	}
	add("backlog", backlog)
	add("live-after", numbered("a", open+1, "next", DefaultMaxComments))

	sealThrough(clk, open+10)
	c := mustCollect(t, s, Cursor{"a", h})
	if got := commentTexts(t, c.Seconds); !reflect.DeepEqual(got, want) {
		t.Fatalf("collected %d comments of %d accepted, by second: %s", len(got), len(want), describe(c.Seconds))
	}
	perSecond := map[int64]int{}
	for _, sec := range c.Seconds {
		perSecond[sec.Second] = len(sec.Comments)
	}
	wantPer := map[int64]int{open: 30, open + 1: 30, open + 2: 30, open + 3: 30, open + 4: 10}
	if !reflect.DeepEqual(perSecond, wantPer) {
		t.Fatalf("comments per second %v; want %v", perSecond, wantPer)
	}
}

// Comments spill at most MaxCommentSpill seconds past the oldest open
// second: the keys of seconds further ahead could expire before they are
// sealed. Past that they are dropped and counted.
func contractCommentSpillIsBounded(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	sealThrough(clk, t0)
	h := mustCollect(t, s, Cursor{"a", t0 - 1}).Horizon
	room := (MaxCommentSpill + 1) * DefaultMaxComments
	mustAddBatch(t, s, Batch{ID: "huge-backlog", Comments: numbered("a", h, "c", room+5)})
	var got []Second
	for _, through := range []int64{h + 30, h + 2 + MaxCommentSpill} {
		sealThrough(clk, through)
		c := mustCollect(t, s, Cursor{"a", h})
		for _, sec := range c.Seconds {
			if len(got) == 0 || sec.Second > got[len(got)-1].Second {
				got = append(got, sec)
			}
		}
	}
	if texts := commentTexts(t, got); len(texts) != room || texts[room-1] != fmt.Sprintf("c %d", room-1) {
		t.Fatalf("%d comments for one sealed second: %d kept, over %d seconds; want the first %d in the %d seconds from the open one",
			room+5, len(texts), len(got), room, MaxCommentSpill+1)
	}
}

// The reports' expiry is tested per store: Redis judges it by its own
// clock, which a test cannot move (TestRedisCommentLoadAcrossSkewedClocks),
// the memory store by its clock (TestMemoryCommentLoadExpires).
func contractCommentLoadKeepsFreshReports(t *testing.T, s Store, _ *clock.Manual) {
	if got := mustCommentLoad(t, s, "a"); len(got.Nodes) != 0 || len(got.Streams) != 1 || len(got.Streams[0]) != 0 {
		t.Fatalf("CommentLoad of a new store = %+v; want no nodes and no reports", got)
	}
	mustReportComments(t, s, "push-2", CommentReport{"a", 120})
	mustReportComments(t, s, "push-1", CommentReport{"a", 80}, CommentReport{"b", 3})
	mustReportComments(t, s, "push-3") // live, no comments
	mustReportComments(t, s, "push-1", CommentReport{"a", 90})
	want := CommentLoad{
		Nodes:   []string{"push-1", "push-2", "push-3"},
		Streams: [][]NodeLoad{{{"push-1", 90}, {"push-2", 120}}, {{"push-1", 3}}, nil},
	}
	if got := mustCommentLoad(t, s, "a", "b", "c"); !reflect.DeepEqual(got, want) {
		t.Fatalf("CommentLoad = %+v; want %+v", got, want)
	}
}

func mustReportComments(t *testing.T, s Store, node string, reports ...CommentReport) {
	t.Helper()
	if err := s.ReportComments(ctx, node, reports); err != nil {
		t.Fatalf("ReportComments: %v", err)
	}
}

func mustCommentLoad(t *testing.T, s Store, streams ...string) CommentLoad {
	t.Helper()
	l, err := s.CommentLoad(ctx, streams)
	if err != nil {
		t.Fatalf("CommentLoad: %v", err)
	}
	return l
}

package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/emojicast/emojicast/clock"
)

func TestMemoryContract(t *testing.T) {
	runContract(t, func(t *testing.T, clk clock.Clock) Store {
		return NewMemory(MemoryOptions{Clock: clk})
	})
}

// A push node shares limits and slow mode through its store when the store
// can: Memory must not claim to, or a single process would pay for a
// fleet's record it does not have.
func TestMemoryKeepsSharingLocal(t *testing.T) {
	var st Store = NewMemory(MemoryOptions{})
	if _, ok := st.(LimitSharer); ok {
		t.Error("Memory is a LimitSharer; want a node's own limits")
	}
	if _, ok := st.(SlowModeSharer); ok {
		t.Error("Memory is a SlowModeSharer; want a node's own slow mode")
	}
}

func TestMemoryForgetsOldSeconds(t *testing.T) {
	clk := clock.NewManual(contractT0)
	m := NewMemory(MemoryOptions{Clock: clk, Retention: 10})
	t0 := contractT0.Unix()
	mustAdd(t, m, Delta{"a", t0 + 1, "like", 1})
	clk.Add(30 * time.Second)
	mustCollect(t, m)
	if n := len(m.streams); n != 0 {
		t.Fatalf("store still holds %d streams past retention", n)
	}
}

func TestMemoryStreamBound(t *testing.T) {
	clk := clock.NewManual(contractT0)
	m := NewMemory(MemoryOptions{Clock: clk, MaxStreams: 1000})
	t0 := contractT0.Unix()
	for i := range 100_000 {
		mustAdd(t, m, Delta{fmt.Sprintf("s%d", i), t0 + 1, "like", 1})
		if len(m.streams) > 1000 {
			t.Fatalf("store holds %d streams; bound is 1000", len(m.streams))
		}
	}
	// The most recent streams survive the evictions.
	if _, ok := m.streams["s99999"]; !ok {
		t.Fatal("the newest stream was evicted")
	}
}

// TestMemoryHistoryBounds: history drops seconds older than its duration,
// and past its byte budget the oldest seconds first.
func TestMemoryHistoryBounds(t *testing.T) {
	t0 := contractT0.Unix()
	clk := clock.NewManual(contractT0)
	m := NewMemory(MemoryOptions{Clock: clk, History: 300 * time.Second})
	for i := range int64(600) {
		clk.Set(time.Unix(t0+i, 0))
		mustAdd(t, m, Delta{"a", t0 + i, "like", 1})
	}
	sealThrough(clk, t0+600)
	h := mustHistory(t, m, "a", t0, t0+600)
	if len(h.Seconds) != 300 || h.Seconds[0].Second != t0+300 {
		t.Fatalf("history of 600 s kept %d seconds from %d; want the last 300 from %d", len(h.Seconds), h.Seconds[0].Second, t0+300)
	}

	clk = clock.NewManual(contractT0)
	m = NewMemory(MemoryOptions{Clock: clk, HistoryBytes: 100 << 10})
	for i := range int64(3000) {
		clk.Set(time.Unix(t0+i, 0))
		mustAdd(t, m, Delta{fmt.Sprintf("s%d", i%10), t0 + i, "like", 1})
		if m.history.bytes > 100<<10 {
			t.Fatalf("history holds %d bytes; budget is %d", m.history.bytes, 100<<10)
		}
	}
	sealThrough(clk, t0+3000)
	h = mustHistory(t, m, "s9", t0+2000, t0+2999)
	if len(h.Seconds) == 0 || h.Seconds[len(h.Seconds)-1].Second != t0+2999 {
		t.Fatalf("over its budget the history lost its newest seconds: %d kept", len(h.Seconds))
	}
	if h = mustHistory(t, m, "s0", t0, t0+100); len(h.Seconds) != 0 {
		t.Fatalf("over its budget the history kept its oldest seconds: %s", describe(h.Seconds))
	}
}

// TestMemoryHistoryRetractionsAreBounded: a stream's history remembers its
// last MaxHistoryRetractions retractions, and forgets them with the
// history.
func TestMemoryHistoryRetractionsAreBounded(t *testing.T) {
	clk := clock.NewManual(contractT0)
	m := NewMemory(MemoryOptions{Clock: clk, History: time.Hour})
	for i := range MaxHistoryRetractions + 1 {
		if err := m.Retract(ctx, "a", fmt.Sprintf("id.%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	hr := m.history.retracted["a"]
	if len(hr.at) != MaxHistoryRetractions || len(hr.order) != MaxHistoryRetractions {
		t.Fatalf("the history remembers %d retractions (%d in order); want %d", len(hr.at), len(hr.order), MaxHistoryRetractions)
	}
	if _, ok := hr.at["id.0"]; ok {
		t.Fatal("the oldest retraction was kept past the bound")
	}
	clk.Add(2 * time.Hour)
	mustCollect(t, m)
	if n := len(m.history.retracted); n != 0 {
		t.Fatalf("the history remembers retractions of %d streams past its duration; want none", n)
	}
}

// Push nodes that stop reporting drop out of the comment load after
// CommentLoadTTL.
func TestMemoryCommentLoadExpires(t *testing.T) {
	clk := clock.NewManual(contractT0)
	m := NewMemory(MemoryOptions{Clock: clk})
	mustReportComments(t, m, "push-1", CommentReport{"a", 80})
	mustReportComments(t, m, "push-2", CommentReport{"a", 120})
	mustReportComments(t, m, "push-3")
	// push-2 and push-3 stop reporting: they drop out after the TTL.
	clk.Add(CommentLoadTTL - time.Second)
	mustReportComments(t, m, "push-1", CommentReport{"a", 70})
	clk.Add(2 * time.Second)
	want := CommentLoad{Nodes: []string{"push-1"}, Streams: [][]NodeLoad{{{"push-1", 70}}}}
	if got := mustCommentLoad(t, m, "a"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after push-2 and push-3 went quiet: %+v; want %+v", got, want)
	}
}

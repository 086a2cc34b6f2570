package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/emojicast/emojicast/clock"
)

func TestMemoryContract(t *testing.T) {
	runContract(t, func(t *testing.T, clk clock.Clock) Store {
		return NewMemory(MemoryOptions{Clock: clk})
	})
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

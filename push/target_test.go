package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/store"
)

// faultyStore is a real Memory store behind a switch that makes writes fail,
// either before they apply (down) or after (lost reply).
type faultyStore struct {
	*store.Memory
	down      atomic.Bool
	loseReply atomic.Int64 // the next n successful writes report an error anyway
}

var errInjected = errors.New("injected store failure")

func (f *faultyStore) Add(ctx context.Context, b store.Batch) error {
	if f.down.Load() {
		return fmt.Errorf("%w: %w", errInjected, store.ErrNotApplied)
	}
	if err := f.Memory.Add(ctx, b); err != nil {
		return err
	}
	if f.loseReply.Add(-1) >= 0 {
		return errInjected
	}
	return nil
}

var (
	t0    = time.Unix(1_763_700_000, 0)
	quiet = slog.New(slog.DiscardHandler)
)

func newFaulty() (*faultyStore, *clock.Manual) {
	clk := clock.NewManual(t0)
	return &faultyStore{Memory: store.NewMemory(store.MemoryOptions{Clock: clk})}, clk
}

func batch(id string, sec int64, n int64) store.Batch {
	return store.Batch{ID: id, Deltas: []store.Delta{{Stream: "s", Second: sec, Emoji: "love", Count: n}}}
}

// total collects every count of stream s once the clock seals everything.
func total(t *testing.T, s store.Store, clk *clock.Manual) int64 {
	t.Helper()
	clk.Add(30 * time.Second)
	c, err := s.Collect(context.Background(), []store.Cursor{{Stream: "s"}})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sec := range c.Seconds {
		for _, cnt := range sec.Counts {
			if cnt.Emoji != store.SampledTaps {
				n += cnt.N
			}
		}
	}
	return n
}

func startTarget(t *testing.T, tg *target) (stop func()) {
	t.Helper()
	tg.start(context.Background())
	return func() { tg.stop(context.Background()) }
}

func TestTargetKeepsBacklogThroughOutage(t *testing.T) {
	fs, clk := newFaulty()
	tg := newTarget("t", fs, time.Second, 1000, quiet, clk, newMetrics(nil))
	stop := startTarget(t, tg)
	fs.down.Store(true)
	for i := range 10 {
		tg.enqueue(batch("b"+string(rune('0'+i)), t0.Unix()+int64(i), 1))
	}
	testutil.Eventually(t, 2*time.Second, "target reports the outage", func() bool { return !tg.healthy.Load() })
	if tg.backlog() != 10 {
		t.Fatalf("backlog = %d; want 10 deltas waiting", tg.backlog())
	}
	// The store comes back, and the first write's reply is lost: the retry
	// must not count that batch twice.
	fs.loseReply.Store(1)
	fs.down.Store(false)
	testutil.Eventually(t, 5*time.Second, "backlog written", func() bool { return tg.backlog() == 0 })
	stop()
	if n := total(t, fs, clk); n != 10 {
		t.Fatalf("store holds %d reactions; want exactly 10", n)
	}
	if !tg.healthy.Load() {
		t.Fatal("target still unhealthy after writing its backlog")
	}
}

func TestTargetBacklogDropsOldestPastBound(t *testing.T) {
	fs, clk := newFaulty()
	fs.down.Store(true)
	tg := newTarget("t", fs, time.Second, 5, quiet, clk, newMetrics(nil))
	for i := range 8 {
		tg.enqueue(batch("b"+string(rune('0'+i)), t0.Unix()+int64(i), int64(1)<<i))
	}
	if tg.backlog() != 5 {
		t.Fatalf("backlog = %d; want the bound, 5", tg.backlog())
	}
	if tg.sendQueued(context.Background()) {
		t.Fatal("sendQueued succeeded with the store down")
	}
	if tg.ready() {
		t.Fatal("target ready with a full backlog and its store down")
	}
	fs.down.Store(false)
	if !tg.sendQueued(context.Background()) {
		t.Fatal("sendQueued failed with the store up")
	}
	// Batches 0..2 (1+2+4) were the oldest and went; 3..7 remain.
	if n, want := total(t, fs, clk), int64(8+16+32+64+128); n != want {
		t.Fatalf("store holds %d; want %d (the newest five batches)", n, want)
	}
}

func TestTargetFinalDrainWaitsForStoreUntilDeadline(t *testing.T) {
	fs, clk := newFaulty()
	fs.down.Store(true)
	tg := newTarget("t", fs, time.Second, 100, quiet, clk, newMetrics(nil))
	tg.enqueue(batch("b0", t0.Unix(), 3))
	final, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tg.start(context.Background())
	go tg.stop(final)
	time.AfterFunc(300*time.Millisecond, func() { fs.down.Store(false) })
	select {
	case <-tg.done:
	case <-time.After(10 * time.Second):
		t.Fatal("final drain did not finish")
	}
	if n := total(t, fs, clk); n != 3 {
		t.Fatalf("store holds %d after the final drain; want 3", n)
	}

	// With the store down for good, the drain gives up at the deadline.
	fs2, clk2 := newFaulty()
	fs2.down.Store(true)
	tg2 := newTarget("t2", fs2, time.Second, 100, quiet, clk2, newMetrics(nil))
	tg2.enqueue(batch("b0", t0.Unix(), 3))
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	tg2.start(context.Background())
	go tg2.stop(short)
	select {
	case <-tg2.done:
	case <-time.After(5 * time.Second):
		t.Fatal("final drain ignored its deadline")
	}
}

// TestTargetNeverRetriesPastTheDedupeWindow: a batch whose write had an
// unknown outcome (applied, reply lost) stays in the backlog through an
// outage. Past the store's dedupe window the store no longer knows its id,
// so a retry would count it twice: the target drops it (and counts it)
// instead. A batch whose writes surely did not apply is kept however long
// the outage lasts.
func TestTargetNeverRetriesPastTheDedupeWindow(t *testing.T) {
	fs, clk := newFaulty()
	reg := prometheus.NewRegistry()
	tg := newTarget("t", fs, time.Second, 1000, quiet, clk, newMetrics(reg))
	fs.loseReply.Store(1)
	tg.enqueue(batch("unknown", clk.Now().Unix(), 3)) // applied; its reply is lost
	if tg.sendQueued(context.Background()) {
		t.Fatal("sendQueued succeeded though the reply was lost")
	}
	fs.down.Store(true)
	tg.enqueue(batch("never-written", clk.Now().Unix(), 5))
	before := counterValue(t, reg, "emojicast_push_unknown_reactions_dropped_total")
	for range 11 * 60 / 15 { // an outage longer than the dedupe window
		clk.Add(15 * time.Second)
		tg.sendQueued(context.Background())
		_, _ = fs.Collect(context.Background(), nil) // the store's clock moves on
	}
	fs.down.Store(false)
	if !tg.sendQueued(context.Background()) {
		t.Fatal("sendQueued failed with the store up")
	}
	if got := counterValue(t, reg, "emojicast_push_unknown_reactions_dropped_total") - before; got != 3 {
		t.Errorf("counted %v reactions dropped for their unknown outcome; want 3", got)
	}
	// The window now holds what was written after the outage: the batch
	// never written (carried into the open second), and not the other one
	// again.
	if n := total(t, fs, clk); n != 5 {
		t.Fatalf("after the outage the store's window holds %d reactions; want 5: the never-written batch once, the applied one not again", n)
	}
}

// counterValue reads a counter as /metrics would show it from reg.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s is not registered", name)
	return 0
}

package pull

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/store"
)

// horizonCounter is the memory store, counting the horizon reads.
type horizonCounter struct {
	*store.Memory
	reads atomic.Int64
}

func (h *horizonCounter) Horizon(ctx context.Context) (int64, error) {
	h.reads.Add(1)
	return h.Memory.Horizon(ctx)
}

// The syncer reads the store's horizon two or three times a second, not
// at every sync, and still publishes every step at the first sync after
// it: a read it skips could only have seen what it knew.
func TestSyncReadsTheHorizonNearItsStepOnly(t *testing.T) {
	clk := clock.NewManual(t0.Add(370 * time.Millisecond))
	st := &horizonCounter{Memory: store.NewMemory(store.MemoryOptions{Clock: clk})}
	p, err := New(Options{Store: st, Clock: clk, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	var sc syncScratch
	ctx := context.Background()
	const seconds = 20
	for range seconds * 10 {
		clk.Add(100 * time.Millisecond)
		if err := p.sync(ctx, &sc); err != nil {
			t.Fatal(err)
		}
		want, _ := st.Memory.Horizon(ctx)
		if got := p.Horizon(); got != want {
			t.Fatalf("at %v the node published %d; the store's horizon is %d", clk.Now().Sub(t0), got, want)
		}
	}
	t.Logf("%d horizon reads in %d s", st.reads.Load(), seconds)
	if reads := st.reads.Load(); reads > 3*seconds || reads < seconds {
		t.Errorf("%d horizon reads in %d s of syncs every 100 ms; want 1 to 3 a second", reads, seconds)
	}
}

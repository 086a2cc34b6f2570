package push

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/store"
)

// slowControl is a real Memory store whose Control, the divisor read,
// waits until release is closed.
type slowControl struct {
	*store.Memory
	calls   atomic.Int64
	entered chan struct{}
	release chan struct{}
}

func (s *slowControl) Audience(ctx context.Context, streams []string) ([]store.Audience, error) {
	s.calls.Add(1)
	s.entered <- struct{}{}
	<-s.release
	return s.Memory.Audience(ctx, streams)
}

// TestFlushDoesNotWaitForTheDivisorRead: while one Flush waits on the
// store for the sample divisors, another hands its sums over at once; and
// when the next read is due is told by the node's clock.
func TestFlushDoesNotWaitForTheDivisorRead(t *testing.T) {
	clk := clock.NewManual(t0)
	st := &slowControl{
		Memory:  store.NewMemory(store.MemoryOptions{Clock: clk}),
		entered: make(chan struct{}, 8), release: make(chan struct{}),
	}
	p, err := New(Options{Targets: []Target{{Name: "m", Store: st}}, Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	defer func() {
		select {
		case <-st.release:
		default:
			close(st.release) // the test failed before it let the read go
		}
	}()
	p.divisors.get([]byte("s"), t0.Unix()) // a stream whose divisor is read

	first := make(chan struct{})
	go func() { defer close(first); p.Flush() }()
	select {
	case <-st.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the first Flush did not read the divisors")
	}
	p.agg.add([]byte("s"), t0.Unix(), 0, 3, 0)
	second := make(chan struct{})
	go func() { defer close(second); p.Flush() }()
	select {
	case <-second:
	case <-time.After(5 * time.Second):
		t.Fatal("a Flush waited for another's divisor read")
	}
	if got := p.Backlog(); got != 1 {
		t.Fatalf("backlog %d after the second Flush; want its 1 delta handed over", got)
	}
	close(st.release)
	<-first

	// Within the same second and divisorRefresh of the last read on the
	// node's clock, whatever the wall clock says, no read; past it, one.
	p.Flush()
	if got := st.calls.Load(); got != 1 {
		t.Fatalf("%d divisor reads; want 1, the last one is fresh on the node's clock", got)
	}
	clk.Add(divisorRefresh + time.Millisecond)
	p.Flush()
	if got := st.calls.Load(); got != 2 {
		t.Fatalf("%d divisor reads after the node's clock moved %v; want 2", got, divisorRefresh)
	}
}

package push

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/store"
)

// target is one store the push node writes to, with its own backlog and its
// own sender goroutine, so a slow or dead store delays no other.
//
// The backlog is a queue of whole batches in flush order. A batch keeps its
// ID across retries, so a batch whose write had an unknown outcome is
// retried without being counted twice, as long as the store still knows
// the ID: a batch whose first unknown-outcome write is older than
// maxUnknownAge is dropped and counted instead of retried. Past maxBacklog
// deltas the oldest batches, which hold the oldest seconds, are dropped and
// counted.
type target struct {
	name       string
	store      Store
	timeout    time.Duration
	maxBacklog int
	log        *slog.Logger
	clock      clock.Clock
	metrics    *metrics

	mu       sync.Mutex
	queue    []pending
	inflight *pending // taken from the queue's head while being written
	deltas   int      // deltas and comments in queue and inflight

	wake     chan struct{}
	healthy  atomic.Bool
	stopping chan struct{}   // closed by stop, after final is set
	final    context.Context // bounds the last writes
	done     chan struct{}   // closed when run returns
}

func newTarget(name string, s Store, timeout time.Duration, maxBacklog int, log *slog.Logger, clk clock.Clock, m *metrics) *target {
	t := &target{
		name: name, store: s, timeout: timeout, maxBacklog: maxBacklog, log: log, clock: clk, metrics: m,
		wake: make(chan struct{}, 1), stopping: make(chan struct{}), done: make(chan struct{}),
	}
	t.healthy.Store(true)
	return t
}

// pending is a batch in the backlog.
type pending struct {
	store.Batch
	// unknownSince is when a write of the batch first failed in a way that
	// may have applied it; zero while every failure surely did not.
	unknownSince time.Time
}

// maxUnknownAge is how long after a write with an unknown outcome a batch
// is still retried: less than the store's dedupe window, by a minute for
// the write's own time and clocks.
const maxUnknownAge = store.DedupeWindow - time.Minute

// enqueue adds a batch and wakes the sender.
func (t *target) enqueue(b store.Batch) {
	t.mu.Lock()
	t.queue = append(t.queue, pending{Batch: b})
	t.deltas += size(b)
	for t.deltas > t.maxBacklog && len(t.queue) > 0 {
		t.dropOldestLocked()
	}
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *target) dropOldestLocked() {
	old := t.queue[0].Batch
	t.queue[0] = pending{}
	t.queue = t.queue[1:]
	t.deltas -= size(old)
	var n int64
	for _, d := range old.Deltas {
		n += d.Count
	}
	t.metrics.droppedReactions.Add(float64(n))
	t.metrics.droppedComments.Add(float64(len(old.Comments)))
	t.log.Warn("push backlog full: dropped the oldest batch", "target", t.name, "batch", old.ID, "reactions", n, "comments", len(old.Comments))
}

// dropUnknownLocked drops a batch that may have been added already, which
// the store no longer remembers.
func (t *target) dropUnknownLocked(b pending) {
	t.deltas -= size(b.Batch)
	var n int64
	for _, d := range b.Deltas {
		n += d.Count
	}
	t.metrics.unknownDropped.Add(float64(n))
	t.log.Error("push dropped a batch whose write had an unknown outcome too long ago to retry it safely",
		"target", t.name, "batch", b.ID, "unknown_since", b.unknownSince, "reactions", n, "comments", len(b.Comments))
}

// size is what a batch weighs in the backlog.
func size(b store.Batch) int { return len(b.Deltas) + len(b.Comments) }

// backlog returns the number of deltas waiting, including one being written.
func (t *target) backlog() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.deltas
}

// ready reports whether the target can take more: its store answers, or its
// backlog has room.
func (t *target) ready() bool {
	return t.healthy.Load() || t.backlog() < t.maxBacklog*9/10
}

// start starts the sender. Its writes end with life until stop.
func (t *target) start(life context.Context) { go t.run(life) }

// stop makes the sender write what is left, until the queue is empty or
// final is done, and waits for it. Call it once, after start.
func (t *target) stop(final context.Context) {
	t.final = final
	close(t.stopping)
	<-t.done
}

// run sends queued batches until stop, then drains the queue under the
// final context.
func (t *target) run(life context.Context) {
	defer close(t.done)
	const minBackoff, maxBackoff = 100 * time.Millisecond, 2 * time.Second
	backoff := minBackoff
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-t.wake:
		case <-retry.C:
		case <-t.stopping:
			t.drainFinal(t.final)
			return
		}
		if t.sendQueued(life) {
			backoff = minBackoff
			continue
		}
		retry.Reset(backoff)
		backoff = min(2*backoff, maxBackoff)
	}
}

func (t *target) drainFinal(ctx context.Context) {
	for !t.sendQueued(ctx) {
		select {
		case <-ctx.Done():
			if n := t.backlog(); n > 0 {
				t.log.Error("push stopped with an unwritten backlog", "target", t.name, "deltas", n)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sendQueued writes batches oldest first and reports whether the queue was
// emptied; it stops at the first failure.
func (t *target) sendQueued(ctx context.Context) bool {
	for {
		t.mu.Lock()
		if len(t.queue) == 0 {
			t.mu.Unlock()
			return true
		}
		b := t.queue[0]
		t.queue[0] = pending{}
		t.queue = t.queue[1:]
		now := t.clock.Now()
		if !b.unknownSince.IsZero() && now.Sub(b.unknownSince) > maxUnknownAge {
			t.dropUnknownLocked(b)
			t.mu.Unlock()
			continue
		}
		t.inflight = &b
		t.mu.Unlock()

		err := t.send(ctx, b.Batch)

		t.mu.Lock()
		t.inflight = nil
		if err != nil {
			if b.unknownSince.IsZero() && !errors.Is(err, store.ErrNotApplied) {
				b.unknownSince = now
			}
			// Back at the head: it is still the oldest, so it is the first to
			// go if the backlog overflows meanwhile.
			t.queue = append([]pending{b}, t.queue...)
			t.mu.Unlock()
			if t.healthy.Swap(false) {
				t.log.Warn("push cannot write to the store; keeping a backlog", "target", t.name, "err", err)
			}
			t.metrics.flushErrors.Inc()
			return false
		}
		t.deltas -= size(b.Batch)
		t.mu.Unlock()
		if !t.healthy.Swap(true) {
			t.log.Info("push store is back; writing the backlog", "target", t.name)
		}
	}
}

func (t *target) send(ctx context.Context, b store.Batch) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	start := time.Now()
	err := t.store.Add(ctx, b)
	t.metrics.flushDuration.Observe(time.Since(start).Seconds())
	return err
}

package danmaku

import (
	"context"
	"time"

	"github.com/emojicast/emojicast/store"
)

// Slow mode holds across the push fleet. A comment is answered at once,
// so the answer must know whether the user's turn is free fleet-wide: a
// comment to a stream in slow mode that this node's own record lets
// through waits for the store, which takes the turn atomically for every
// node (store.SlowModeSharer). The waits are batched: a single goroutine
// sends every turn that queued while its last call ran in the next call,
// one script per shard, pipelined, so a busy node makes about one round
// trip at a time whatever its comment rate. Only comments to streams in
// slow mode wait; sends and other comments never touch the store.
//
// When the store does not answer within SlowModeTimeout (or too many
// comments already wait), the node's own record decides and the fallback
// is counted: during a store outage a user may comment once per node and
// period, as before slow mode was shared.

// SlowModeWait returns how long user must still wait before commenting on
// stream, or 0 when the comment may go and the user's turn is taken. This
// node's record refuses repeats on this node without asking the store;
// the store decides for the fleet (see the top of this file), and a refusal there
// is remembered here until that turn is free.
func (c *Comments) SlowModeWait(stream, user []byte, period time.Duration, now time.Time) time.Duration {
	if wait := c.slowMode.Allow(stream, user, period, now.UnixNano()); wait > 0 || c.opts.SlowSharer == nil {
		return wait
	}
	wait, ok := c.takeSlowTurn(stream, user, period)
	if ok && wait > 0 {
		c.slowMode.Remember(stream, user, now.Add(wait-period).UnixNano())
	}
	return wait
}

// slowModeQueue bounds the comments waiting for the store; past it the
// node decides alone.
const slowModeQueue = 4096

// maxSlowModeBatch bounds the turns of one store call.
const maxSlowModeBatch = 512

// slowTurn is one comment's request for its user's turn.
type slowTurn struct {
	take store.SlowModeTake
	wait chan time.Duration // buffered; negative when the store failed
}

// slowModeLoop takes the queued turns from the store until Stop.
func (c *Comments) slowModeLoop(ctx context.Context) {
	batch := make([]*slowTurn, 0, maxSlowModeBatch)
	takes := make([]store.SlowModeTake, 0, maxSlowModeBatch)
	for {
		select {
		case t := <-c.slowTurns:
			batch = append(batch[:0], t)
		case <-c.stop:
			return
		}
	drain:
		for len(batch) < maxSlowModeBatch {
			select {
			case t := <-c.slowTurns:
				batch = append(batch, t)
			default:
				break drain
			}
		}
		takes = takes[:0]
		for _, t := range batch {
			takes = append(takes, t.take)
		}
		call, cancel := context.WithTimeout(ctx, c.opts.SlowModeTimeout)
		waits, err := c.opts.SlowSharer.TakeSlowMode(call, takes)
		cancel()
		for i, t := range batch {
			if err != nil {
				t.wait <- -1
			} else {
				t.wait <- waits[i]
			}
			batch[i] = nil
		}
		if err != nil {
			c.slowLog.Warn(c.opts.Logger, "cannot share slow mode with the fleet; each node enforces it alone meanwhile", "err", err)
		}
	}
}

// takeSlowTurn asks the fleet for a user's turn to comment on a stream in
// slow mode. It returns how long the user must still wait (0: the turn is
// taken), or ok false when the store did not answer in time.
func (c *Comments) takeSlowTurn(stream, user []byte, period time.Duration) (wait time.Duration, ok bool) {
	t := &slowTurn{
		take: store.SlowModeTake{Stream: string(stream), User: string(user), Period: period},
		wait: make(chan time.Duration, 1),
	}
	select {
	case c.slowTurns <- t:
	default:
		c.metrics.slowModeFallbacks.WithLabelValues("busy").Inc()
		return 0, false
	}
	timer := time.NewTimer(c.opts.SlowModeTimeout)
	defer timer.Stop()
	select {
	case w := <-t.wait:
		if w < 0 {
			c.metrics.slowModeFallbacks.WithLabelValues("error").Inc()
			return 0, false
		}
		return w, true
	case <-timer.C:
	case <-c.stop:
	}
	c.metrics.slowModeFallbacks.WithLabelValues("timeout").Inc()
	return 0, false
}

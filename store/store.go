// Package store is where push nodes put per-second reaction counts and pull
// nodes collect them: the seam between the two fleets.
//
// A second s of a stream is sealed once the store's clock passes
// s + 1 + SealDelay. Until then push nodes may add to it; after that its
// counts never change, so pull nodes can publish it once and caches and
// cursors stay right. Counts that reach the store for a sealed second (a
// backlog written after an outage, a slow push node) are carried into the
// oldest unsealed second of their stream: they reach viewers late, but
// exactly once. The store's clock, not the pull node's, decides what is
// sealed, so every pull node publishes the same counts for the same second.
//
// Memory is the embedded implementation; Redis is the one a fleet shares.
// Both pass the contract tests in contract_test.go.
package store

import (
	"context"
	"time"
)

// DefaultSealDelay is how long after a second ends it is sealed. It must
// exceed the push flush interval plus the time a flush takes.
const DefaultSealDelay = 500 * time.Millisecond

// Window is how many seconds back Collect reaches: the ring size.
const Window = 60

// Delta is a number of reactions to add to one emoji of one second of a stream.
type Delta struct {
	Stream string
	Second int64
	Emoji  string
	Count  int64
}

// Batch is one flush of a push node. A batch whose fate is unknown (the
// store went away mid-write) is retried with the same ID, and the store adds
// a batch at most once per ID, so a retry never counts anything twice.
type Batch struct {
	ID     string
	Deltas []Delta
}

// DedupeWindow is how long a store remembers batch IDs: retries must happen
// within it.
const DedupeWindow = 10 * time.Minute

// Cursor asks Collect for the seconds of Stream after After.
type Cursor struct {
	Stream string
	After  int64
}

// Count is the number of reactions of one emoji.
type Count struct {
	Emoji string
	N     int64
}

// Second holds the counts of one sealed, non-empty second of a stream.
type Second struct {
	Stream string
	Second int64
	Counts []Count
}

// Collection is what Collect found.
type Collection struct {
	// Horizon is the newest sealed second: every second up to it is final.
	Horizon int64
	// Seconds holds the non-empty seconds in (max(After, Horizon-Window),
	// Horizon] of each cursor's stream, grouped by stream in cursor order,
	// oldest first within a stream.
	Seconds []Second
}

// ControlTTL is how long a pull node's control report counts: a node that
// stopped reporting (it died, or its viewers left) drops out of the totals.
const ControlTTL = 5 * time.Second

// ControlReport is one pull node's view of one stream, reported every second.
type ControlReport struct {
	Stream  string
	Viewers int64 // this node's estimate of the stream's concurrent viewers
	Divisor int64 // the sample divisor chosen from the fleet's figures; 0 keeps the current one
}

// Control is what the fleet shares about a stream besides its counts.
type Control struct {
	Viewers int64 // sum of the pull nodes' fresh viewer reports
	Divisor int64 // the sample divisor last chosen; 1 when none was
}

// Store keeps per-second reaction counts and the per-stream control figures
// the fleet shares.
type Store interface {
	// Add adds a batch's deltas, unless a batch with the same ID was added
	// within DedupeWindow. After an error some of its streams may have been
	// added; retrying the batch adds the rest.
	Add(ctx context.Context, batch Batch) error
	// Horizon returns the newest sealed second. It is cheap, so pull nodes
	// call it often and Collect only when it moves.
	Horizon(ctx context.Context) (int64, error)
	// Collect returns the sealed, non-empty seconds the cursors ask for.
	Collect(ctx context.Context, cursors []Cursor) (Collection, error)
	// ReportControl records node's reports, each replacing that node's
	// previous report for the stream; reports expire after ControlTTL.
	ReportControl(ctx context.Context, node string, reports []ControlReport) error
	// Control returns the fleet's figures for each stream, in order.
	Control(ctx context.Context, streams []string) ([]Control, error)
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// Horizon returns the newest second sealed at time now with the given delay.
func Horizon(now time.Time, sealDelay time.Duration) int64 {
	return now.Add(-sealDelay).Unix() - 1
}

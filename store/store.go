// Package store is where push nodes put per-second reaction counts and pull
// nodes collect them: the seam between the two fleets.
//
// A second holds reaction counts and danmaku comments. A second s of a
// stream is sealed once the store's clock passes
// s + 1 + SealDelay. Until then push nodes may add to it; after that its
// counts never change, so pull nodes can publish it once and caches and
// cursors stay right. Counts that reach the store for a sealed second (a
// backlog written after an outage, a slow push node) are carried into the
// oldest unsealed second of their stream: they reach viewers late, but
// exactly once. The store's clock, not the pull node's, decides when a
// second is due, so every pull node publishes the same counts for the same
// second. What is sealed is one value per shard of streams that Collect
// moves forward before it reads and Add checks in the same atomic step as
// its write (Redis: a key in the shard's slot), so no write lands in a
// second already read, whatever the clocks of several Redis nodes say.
//
// Memory is the embedded implementation; Redis is the one a fleet shares.
// Both pass the contract tests in contract_test.go.
package store

import (
	"errors"
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

// Comment is one danmaku comment: who wrote it, its cleaned text and its
// id, unique in the fleet (push nodes assign it), which operators name to
// retract it. Comments of older nodes have none.
type Comment struct {
	User string
	Text string
	ID   string
}

// CommentAt is a comment a push node accepted in a second of a stream.
type CommentAt struct {
	Stream string
	Second int64
	Comment
}

// DefaultMaxComments is how many comments a second of a stream holds by
// default: docs/api.md's budget.
const DefaultMaxComments = 30

// MaxCommentSpill is how many seconds past the oldest open second a
// comment may be moved to find room: a second holds at most the store's
// maximum of comments, and a comment whose second is full (a backlog of
// late comments carried into the open second, or comments taken in more
// seconds than the cap) goes into the next second with room. Count and
// comment keys live 2 * Window seconds, so a second this far ahead is
// sealed and read long before they expire.
const MaxCommentSpill = Window

// Batch is one flush of a push node. A batch whose fate is unknown (the
// store went away mid-write) is retried with the same ID, and the store adds
// a batch at most once per ID, so a retry never counts anything twice.
type Batch struct {
	ID          string
	Deltas      []Delta
	Comments    []CommentAt
	Retractions []Retraction
}

// Retraction takes a comment down: it is listed in a second after the
// comment's, so that clients showing the comment remove it. A second's
// retractions are not bounded by its comment budget.
type Retraction struct {
	Stream string
	Second int64
	ID     string
}

// MaxRetractions is how many retractions a second of a stream holds beyond
// its comments: an operator taking down a flood has room.
const MaxRetractions = 100

// DedupeWindow is how long a store remembers batch IDs: retries must happen
// within it.
const DedupeWindow = 10 * time.Minute

// ErrNotApplied marks an Add error after which nothing of the batch was
// written (the store could not be reached): unlike a write whose reply was
// lost, its retry is safe however late.
var ErrNotApplied = errors.New("nothing was written")

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

// Second holds the counts, comments and retractions of one sealed,
// non-empty second of a stream; comments in the order they were added.
type Second struct {
	Stream    string
	Second    int64
	Counts    []Count
	Comments  []Comment
	Retracted []string // ids of comments taken down
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

// DefaultHistory is how long sealed seconds are kept for replay by default.
const DefaultHistory = 24 * time.Hour

// MaxHistoryRange is the most seconds one History call covers: an hour.
const MaxHistoryRange = 3600

// History is what History found.
type History struct {
	// Horizon is the newest sealed second.
	Horizon int64
	// Seconds holds the non-empty seconds of the range that are sealed,
	// oldest first. They are shared and must not be modified.
	Seconds []Second
}

// AudienceTTL is how long a pull node's control report counts: a node that
// stopped reporting (it died, or its viewers left) drops out of the totals.
const AudienceTTL = 5 * time.Second

// AudienceReport is one pull node's view of one stream, reported every second.
// Every report keeps the stream's divisor alive: a divisor is forgotten
// only DivisorTTL after the last pull node stopped reporting the stream.
type AudienceReport struct {
	Stream  string
	Viewers int64 // this node's estimate of the stream's concurrent viewers
	Divisor int64 // the sample divisor chosen from the fleet's figures; 0 keeps the current one
	// Previous is the divisor Divisor replaces; 0 when Divisor is 0. Push
	// nodes still honour sends sampled with it for RecentFor.
	Previous int64
}

// Audience is what the fleet shares about a stream besides its counts.
type Audience struct {
	Viewers int64 // sum of the pull nodes' fresh viewer reports
	Divisor int64 // the sample divisor last chosen; 1 when none was
	// Previous is the divisor Divisor replaced within RecentFor; 0 if none.
	Previous int64
}

// DivisorTTL is how long a stream's divisor outlives the last control
// report of the stream: longer than AudienceTTL, so push nodes keep
// weighting the taps of a stream whose pull nodes restarted.
const DivisorTTL = 60 * time.Second

// RecentFor is how long a replaced divisor is still honoured in sends: a
// viewer may go that long between polls when the fleet is overloaded.
const RecentFor = 60 * time.Second

// SampledTaps is the count under which push nodes add, with each second's
// reaction counts, the weighted taps of the sends that stated a sample:
// what pull nodes choose the divisor from. It is no emoji (emoji ids never
// start with '~'), and pull nodes never publish it.
const SampledTaps = "~sampled"

// DefaultMaxDivisor is the default cap on the sample divisor: at the
// default 2,000 forwarded taps per second, a stream of up to 2,000,000
// taps a second is sampled to its target.
const DefaultMaxDivisor = 1000

// CommentLoadTTL is how long a push node's comment report counts, and how
// long a push node that stopped reporting is still counted as live.
const CommentLoadTTL = 3 * time.Second

// CommentReport is one push node's count of the comments offered to it for
// a stream in its last complete second.
type CommentReport struct {
	Stream  string
	Offered int64
}

// NodeLoad is one push node's fresh count of comments offered for a stream.
type NodeLoad struct {
	Node    string
	Offered int64
}

// CommentLoad is what the push fleet shares to split comment budgets.
type CommentLoad struct {
	// Nodes are the push nodes that reported within CommentLoadTTL, sorted.
	Nodes []string
	// Streams holds, for each stream asked about in order, the fresh
	// reports of the nodes that had comments for it, sorted by node.
	Streams [][]NodeLoad
}

// Horizon returns the newest second sealed at time now with the given delay.
func Horizon(now time.Time, sealDelay time.Duration) int64 {
	return now.Add(-sealDelay).Unix() - 1
}

package store

import (
	"context"
	"time"
)

// The seams of the store, in one place. Memory and Redis implement Store
// and Moderator; only Redis implements LimitSharer and SlowModeSharer,
// since one process's own records are exact. The checks at the end of
// the file keep every implementation honest at compile time.

// Store keeps per-second reaction counts and comments, and the per-stream
// figures the fleet shares.
type Store interface {
	// Add adds a batch's deltas and comments, unless a batch with the same
	// ID was added within DedupeWindow. A second holds at most the store's
	// maximum of comments; a comment whose second is full goes into the
	// next second with room, up to MaxCommentSpill seconds past the oldest
	// open second, and only past that is dropped and counted. After
	// an error some of its streams may have been added; retrying the batch
	// adds the rest.
	Add(ctx context.Context, batch Batch) error
	// Horizon returns the newest sealed second. It is cheap, so pull nodes
	// call it often and Collect only when it moves.
	Horizon(ctx context.Context) (int64, error)
	// Collect returns the sealed, non-empty seconds the cursors ask for.
	Collect(ctx context.Context, cursors []Cursor) (Collection, error)
	// History returns the sealed, non-empty seconds of a stream in
	// [from, to], at most MaxHistoryRange of them, kept for the store's
	// history duration.
	History(ctx context.Context, stream string, from, to int64) (History, error)
	// ReportAudience records node's reports, each replacing that node's
	// previous report for the stream; reports expire after AudienceTTL.
	ReportAudience(ctx context.Context, node string, reports []AudienceReport) error
	// Audience returns the fleet's figures for each stream, in order.
	Audience(ctx context.Context, streams []string) ([]Audience, error)
	// ReportComments records a push node's comment counts, each replacing
	// that node's previous report for the stream, and marks the node live;
	// both expire after CommentLoadTTL.
	ReportComments(ctx context.Context, node string, reports []CommentReport) error
	// CommentLoad returns the live push nodes and the fresh comment
	// reports for each stream.
	CommentLoad(ctx context.Context, streams []string) (CommentLoad, error)
	// Close releases the store's resources.
	Close() error
}

// The parts of Store each caller uses, so that it takes only those (as
// centrifuge splits Broker from PresenceManager): push.Store and
// pull.Store are made of them. Their methods are documented on Store.
type (
	// Writer takes push nodes' sums and comments.
	Writer interface {
		Add(ctx context.Context, batch Batch) error
	}
	// Reader gives pull nodes the sealed seconds.
	Reader interface {
		Horizon(ctx context.Context) (int64, error)
		Collect(ctx context.Context, cursors []Cursor) (Collection, error)
	}
	// HistoryReader gives pull nodes the kept seconds of a stream for
	// replay.
	HistoryReader interface {
		History(ctx context.Context, stream string, from, to int64) (History, error)
	}
	// AudienceReporter takes pull nodes' per-stream reports.
	AudienceReporter interface {
		ReportAudience(ctx context.Context, node string, reports []AudienceReport) error
	}
	// AudienceReader gives the fleet's per-stream figures: the sample
	// divisors to push nodes, viewers and divisors to pull nodes.
	AudienceReader interface {
		Audience(ctx context.Context, streams []string) ([]Audience, error)
	}
	// CommentLoadSharer is where push nodes share their comment load.
	CommentLoadSharer interface {
		ReportComments(ctx context.Context, node string, reports []CommentReport) error
		CommentLoad(ctx context.Context, streams []string) (CommentLoad, error)
	}
)

// ModerationReader is where nodes read the moderation they enforce.
type ModerationReader interface {
	// ModerationVersion returns the version of the moderation data: it
	// changes with every write, so a node reads the rest only then.
	ModerationVersion(ctx context.Context) (int64, error)
	// LoadModeration returns every stream's settings and every ban that
	// has not expired.
	LoadModeration(ctx context.Context) (Moderation, error)
}

// ModerationWriter is where operators change moderation.
type ModerationWriter interface {
	// PutSettings replaces a stream's settings; zero settings remove them.
	PutSettings(ctx context.Context, stream string, s Settings) error
	// BanUser bans a user from a stream until b.Until, replacing an
	// earlier ban of the same user and stream.
	BanUser(ctx context.Context, b Ban) error
	// UnbanUser lifts a ban; it reports whether there was one.
	UnbanUser(ctx context.Context, stream, user string) (bool, error)
	// Retract adds the retraction of a comment to the oldest unsealed
	// second of its stream, so that polls list it after the comment.
	Retract(ctx context.Context, stream, id string) error
}

// TopStreams is where pull nodes report their busiest streams and
// operators read the fleet's.
type TopStreams interface {
	// ReportTop replaces a pull node's report of its busiest streams; it
	// expires after TopTTL.
	ReportTop(ctx context.Context, node string, streams []StreamStats) error
	// Top returns the streams the fresh reports name, each once (the
	// figures of the node that saw the most viewers), busiest first.
	Top(ctx context.Context, n int) ([]StreamStats, error)
}

// Moderator is what the operators' API uses: moderation read and written,
// and the busiest streams.
type Moderator interface {
	ModerationReader
	ModerationWriter
	TopStreams
}

// LimitSharer is a store through which the processes of a fleet share
// rate limits (see ratelimit.Limiter's Usage and Merge). Redis is one; the
// memory store serves one process and needs none.
type LimitSharer interface {
	// ShareLimits adds what each key of the limiter named kind used on
	// the caller since it last handed the key over to the fleet's
	// record, and returns each key's fleet-wide TAT in Unix nanoseconds of
	// the caller's clock, whose reading now is, in order.
	ShareLimits(ctx context.Context, kind string, now time.Time, keys []string, uses []LimitUse) ([]int64, error)
}

// SlowModeSharer is a store through which the push nodes of a fleet share
// slow mode, so that a user waits the period between two comments
// whichever nodes take them. Redis is one; the memory store serves one
// process, whose own record is exact.
type SlowModeSharer interface {
	// TakeSlowMode returns, for each take in order, 0 when the user's turn
	// was free (it is now taken for the period) or how long until it is.
	TakeSlowMode(ctx context.Context, takes []SlowModeTake) ([]time.Duration, error)
}

// Store has every part, and Moderator every moderation part.
var (
	_ Writer            = Store(nil)
	_ Reader            = Store(nil)
	_ HistoryReader     = Store(nil)
	_ AudienceReporter  = Store(nil)
	_ AudienceReader    = Store(nil)
	_ CommentLoadSharer = Store(nil)
	_ ModerationReader  = Moderator(nil)
	_ ModerationWriter  = Moderator(nil)
	_ TopStreams        = Moderator(nil)
)

// Both stores implement every seam but the fleet's sharing, which only
// Redis needs (memory_test.go checks Memory stays without it: a push node
// takes a store that has it as its fleet's record).
var (
	_ Store     = (*Memory)(nil)
	_ Store     = (*Redis)(nil)
	_ Moderator = (*Memory)(nil)
	_ Moderator = (*Redis)(nil)

	_ LimitSharer    = (*Redis)(nil)
	_ SlowModeSharer = (*Redis)(nil)
)

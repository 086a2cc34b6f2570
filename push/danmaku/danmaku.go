// Package danmaku decides which danmaku comments a push node takes: each
// user's and address group's comment rate, slow mode across the fleet,
// the stream's per-second budget split over the push fleet, and the word
// filter's masking, which fails closed. It keeps what it accepted until
// the node's next flush. The HTTP side (parsing, identity, moderation
// refusals) stays in package push.
package danmaku

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/internal/logthrottle"
	"github.com/emojicast/emojicast/moderation"
	"github.com/emojicast/emojicast/ratelimit"
	"github.com/emojicast/emojicast/store"
)

// Options configures Comments. Every field is required unless its
// comment says otherwise; push.Options documents their defaults.
type Options struct {
	// Node is the push node's id: comment ids start with it, and the
	// fleet's comment load names it.
	Node string
	// Stores are where the node shares its comment load: the first, the
	// node's own region, is also read back. At least one.
	Stores []store.CommentLoadSharer
	// Timeout bounds one exchange of comment load.
	Timeout time.Duration
	// Budget is the most comments a stream broadcasts a second, across
	// the push fleet (see budget.go).
	Budget int
	// MaxStreams bounds the streams with budgets.
	MaxStreams int
	// UserRate and UserBurst limit each user's comments.
	UserRate  float64
	UserBurst int
	// GroupRate and GroupBurst limit each address group's comments when
	// its ids are self-service.
	GroupRate  float64
	GroupBurst int
	// MaxUsers and MaxAddrs bound the users and address groups remembered.
	MaxUsers int
	MaxAddrs int
	// Filter masks blocked words; nil masks none.
	Filter Masker
	// FilterTimeout is the longest a comment waits for Filter.
	FilterTimeout time.Duration
	// SlowSharer takes users' slow-mode turns fleet-wide; nil: this
	// node's own record decides alone.
	SlowSharer store.SlowModeSharer
	// SlowModeTimeout bounds the wait for SlowSharer.
	SlowModeTimeout time.Duration
	// Clock assigns reports to seconds.
	Clock  clock.Clock
	Logger *slog.Logger
	// Registerer takes the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Comments is a push node's comment intake. Create it with New, Start it
// before serving comments and Stop it with the node.
type Comments struct {
	opts    Options
	metrics *metrics

	users    *ratelimit.Limiter
	groups   *ratelimit.Limiter // address groups of self-service ids
	slowMode *moderation.SlowMode
	budget   *budget
	pending  pendingComments
	seq      atomic.Uint64 // of comment ids

	masking   chan struct{} // semaphore of masking calls under way
	filterLog logthrottle.Throttle

	slowTurns chan *slowTurn
	slowLog   logthrottle.Throttle
	reporting []atomic.Bool // per store but the first: a load report is under way

	stop  chan struct{}
	loops sync.WaitGroup
}

// New returns the comment intake of a push node.
func New(opts Options) *Comments {
	return &Comments{
		opts:     opts,
		metrics:  newMetrics(opts.Registerer),
		users:    ratelimit.New(opts.UserRate, opts.UserBurst, opts.MaxUsers),
		groups:   ratelimit.New(opts.GroupRate, opts.GroupBurst, opts.MaxAddrs),
		slowMode: moderation.NewSlowMode(opts.MaxUsers, opts.Registerer),
		// The fleet view ages in real time, like the ticker that refreshes
		// it: on a test clock that jumps whole seconds it would go stale
		// between two ticks.
		budget:    newBudget(opts.Budget, opts.Node, opts.MaxStreams, clock.Real{}),
		masking:   make(chan struct{}, maxMasking),
		filterLog: logthrottle.Throttle{Every: time.Minute},
		slowTurns: make(chan *slowTurn, slowModeQueue),
		slowLog:   logthrottle.Throttle{Every: time.Minute},
		reporting: make([]atomic.Bool, len(opts.Stores)-1),
		stop:      make(chan struct{}),
	}
}

// Start joins the fleet's comment budget, with one round of sharing the
// load (bounded by Timeout), then starts the loops that keep sharing it
// and take slow-mode turns. The loops' store calls end with ctx. A node
// takes no comment seats until it has joined (see budget.go).
func (c *Comments) Start(ctx context.Context) {
	if c.opts.SlowSharer != nil {
		c.loops.Go(func() { c.slowModeLoop(ctx) })
	}
	c.shareCommentLoad(ctx)
	c.loops.Go(func() { c.commentLoadLoop(ctx) })
}

// Stop stops the loops and waits for them; comments waiting for a
// slow-mode turn go by this node's record. Call it once.
func (c *Comments) Stop() {
	close(c.stop)
	c.loops.Wait()
}

// Limit takes one comment from the user's allowance and, when group is
// not nil, from the address group's, and returns how long to wait when
// either is spent.
func (c *Comments) Limit(user, group []byte, now time.Time) time.Duration {
	wait := c.users.Allow(user, 1, now.UnixNano())
	if wait <= 0 && group != nil {
		wait = c.groups.Allow(group, 1, now.UnixNano())
	}
	return wait
}

// Admit decides on a comment offered for stream in second sec within
// the stream's budget (perSecond; 0 or past the fleet's: the fleet's): see
// budget.admit.
func (c *Comments) Admit(stream []byte, sec int64, perSecond int) (keep bool, in int64, ok bool) {
	return c.budget.admit(stream, sec, perSecond)
}

// Accept keeps a comment the budget kept until the next Drain, under a new
// id unique in the fleet: the node's id and a sequence number.
func (c *Comments) Accept(stream []byte, sec int64, user []byte, text string) {
	id := c.opts.Node[:8] + "." + strconv.FormatUint(c.seq.Add(1), 36)
	c.pending.add(store.CommentAt{
		Stream: string(stream), Second: sec,
		Comment: store.Comment{User: string(user), Text: text, ID: id},
	})
}

// Drain returns the comments accepted since the last Drain.
func (c *Comments) Drain() []store.CommentAt { return c.pending.drain() }

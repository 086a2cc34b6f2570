// Package push is the send side of emojicast: it validates taps, limits each
// user's rate, sums accepted taps per stream, second and emoji in memory, and
// flushes the sums to the store several times a second, so the store sees a
// write per stream and emoji per flush, never one per tap. It also takes
// danmaku comments: cleaned here, then limited, masked, kept or shed
// within the stream's per-second budget by package push/danmaku, and
// flushed with the sums.
package push

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/emoji"
	"github.com/emojicast/emojicast/load"
	"github.com/emojicast/emojicast/moderation"
	"github.com/emojicast/emojicast/push/danmaku"
	"github.com/emojicast/emojicast/ratelimit"
	"github.com/emojicast/emojicast/store"
	"github.com/emojicast/emojicast/token"
)

// Store is what a push node uses of a store: it writes sums and comments,
// reads the sample divisors and shares its comment load.
type Store interface {
	store.Writer
	store.AudienceReader
	store.CommentLoadSharer
}

// Target is a store the node writes its sums to. A node may write to several
// (one per region); each has its own backlog.
type Target struct {
	Name  string
	Store Store
}

// Options configures a Push node. Zero fields take the default in their comment.
type Options struct {
	// Targets are the stores to write to. Required: at least one.
	Targets []Target
	// Emojis is the accepted emoji set. Default: emoji.Default().
	Emojis *emoji.Set
	// Clock assigns taps to seconds. Default: the system clock.
	Clock clock.Clock
	// Signer checks the anonymous viewer tokens pull nodes issue from
	// watch. With neither Signer nor JWT the node runs the open mode: the
	// user is whatever the body says, for trusted networks only.
	Signer *token.Signer
	// JWT checks identity tokens the application's backend signs.
	JWT *token.JWTVerifier
	// Load sheds sends with 503 when the process is over its budget; nil
	// never sheds.
	Load *load.Meter
	// FlushInterval is how often sums are written to the store.
	// Default: DefaultFlushInterval. It must stay well under the seal delay.
	FlushInterval time.Duration
	// FlushTimeout bounds one write to a store. Default: DefaultFlushTimeout.
	FlushTimeout time.Duration
	// UserRate is the taps per second each user may send. Default: DefaultUserRate.
	UserRate float64
	// UserBurst is the taps a user may send at once. Default:
	// DefaultUserBurst; at least MaxCount.
	UserBurst int
	// MaxUsers bounds the users whose rate is remembered. Default: DefaultMaxUsers.
	MaxUsers int
	// AddrWeightRate is the weighted taps per second each client address
	// group (an IPv4 address, an IPv6 /56) may have counted when its ids
	// are self-service (the open mode, anonymous tokens), whatever ids it
	// uses. Default: DefaultAddrWeightRate.
	AddrWeightRate float64
	// AddrWeightBurst is the weighted taps an address group may have
	// counted at once; no self-service send weighs more. Default:
	// DefaultAddrWeightBurst; at least MaxCount.
	AddrWeightBurst int
	// GroupCommentRate is the comments per second each address group may
	// send when its ids are self-service. Default: DefaultGroupCommentRate.
	GroupCommentRate float64
	// GroupCommentBurst is the comments an address group may send at once.
	// Default: DefaultGroupCommentBurst.
	GroupCommentBurst int
	// MaxAddrs bounds the address groups whose rates are remembered, in
	// each of the address limits. Default: DefaultMaxAddrs.
	MaxAddrs int
	// SharedLimits are further per-key limiters (such as the server's
	// per-address one) to share across the push fleet with the per-user
	// one, through the first target when it is a store.LimitSharer. Each
	// must come from ratelimit.NewShared; names must differ and not be "u" or "w".
	SharedLimits []SharedLimit
	// MaxStreams bounds the streams summed between flushes; sends for new
	// streams past it get 503. Default: DefaultMaxStreams.
	MaxStreams int
	// MaxBacklog bounds the deltas and comments waiting per target while
	// its store is unreachable; the oldest seconds are dropped past it.
	// Default: DefaultMaxBacklog.
	MaxBacklog int
	// CommentBudget is the most comments a stream broadcasts per second,
	// across the push fleet (see push/danmaku/budget.go). Every push node of a
	// deployment must use the same. Default: store.DefaultMaxComments.
	CommentBudget int
	// CommentUserRate is the comments per second each user may send.
	// Default: DefaultCommentUserRate.
	CommentUserRate float64
	// CommentUserBurst is the comments a user may send at once.
	// Default: DefaultCommentUserBurst.
	CommentUserBurst int
	// Filter masks blocked words in comments; nil masks none.
	Filter Masker
	// FilterTimeout is the longest a comment waits for Filter before it
	// goes out masked whole. Default: DefaultFilterTimeout.
	FilterTimeout time.Duration
	// Moderation holds the operators' stream settings and bans; nil
	// enforces none.
	Moderation *moderation.Rules
	// SlowModeTimeout bounds how long a comment to a stream in slow mode
	// waits for the store to take its user's turn fleet-wide (see
	// danmaku/slowmode.go); past it this node's own record decides. Default:
	// DefaultSlowModeTimeout.
	SlowModeTimeout time.Duration
	// Logger receives operational messages. Default: slog.Default().
	Logger *slog.Logger
	// Registerer takes the node's metrics. Default: nil, registered
	// nowhere, so that nodes in one test process count apart; emojicast
	// passes prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
}

// The defaults of Options, in one place: cmd/emojicast's flags use them too.
const (
	// DefaultFlushInterval stays well under store.DefaultSealDelay, so a
	// second's sums reach the store before it is sealed.
	DefaultFlushInterval = 250 * time.Millisecond
	DefaultFlushTimeout  = 2 * time.Second
	DefaultUserRate      = 10
	DefaultUserBurst     = 20
	// DefaultAddrWeightRate and DefaultAddrWeightBurst let one address
	// group have counted what 100 viewers tapping at the per-user limit
	// would: a carrier-grade NAT puts many honest viewers behind one
	// address (docs/operations.md says how to size it).
	DefaultAddrWeightRate  = 1000
	DefaultAddrWeightBurst = 2000
	// DefaultMaxAddrs is the server's default bound on client addresses
	// per limit (--max-client-ips).
	DefaultMaxAddrs = 200_000
	// DefaultGroupCommentRate and DefaultGroupCommentBurst are four
	// users' worth of comments per address group.
	DefaultGroupCommentRate  = 2
	DefaultGroupCommentBurst = 12
	DefaultMaxUsers          = 1_000_000
	DefaultMaxStreams        = 100_000
	DefaultMaxBacklog        = 1_000_000
	// DefaultCommentUserRate is one comment every 2 s.
	DefaultCommentUserRate  = 0.5
	DefaultCommentUserBurst = 3
	DefaultFilterTimeout    = 20 * time.Millisecond
	DefaultSlowModeTimeout  = 250 * time.Millisecond
)

func (o *Options) fillDefaults() error {
	if len(o.Targets) == 0 {
		return errors.New("push: at least one store target is required")
	}
	if o.Emojis == nil {
		o.Emojis = emoji.Default()
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = DefaultFlushTimeout
	}
	if o.UserRate <= 0 {
		o.UserRate = DefaultUserRate
	}
	if o.UserBurst <= 0 {
		o.UserBurst = DefaultUserBurst
	}
	if o.UserBurst < MaxCount {
		return fmt.Errorf("push: user burst %d is below the largest count %d, so such sends could never pass", o.UserBurst, MaxCount)
	}
	if o.MaxUsers <= 0 {
		o.MaxUsers = DefaultMaxUsers
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	if o.AddrWeightRate <= 0 {
		o.AddrWeightRate = DefaultAddrWeightRate
	}
	if o.AddrWeightBurst <= 0 {
		o.AddrWeightBurst = DefaultAddrWeightBurst
	}
	if o.AddrWeightBurst < MaxCount {
		return fmt.Errorf("push: address weight burst %d is below the largest count %d, so such sends could never pass", o.AddrWeightBurst, MaxCount)
	}
	if o.GroupCommentRate <= 0 {
		o.GroupCommentRate = DefaultGroupCommentRate
	}
	if o.GroupCommentBurst <= 0 {
		o.GroupCommentBurst = DefaultGroupCommentBurst
	}
	if o.MaxAddrs <= 0 {
		o.MaxAddrs = DefaultMaxAddrs
	}
	if o.MaxBacklog <= 0 {
		o.MaxBacklog = DefaultMaxBacklog
	}
	if o.CommentBudget <= 0 {
		o.CommentBudget = store.DefaultMaxComments
	}
	if o.CommentUserRate <= 0 {
		o.CommentUserRate = DefaultCommentUserRate
	}
	if o.CommentUserBurst <= 0 {
		o.CommentUserBurst = DefaultCommentUserBurst
	}
	if o.FilterTimeout <= 0 {
		o.FilterTimeout = DefaultFilterTimeout
	}
	if o.SlowModeTimeout <= 0 {
		o.SlowModeTimeout = DefaultSlowModeTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// SharedLimit is a limiter shared across the push fleet under a name.
type SharedLimit struct {
	Name    string
	Limiter *ratelimit.Limiter
}

// Node is a push node. Create it with New, serve Handle, Start its flusher,
// and Stop it to flush what it accepted.
type Node struct {
	opts     Options
	metrics  *metrics
	nodeID   string
	agg      *aggregator
	divisors *divisors
	comments *danmaku.Comments
	targets  []*target // the backlog writers, one per store
	seq      atomic.Uint64

	users *ratelimit.Limiter
	// addrWeights limits the weighted taps of address groups whose ids
	// are self-service, shared with the fleet like users.
	addrWeights *ratelimit.Limiter
	sendIDs     *ratelimit.Limiter // (user, stream, id) of sends counted lately

	flushMu sync.Mutex // serializes Flush's hand-over of sums

	refreshing   atomic.Bool // a divisor read is under way; guards the fields below
	refreshedSec int64
	refreshedAt  time.Time

	sharer       store.LimitSharer // nil: limits are this node's own
	shared       []SharedLimit     // the per-user limit first
	shareFailing bool              // the last exchange failed; owned by limitsLoop

	stopOnce sync.Once
	stop     chan struct{} // stops the flush and limit loops
	loops    sync.WaitGroup
	// life bounds every store call but the final writes; Stop cancels it,
	// so a store that hangs cannot hold Stop for a FlushTimeout per loop.
	life    context.Context
	endLife context.CancelFunc
	started atomic.Bool
}

// New returns a Push node.
func New(opts Options) (*Node, error) {
	if err := opts.fillDefaults(); err != nil {
		return nil, err
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	m := newMetrics(opts.Registerer)
	p := &Node{
		opts:     opts,
		metrics:  m,
		nodeID:   hex.EncodeToString(id[:]),
		agg:      newAggregator(opts.MaxStreams),
		divisors: newDivisors(opts.MaxStreams, m.divisorErrors),
		// Its rate and burst are unused: an id is taken once per window.
		sendIDs: ratelimit.New(1, 1, maxSendIDs),
		stop:    make(chan struct{}),
	}
	p.life, p.endLife = context.WithCancel(context.Background())
	p.sharer, _ = opts.Targets[0].Store.(store.LimitSharer)
	if p.sharer != nil {
		p.users = ratelimit.NewShared(opts.UserRate, opts.UserBurst, opts.MaxUsers)
		p.addrWeights = ratelimit.NewShared(opts.AddrWeightRate, opts.AddrWeightBurst, opts.MaxAddrs)
		p.shared = append([]SharedLimit{{Name: "u", Limiter: p.users}, {Name: "w", Limiter: p.addrWeights}}, opts.SharedLimits...)
	} else {
		p.users = ratelimit.New(opts.UserRate, opts.UserBurst, opts.MaxUsers)
		p.addrWeights = ratelimit.New(opts.AddrWeightRate, opts.AddrWeightBurst, opts.MaxAddrs)
	}
	loads := make([]store.CommentLoadSharer, len(opts.Targets))
	for i, t := range opts.Targets {
		name := t.Name
		if name == "" {
			name = "store" + strconv.Itoa(i)
		}
		p.targets = append(p.targets, newTarget(name, t.Store, opts.FlushTimeout, opts.MaxBacklog, opts.Logger, opts.Clock, m))
		loads[i] = t.Store
	}
	slowSharer, _ := opts.Targets[0].Store.(store.SlowModeSharer)
	p.comments = danmaku.New(danmaku.Options{
		Node: p.nodeID, Stores: loads, Timeout: opts.FlushTimeout,
		Budget: opts.CommentBudget, MaxStreams: opts.MaxStreams,
		UserRate: opts.CommentUserRate, UserBurst: opts.CommentUserBurst,
		GroupRate: opts.GroupCommentRate, GroupBurst: opts.GroupCommentBurst,
		MaxUsers: opts.MaxUsers, MaxAddrs: opts.MaxAddrs,
		Filter: opts.Filter, FilterTimeout: opts.FilterTimeout,
		SlowSharer: slowSharer, SlowModeTimeout: opts.SlowModeTimeout,
		Clock: opts.Clock, Logger: opts.Logger, Registerer: opts.Registerer,
	})
	registerGauges(p)
	return p, nil
}

// Start starts the backlog writers, the flusher, the sharing of limits and
// the comment intake, after its first round of sharing comment load
// (bounded by FlushTimeout): a node takes no comment seats until it has.
func (p *Node) Start() {
	if p.started.Swap(true) {
		panic("BUG: push.Start called twice")
	}
	for _, t := range p.targets {
		t.start(p.life)
	}
	p.loops.Go(p.flushLoop)
	if p.sharer != nil {
		p.loops.Go(p.limitsLoop)
	}
	p.comments.Start(p.life)
}

func (p *Node) flushLoop() {
	tick := time.NewTicker(p.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			p.Flush()
		case <-p.stop:
			p.Flush()
			return
		}
	}
}

// divisorRefresh is how often the sample divisors are read from the store
// at least. Pull nodes write a new divisor a second before they advertise
// it, so push nodes also read them as soon as a new second starts.
const divisorRefresh = 500 * time.Millisecond

// refreshDivisors reads the sample divisors from the first target, the
// node's own region, whose pull nodes advertise them to its viewers, when
// a new second started or divisorRefresh passed since the last read. A
// caller that finds a read under way leaves it to that one.
func (p *Node) refreshDivisors() {
	if !p.refreshing.CompareAndSwap(false, true) {
		return
	}
	defer p.refreshing.Store(false)
	now := p.opts.Clock.Now()
	if now.Unix() == p.refreshedSec && now.Sub(p.refreshedAt) < divisorRefresh {
		return
	}
	p.refreshedSec, p.refreshedAt = now.Unix(), now
	ctx, cancel := context.WithTimeout(p.life, p.opts.FlushTimeout)
	defer cancel()
	if err := p.divisors.refresh(ctx, p.targets[0].store, now.Unix()); err != nil {
		p.metrics.divisorErrors.Inc()
	}
}

// maxBatch bounds the deltas of one batch, so one store write stays small.
const maxBatch = 4096

// Flush moves the sums accepted so far into every target's queue, wakes
// the senders and refreshes the sample divisors when due. The flusher calls
// it every FlushInterval; it is safe to call from other goroutines too.
// The divisor read is a store round trip, so it runs after the hand-over,
// outside flushMu: another Flush never waits for it.
func (p *Node) Flush() {
	p.handOver()
	p.refreshDivisors()
}

// handOver moves the sums and comments accepted so far into every
// target's queue.
func (p *Node) handOver() {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	idleBefore := p.opts.Clock.Now().Unix() - 5
	deltas := p.agg.drain(nil, p.opts.Emojis, idleBefore)
	comments := p.comments.Drain()
	for len(deltas) > 0 || len(comments) > 0 {
		n, m := min(len(deltas), maxBatch), min(len(comments), maxBatch)
		b := store.Batch{
			ID:     p.nodeID + "-" + strconv.FormatUint(p.seq.Add(1), 10),
			Deltas: deltas[:n:n], Comments: comments[:m:m],
		}
		for _, t := range p.targets {
			t.enqueue(b)
		}
		deltas, comments = deltas[n:], comments[m:]
	}
}

// Stop flushes the sums and writes the backlogs until they are empty or ctx
// is done. Call it after the HTTP server stopped taking requests. It is
// idempotent.
func (p *Node) Stop(ctx context.Context) {
	p.stopOnce.Do(func() {
		defer unregisterGauges(p)
		close(p.stop)
		// The loops' store calls are abandoned, the targets' write under
		// way too: the final drain below writes it again, under ctx (a
		// batch id is written once however often it is sent).
		p.endLife()
		p.comments.Stop()
		if !p.started.Load() {
			return
		}
		// The flush loop flushes once more on its way out; only then may
		// the backlog writers write their last batches and stop.
		p.loops.Wait()
		for _, t := range p.targets {
			t.stop(ctx)
		}
	})
}

// Ready reports whether every target's store answers or has backlog room.
func (p *Node) Ready() (bool, string) {
	for _, t := range p.targets {
		if !t.ready() {
			return false, "store " + t.name + " is unreachable and its backlog is full"
		}
	}
	return true, ""
}

// Degraded returns why the node is working around a problem, or "" when it
// is not: a store it writes to is unreachable, so its sums wait in a
// backlog. The node stays ready while the backlog has room (see Ready).
func (p *Node) Degraded() string {
	for _, t := range p.targets {
		if !t.healthy.Load() {
			return "store " + t.name + " is unreachable; " + strconv.Itoa(t.backlog()) + " counts wait in its backlog"
		}
	}
	return ""
}

// Backlog returns the deltas waiting to be written, summed over targets.
func (p *Node) Backlog() int {
	n := 0
	for _, t := range p.targets {
		n += t.backlog()
	}
	return n
}

// Package pull is the poll side of emojicast. A pull node keeps a 60-slot
// ring of one-second buckets for each stream its viewers ask about; one
// syncer goroutine moves newly sealed seconds from the store into the rings,
// and polls are answered from the rings through a cache of encoded, gzipped
// bodies, so the request path touches only memory and, for a popular
// (stream, cursor, second), serves stored bytes; other cursors get bodies
// assembled from per-second pieces gzipped once.
package pull

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/emoji"
	"github.com/emojicast/emojicast/internal/logthrottle"
	"github.com/emojicast/emojicast/load"
	"github.com/emojicast/emojicast/moderation"
	"github.com/emojicast/emojicast/ratelimit"
	"github.com/emojicast/emojicast/store"
	"github.com/emojicast/emojicast/token"
)

// Store is what a pull node uses of a store: it syncs sealed seconds,
// reads a stream's history, and reports and reads the per-stream figures.
type Store interface {
	store.Reader
	store.HistoryReader
	store.AudienceReporter
	store.AudienceReader
}

// Options configures a Pull node. Zero fields take the default in their comment.
type Options struct {
	// Store is where sealed seconds come from. Required.
	Store Store
	// History answers replays (GET .../history): an archive for ranges
	// older than the store keeps (archive.Tiered). Default: Store.
	History store.HistoryReader
	// Emojis is the emoji set. Default: emoji.Default().
	Emojis *emoji.Set
	// Clock is used for "now" in limits and staleness. Default: system clock.
	Clock clock.Clock
	// Signer issues anonymous viewer tokens from watch, for ids the node
	// makes up. With neither Signer nor JWT, watch runs the open mode: the
	// viewer is whoever ?user= says.
	Signer *token.Signer
	// JWT checks the identity tokens the application's backend signs, that
	// viewers show watch in Authorization.
	JWT *token.JWTVerifier
	// PullURL and PushURL are the base URLs (scheme://host[:port]) watch
	// hands to viewers. Default: http:// and the request's Host header.
	PullURL, PushURL string
	// SyncInterval is how often the syncer asks the store for new seconds.
	// Default: DefaultSyncInterval.
	SyncInterval time.Duration
	// SyncTimeout bounds one sync. Default: DefaultSyncTimeout.
	SyncTimeout time.Duration
	// StaleAfter is how long without a successful sync before the node
	// reports not ready. Default: DefaultStaleAfter.
	StaleAfter time.Duration
	// MaxStreams bounds the streams served; polls for new streams past it
	// get 503. Default: DefaultMaxStreams.
	MaxStreams int
	// IdleAfter is how long a stream nobody polls is kept.
	// Default: DefaultIdleAfter.
	IdleAfter time.Duration
	// BurstThreshold is the count at which an emoji's second is listed in
	// the bucket's burst. Default: DefaultBurstThreshold.
	BurstThreshold int64
	// BusyNextMS is next_ms for a stream with recent reactions.
	// Default: DefaultBusyNextMS.
	BusyNextMS int64
	// QuietNextMS is next_ms for a stream without reactions for QuietAfter.
	// Default: DefaultQuietNextMS.
	QuietNextMS int64
	// QuietMaxNextMS is the longest next_ms of a quiet stream. A stream
	// quiet for long tells its viewers to wait a tenth of its quiet spell
	// so far, from QuietNextMS up to this, so that an audience nobody
	// reacts for costs less the longer it stays quiet; its first reaction
	// brings BusyNextMS back at once. At most QuietNextMS: no growth.
	// Default: DefaultQuietMaxNextMS.
	QuietMaxNextMS int64
	// QuietAfter is how long without reactions makes a stream quiet.
	// Default: DefaultQuietAfter.
	QuietAfter time.Duration
	// MinNextMS and MaxNextMS bound every next_ms. Default:
	// DefaultMinNextMS and DefaultMaxNextMS.
	MinNextMS, MaxNextMS int64
	// CompactMinNextMS is the shortest next_ms a compact body (v=2)
	// advises: clients that ask for the fewest bytes play each second
	// spread over a second of screen time, behind live, so polling a busy
	// stream every 2 s instead of every second shows them the same flow,
	// a second later, for about half the bytes. At most MaxNextMS.
	// Default: DefaultCompactMinNextMS.
	CompactMinNextMS int64
	// Load stretches next_ms when the process is over its budget; nil never does.
	Load *load.Meter
	// TargetSends is the forwarded taps per second per stream the push
	// fleet should receive; sample is chosen to keep it there.
	// Default: DefaultTargetSends.
	TargetSends int64
	// MaxDivisor caps the sample divisor; push nodes must use the same.
	// Default: store.DefaultMaxDivisor.
	MaxDivisor int64
	// ViewersPerAddress is the most viewers one client address counts as
	// in a stream's viewer estimate per poll window (next_ms): a client
	// polling faster than it is told counts once, not once per poll, while
	// a household or a small NAT still counts in full. Default: 4.
	ViewersPerAddress int
	// MaxAddresses bounds the (address, stream) pairs remembered for
	// ViewersPerAddress; past it the oldest are forgotten. Default: 200,000.
	MaxAddresses int
	// NodeID names this node in the viewer reports it shares.
	// Default: a random id.
	NodeID string
	// Moderation, when set, restricts the emojis watch lists for a stream
	// to those its settings allow.
	Moderation *moderation.Rules
	// Logger receives operational messages. Default: slog.Default().
	Logger *slog.Logger
	// Registerer takes the node's metrics. Default: nil, registered
	// nowhere, so that nodes in one test process count apart; emojicast
	// passes prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
	// EdgeFeed, when set, names the edges whose log feed reports their
	// polls (CountEdgePolls); polls from them are not counted again when
	// they reach this node. Nil: every poll that reaches the node counts.
	EdgeFeed *clientip.Resolver
}

// The defaults of Options, in one place: cmd/emojicast's flags use them too.
const (
	DefaultSyncInterval      = 100 * time.Millisecond
	DefaultSyncTimeout       = 2 * time.Second
	DefaultStaleAfter        = 5 * time.Second
	DefaultMaxStreams        = 100_000
	DefaultIdleAfter         = 60 * time.Second
	DefaultBurstThreshold    = 20
	DefaultBusyNextMS        = 1000
	DefaultQuietNextMS       = 5000
	DefaultQuietMaxNextMS    = 15_000
	DefaultQuietAfter        = 10 * time.Second
	DefaultMinNextMS         = 500
	DefaultCompactMinNextMS  = 2000
	DefaultMaxNextMS         = 30_000
	DefaultTargetSends       = 2000
	DefaultViewersPerAddress = 4
	DefaultMaxAddresses      = 200_000
)

// unsyncedNextMS is next_ms for a stream the node has not synced yet: the
// syncer fills it within a tick, so the viewer should come back soon.
const unsyncedNextMS = 250

func (o *Options) fillDefaults() error {
	if o.Store == nil {
		return errors.New("pull: a store is required")
	}
	if o.History == nil {
		o.History = o.Store
	}
	if o.Emojis == nil {
		o.Emojis = emoji.Default()
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	setDefault(&o.SyncInterval, DefaultSyncInterval)
	setDefault(&o.SyncTimeout, DefaultSyncTimeout)
	setDefault(&o.StaleAfter, DefaultStaleAfter)
	setDefault(&o.MaxStreams, DefaultMaxStreams)
	setDefault(&o.IdleAfter, DefaultIdleAfter)
	setDefault(&o.BurstThreshold, DefaultBurstThreshold)
	setDefault(&o.BusyNextMS, DefaultBusyNextMS)
	setDefault(&o.QuietNextMS, DefaultQuietNextMS)
	setDefault(&o.QuietAfter, DefaultQuietAfter)
	setDefault(&o.MinNextMS, DefaultMinNextMS)
	setDefault(&o.CompactMinNextMS, DefaultCompactMinNextMS)
	setDefault(&o.MaxNextMS, DefaultMaxNextMS)
	if o.QuietMaxNextMS <= 0 {
		// The default gives way to a shorter MaxNextMS; one set is checked.
		o.QuietMaxNextMS = min(DefaultQuietMaxNextMS, o.MaxNextMS)
	}
	o.QuietMaxNextMS = max(o.QuietMaxNextMS, o.QuietNextMS)
	setDefault(&o.TargetSends, DefaultTargetSends)
	setDefault(&o.MaxDivisor, store.DefaultMaxDivisor)
	setDefault(&o.ViewersPerAddress, DefaultViewersPerAddress)
	setDefault(&o.MaxAddresses, DefaultMaxAddresses)
	if o.MaxNextMS > maxNextMS {
		return fmt.Errorf("pull: the longest next_ms is %d, above the %d the viewer count can follow", o.MaxNextMS, maxNextMS)
	}
	// A node whose longest next_ms is shorter tells compact clients that.
	o.CompactMinNextMS = min(o.CompactMinNextMS, o.MaxNextMS)
	if o.MinNextMS > o.MaxNextMS || o.BusyNextMS < o.MinNextMS || o.QuietMaxNextMS > o.MaxNextMS {
		return fmt.Errorf("pull: next_ms bounds [%d, %d] must hold the busy (%d) and quiet (%d to %d) intervals",
			o.MinNextMS, o.MaxNextMS, o.BusyNextMS, o.QuietNextMS, o.QuietMaxNextMS)
	}
	if o.NodeID == "" {
		var id [6]byte
		_, _ = rand.Read(id[:])
		o.NodeID = "pull-" + hex.EncodeToString(id[:])
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Node is a pull node. Create it with New, serve its handlers, Start the
// syncer and Stop it on shutdown.
type Node struct {
	opts    Options
	metrics *metrics
	syncLog logthrottle.Throttle
	streams *registry
	initial *advice            // shared by new streams until their first sync
	counted *ratelimit.Limiter // arrivals per (address, stream) and poll window
	history *historyCache

	horizon atomic.Int64 // newest second published to the rings
	// startHorizon is the store's horizon asked before the first sync.
	startHorizon atomic.Int64
	lastSync     atomic.Int64 // Unix nanoseconds of the last successful sync
	// topReported is when the busiest streams were last reported; the
	// syncer goroutine owns it.
	topReported time.Time
	maxDivisor  atomic.Int64 // the largest divisor advertised at the last report
	createdAt   time.Time
	wake        chan struct{}

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	started  atomic.Bool
	// life bounds every store call; Stop cancels it, so a store that hangs
	// cannot hold Stop for a SyncTimeout.
	life    context.Context
	endLife context.CancelFunc
}

// New returns a Pull node.
func New(opts Options) (*Node, error) {
	if err := opts.fillDefaults(); err != nil {
		return nil, err
	}
	m := newMetrics(opts.Registerer)
	p := &Node{
		opts:    opts,
		metrics: m,
		syncLog: logthrottle.Throttle{Every: opts.StaleAfter},
		streams: newRegistry(opts.MaxStreams, m.streamsEvicted),
		initial: &advice{nextMS: opts.BusyNextMS, divisor: 1},
		// Its rate and burst are unused: arrivals are taken per poll window.
		counted:   ratelimit.New(1, 1, opts.MaxAddresses),
		wake:      make(chan struct{}, 1),
		history:   newHistoryCache(historyCacheBytes, historyCacheEntries, m),
		createdAt: opts.Clock.Now(),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	p.life, p.endLife = context.WithCancel(context.Background())
	registerGauges(p)
	return p, nil
}

// Start starts the syncer.
func (p *Node) Start() {
	if p.started.Swap(true) {
		panic("BUG: pull.Start called twice")
	}
	go p.syncLoop()
}

// Stop stops the syncer. It is idempotent.
func (p *Node) Stop() {
	p.stopOnce.Do(func() {
		defer unregisterGauges(p)
		close(p.stop)
		p.endLife()
		if p.started.Load() {
			<-p.done
		}
	})
}

// Ready reports whether the node synced recently enough to serve fresh data.
func (p *Node) Ready() (bool, string) {
	last := p.lastSync.Load()
	if last == 0 {
		return false, "pull has not synced with its store yet"
	}
	if age := p.opts.Clock.Now().Sub(time.Unix(0, last)); age > p.opts.StaleAfter {
		return false, "pull has not synced with its store for " + age.Round(time.Second).String()
	}
	return true, ""
}

// Serves reports whether the node keeps a ring for the stream already, so
// that a poll for it adds nothing. It does not allocate.
func (p *Node) Serves(id []byte) bool { return p.streams.has(id) }

// publishLag is how far the newest published second is behind the clock;
// before the first sync, the time since the node was created.
func (p *Node) publishLag() time.Duration {
	now := p.opts.Clock.Now()
	h := p.horizon.Load()
	if h == 0 {
		return now.Sub(p.createdAt)
	}
	return now.Sub(time.Unix(h+1, 0))
}

// Horizon returns the newest second the node has published.
func (p *Node) Horizon() int64 { return p.horizon.Load() }

// horizonEstimate is Horizon, or before the first sync the store's
// horizon, asked once and kept until the first sync: a cursor a little old
// only costs a few buckets, but one from the node's own clock could be
// ahead of the store's, and a viewer would skip every second up to it. It
// is false when the store did not answer.
func (p *Node) horizonEstimate() (int64, bool) {
	if h := p.horizon.Load(); h != 0 {
		return h, true
	}
	if h := p.startHorizon.Load(); h != 0 {
		return h, true
	}
	ctx, cancel := context.WithTimeout(p.life, estimateTimeout)
	defer cancel()
	h, err := p.opts.Store.Horizon(ctx)
	if err != nil {
		return 0, false
	}
	p.startHorizon.CompareAndSwap(0, h)
	return h, true
}

// estimateTimeout bounds the store call of a watch or poll before the
// node's first sync.
const estimateTimeout = time.Second

// wakeSyncer asks for a sync now, for a stream that was just added.
func (p *Node) wakeSyncer() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Node) syncLoop() {
	defer close(p.done)
	tick := time.NewTicker(p.opts.SyncInterval)
	defer tick.Stop()
	var scratch syncScratch
	for {
		select {
		case <-tick.C:
		case <-p.wake:
		case <-p.stop:
			return
		}
		ctx, cancel := context.WithTimeout(p.life, p.opts.SyncTimeout)
		start := time.Now()
		err := p.sync(ctx, &scratch)
		cancel()
		p.metrics.syncDuration.Observe(time.Since(start).Seconds())
		if err != nil {
			p.metrics.syncErrors.Inc()
			p.logSyncError(err)
		}
	}
}

// logSyncError logs at most one sync error per StaleAfter, so an outage
// does not flood the log ten times a second.
func (p *Node) logSyncError(err error) {
	p.syncLog.Warn(p.opts.Logger, "pull cannot sync with its store; serving what it has", "err", err)
}

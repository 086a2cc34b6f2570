// Package moderation is what push nodes enforce of the operators' stream
// settings and bans. A Rules value follows the store's moderation data: it
// asks for the version every Interval and reads the whole only when it
// moved, so a change reaches every node within about one interval and
// costs the store one small read per node per interval otherwise. The
// request path reads an immutable snapshot through one atomic load and,
// only for a stream with settings or bans, one map lookup.
package moderation

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/emoji"
	"github.com/emojicast/emojicast/store"
)

// Options configures Rules. Zero fields take the default in their comment.
type Options struct {
	// Store holds the moderation data. Required.
	Store store.ModerationReader
	// Emojis is the process's emoji set, which stream settings restrict.
	// Default: emoji.Default().
	Emojis *emoji.Set
	// Interval is how often the version is read. Default: 500ms, so that
	// changes reach every node within 2 s with room for a slow read.
	Interval time.Duration
	// Timeout bounds one read. Default: 2s.
	Timeout time.Duration
	// Logger receives operational messages. Default: slog.Default().
	Logger *slog.Logger
	// Registerer takes the metrics. Default: nil, registered nowhere
	// (tests); emojicast passes prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
}

// Stream is one stream's moderation as nodes enforce it.
type Stream struct {
	Closed        bool
	CommentsOff   bool
	CommentBudget int           // 0: the fleet's budget
	SlowMode      time.Duration // 0: none
	emojis        uint64        // bit i allows emoji i of the set; all set when unrestricted
	bans          map[string]int64
}

// AllowsEmoji reports whether the stream takes emoji i of the set.
func (s *Stream) AllowsEmoji(i int) bool { return s.emojis&(1<<uint(i)) != 0 }

// AllowsAll reports whether the stream takes every emoji of a set of n.
func (s *Stream) AllowsAll(n int) bool {
	for i := range n {
		if !s.AllowsEmoji(i) {
			return false
		}
	}
	return true
}

// Banned reports whether user is banned at nowMS (Unix milliseconds). It
// does not allocate.
func (s *Stream) Banned(user []byte, nowMS int64) bool {
	until, ok := s.bans[string(user)]
	return ok && until > nowMS
}

// snapshot is the moderation data at one version.
type snapshot struct {
	version int64
	streams map[string]*Stream // streams with settings or bans only
}

// Rules follows the store's moderation data. Create it with New, Start it,
// and Stop it on shutdown.
type Rules struct {
	opts    Options
	metrics *metrics
	snap    atomic.Pointer[snapshot]

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	started  atomic.Bool
	// life bounds every store call; Stop cancels it, so a store that hangs
	// cannot hold Stop for a Timeout.
	life    context.Context
	endLife context.CancelFunc
}

// New returns Rules that enforce nothing until Start reads the store.
func New(opts Options) (*Rules, error) {
	if opts.Store == nil {
		return nil, errors.New("moderation: a store is required")
	}
	if opts.Emojis == nil {
		opts.Emojis = emoji.Default()
	}
	if opts.Interval <= 0 {
		opts.Interval = 500 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Rules{opts: opts, metrics: newMetrics(opts.Registerer), stop: make(chan struct{}), done: make(chan struct{})}
	r.life, r.endLife = context.WithCancel(context.Background())
	r.snap.Store(&snapshot{version: -1})
	return r, nil
}

// Stream returns the moderation of a stream, or nil when it has none: the
// common case costs one atomic load and one map lookup, and never
// allocates.
func (r *Rules) Stream(id []byte) *Stream {
	s := r.snap.Load()
	if len(s.streams) == 0 {
		return nil
	}
	return s.streams[string(id)]
}

// Start reads the moderation data once, so a node that restarts enforces
// it before it serves, then follows it in the background.
func (r *Rules) Start() {
	if r.started.Swap(true) {
		panic("BUG: moderation.Start called twice")
	}
	if err := r.Refresh(); err != nil {
		r.metrics.refreshErrors.Inc()
		r.opts.Logger.Warn("cannot read moderation; retrying in the background", "err", err)
	}
	go r.loop()
}

// Stop stops following the store. It is idempotent.
func (r *Rules) Stop() {
	r.stopOnce.Do(func() {
		close(r.stop)
		r.endLife()
		if r.started.Load() {
			<-r.done
		}
	})
}

func (r *Rules) loop() {
	defer close(r.done)
	tick := time.NewTicker(r.opts.Interval)
	defer tick.Stop()
	var logged time.Time
	for {
		select {
		case <-tick.C:
		case <-r.stop:
			return
		}
		if err := r.Refresh(); err != nil {
			r.metrics.refreshErrors.Inc()
			if time.Since(logged) > time.Minute {
				logged = time.Now()
				r.opts.Logger.Warn("cannot read moderation; the last known rules stay in force", "err", err)
			}
		}
	}
}

// Refresh reads the version and, when it moved, the moderation data. After
// Stop it fails at once.
func (r *Rules) Refresh() error {
	ctx, cancel := context.WithTimeout(r.life, r.opts.Timeout)
	defer cancel()
	v, err := r.opts.Store.ModerationVersion(ctx)
	if err != nil {
		return err
	}
	if v == r.snap.Load().version {
		r.metrics.lastRefresh.SetToCurrentTime()
		return nil
	}
	m, err := r.opts.Store.LoadModeration(ctx)
	if err != nil {
		return err
	}
	r.snap.Store(build(m, r.opts.Emojis))
	r.metrics.lastRefresh.SetToCurrentTime()
	return nil
}

// build turns the store's moderation data into a snapshot.
func build(m store.Moderation, emojis *emoji.Set) *snapshot {
	all := uint64(1)<<uint(emojis.Len()) - 1
	s := &snapshot{version: m.Version, streams: make(map[string]*Stream, len(m.Settings))}
	get := func(id string) *Stream {
		st := s.streams[id]
		if st == nil {
			st = &Stream{emojis: all}
			s.streams[id] = st
		}
		return st
	}
	for id, set := range m.Settings {
		st := get(id)
		st.Closed, st.CommentsOff = set.Closed, set.CommentsOff
		st.CommentBudget = set.CommentBudget
		st.SlowMode = time.Duration(set.SlowModeS) * time.Second
		if len(set.Emojis) > 0 {
			st.emojis = 0
			for _, e := range set.Emojis {
				// An id this node's set lacks allows nothing here.
				if i, ok := emojis.IndexString(e); ok {
					st.emojis |= 1 << uint(i)
				}
			}
		}
	}
	for _, b := range m.Bans {
		st := get(b.Stream)
		if st.bans == nil {
			st.bans = make(map[string]int64)
		}
		st.bans[b.User] = b.Until.UnixMilli()
	}
	return s
}

package store

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/clock"
)

// MemoryOptions configures a Memory store. The zero value works.
type MemoryOptions struct {
	// Registerer takes the store's metrics. Default: nil, registered
	// nowhere (tests); emojicast passes prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
	// Clock decides what is sealed. Default: the system clock.
	Clock clock.Clock
	// SealDelay is how long after a second ends it is sealed.
	// Default: DefaultSealDelay.
	SealDelay time.Duration
	// Retention is how many seconds of counts are kept. Default: 2 * Window.
	Retention int64
	// MaxStreams bounds the streams held, for counts and for control
	// figures each; past it the streams written longest ago are dropped and
	// counted. Default: 100,000.
	MaxStreams int
	// MaxComments bounds the comments a second of a stream holds.
	// Default: DefaultMaxComments.
	MaxComments int
	// History is how long sealed seconds are kept for History.
	// Default: DefaultHistory.
	History time.Duration
	// HistoryBytes bounds the memory history takes, estimated from the
	// seconds' contents; past it the oldest seconds are dropped (and
	// counted) before their time. Negative keeps no history.
	// Default: DefaultHistoryBytes.
	HistoryBytes int64
}

func (o *MemoryOptions) fillDefaults() {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.SealDelay <= 0 {
		o.SealDelay = DefaultSealDelay
	}
	if o.Retention <= 0 {
		o.Retention = 2 * Window
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = 100_000
	}
	if o.MaxComments <= 0 {
		o.MaxComments = DefaultMaxComments
	}
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.HistoryBytes == 0 {
		o.HistoryBytes = DefaultHistoryBytes
	}
}

// Memory is a Store in process memory: the embedded default of a single
// process deployment.
type Memory struct {
	opts      MemoryOptions
	metrics   *metrics
	mu        sync.Mutex
	streams   map[string]*memStream
	batches   map[string]time.Time // IDs of added batches, for DedupeWindow
	lastSweep int64
	history   memHistory

	control           map[string]*memAudience
	lastAudienceSweep int64

	commentLoad   map[string]map[string]nodeLoad // stream -> node -> report
	pushNodes     map[string]time.Time           // push node -> last report
	lastLoadSweep int64

	moderation memModeration
}

type memStream struct {
	seconds map[int64]*memSecond
	newest  int64 // newest second written, for eviction
}

type memSecond struct {
	counts    map[string]int64
	comments  []Comment
	retracted []string
}

// NewMemory returns an empty Memory store.
func NewMemory(opts MemoryOptions) *Memory {
	opts.fillDefaults()
	return &Memory{
		opts:        opts,
		metrics:     newMetrics(opts.Registerer),
		streams:     make(map[string]*memStream),
		batches:     make(map[string]time.Time),
		control:     make(map[string]*memAudience),
		commentLoad: make(map[string]map[string]nodeLoad),
		pushNodes:   make(map[string]time.Time),
		history:     memHistory{streams: make(map[string]*histStream)},
		moderation: memModeration{
			settings: make(map[string]Settings),
			bans:     make(map[banKey]time.Time),
			top:      make(map[string]memTop),
		},
	}
}

// Add implements Store.
func (m *Memory) Add(_ context.Context, batch Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Clock.Now()
	horizon := Horizon(now, m.opts.SealDelay)
	m.sweep(horizon)
	if _, dup := m.batches[batch.ID]; dup {
		return nil
	}
	m.batches[batch.ID] = now
	for _, d := range batch.Deltas {
		sec := m.open(d.Second, horizon)
		if sec != d.Second {
			m.metrics.lateCarried.Add(float64(d.Count))
		}
		ms := m.second(d.Stream, sec)
		if ms.counts == nil {
			ms.counts = make(map[string]int64, 4)
		}
		ms.counts[d.Emoji] += d.Count
	}
	for _, c := range batch.Comments {
		sec := m.open(c.Second, horizon)
		ms := m.roomFor(c.Stream, sec, max(sec, horizon+1+MaxCommentSpill))
		if ms == nil {
			m.metrics.commentsDropped.Inc()
			continue
		}
		if sec != c.Second {
			m.metrics.lateCommentsCarried.Inc()
		}
		ms.comments = append(ms.comments, c.Comment)
	}
	for _, r := range batch.Retractions {
		ms := m.second(r.Stream, m.open(r.Second, horizon))
		if len(ms.comments)+len(ms.retracted) >= m.opts.MaxComments+MaxRetractions {
			m.metrics.retractionsDropped.Inc()
			continue
		}
		ms.retracted = append(ms.retracted, r.ID)
	}
	return nil
}

// open returns sec, or the oldest unsealed second if sec is sealed.
func (m *Memory) open(sec, horizon int64) int64 {
	if sec <= horizon {
		return horizon + 1
	}
	return sec
}

// roomFor returns the first second of a stream from sec through last
// that holds fewer than MaxComments comments (retractions count too), or
// nil if none does: a comment that finds its second full was accepted, so
// it goes on into the next rather than being lost.
func (m *Memory) roomFor(stream string, sec, last int64) *memSecond {
	for ; sec <= last; sec++ {
		if ms := m.second(stream, sec); len(ms.comments)+len(ms.retracted) < m.opts.MaxComments {
			return ms
		}
	}
	return nil
}

// second returns a second of a stream to write to, creating both if needed.
func (m *Memory) second(stream string, sec int64) *memSecond {
	st := m.streams[stream]
	if st == nil {
		if len(m.streams) >= m.opts.MaxStreams {
			m.evictOldest()
		}
		st = &memStream{seconds: make(map[int64]*memSecond)}
		m.streams[stream] = st
	}
	ms := st.seconds[sec]
	if ms == nil {
		ms = &memSecond{}
		st.seconds[sec] = ms
	}
	st.newest = max(st.newest, sec)
	return ms
}

// Horizon implements Store.
func (m *Memory) Horizon(context.Context) (int64, error) {
	return Horizon(m.opts.Clock.Now(), m.opts.SealDelay), nil
}

// Collect implements Store.
func (m *Memory) Collect(_ context.Context, cursors []Cursor) (Collection, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	horizon := Horizon(m.opts.Clock.Now(), m.opts.SealDelay)
	m.sweep(horizon)
	c := Collection{Horizon: horizon}
	for _, cur := range cursors {
		st := m.streams[cur.Stream]
		if st == nil {
			continue
		}
		for sec := max(cur.After, horizon-Window) + 1; sec <= horizon; sec++ {
			ms := st.seconds[sec]
			if ms == nil || len(ms.counts) == 0 && len(ms.comments) == 0 && len(ms.retracted) == 0 {
				continue
			}
			s := Second{Stream: cur.Stream, Second: sec, Counts: make([]Count, 0, len(ms.counts))}
			for e, n := range ms.counts {
				s.Counts = append(s.Counts, Count{Emoji: e, N: n})
			}
			s.Comments = slices.Clone(ms.comments)
			s.Retracted = slices.Clone(ms.retracted)
			c.Seconds = append(c.Seconds, s)
		}
	}
	return c, nil
}

// sweep archives newly sealed seconds into the history and drops seconds
// older than the retention, at most once a second, the way keys with a TTL
// expire in Redis.
func (m *Memory) sweep(horizon int64) {
	if horizon == m.lastSweep {
		return
	}
	m.lastSweep = horizon
	m.archive(horizon)
	for id, added := range m.batches {
		if m.opts.Clock.Now().Sub(added) > DedupeWindow {
			delete(m.batches, id)
		}
	}
	oldest := horizon - m.opts.Retention
	for id, st := range m.streams {
		for sec := range st.seconds {
			if sec < oldest {
				delete(st.seconds, sec)
			}
		}
		if len(st.seconds) == 0 {
			delete(m.streams, id)
		}
	}
}

// evictOldest drops the eighth of the streams written longest ago, so a
// flood of new streams costs amortized O(log n) per stream.
func (m *Memory) evictOldest() {
	type aged struct {
		id     string
		newest int64
	}
	all := make([]aged, 0, len(m.streams))
	for id, st := range m.streams {
		all = append(all, aged{id, st.newest})
	}
	slices.SortFunc(all, func(a, b aged) int { return cmp.Compare(a.newest, b.newest) })
	for _, a := range all[:max(1, len(all)/8)] {
		delete(m.streams, a.id)
		m.metrics.evictedStreams.Inc()
	}
}

// Close implements Store.
func (m *Memory) Close() error { return nil }

package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
)

// DefaultHistoryBytes bounds the memory the Memory store spends on history
// by default.
const DefaultHistoryBytes = 256 << 20

// memHistory holds the sealed seconds of every stream for the history
// duration, in at most a byte budget. Archived seconds never change, so
// they are kept as the Second values History returns, shared.
type memHistory struct {
	streams map[string]*histStream
	// queue holds every archived second in the order it was archived,
	// which is the order of seconds: the oldest is evicted first, for age
	// or for the budget, and is also the oldest of its stream.
	queue    []histEntry
	head     int
	bytes    int64
	archived int64 // every second up to this one is archived; 0 before the first sweep
	// retracted holds, per stream, the comments taken down, which History
	// leaves out (see history_retractions.go).
	retracted map[string]*histRetractions
}

// histRetractions are the comment ids retracted in one stream, oldest
// first, at most MaxHistoryRetractions.
type histRetractions struct {
	at    map[string]int64 // id -> Unix second of its retraction
	order []string
}

// maxRetractedStreams bounds the streams whose retractions the memory
// history remembers: past it, the stream retracted in longest ago is
// forgotten.
const maxRetractedStreams = MaxModeratedStreams

// retractInHistory remembers that a comment of stream was taken down at now (Unix
// seconds). The store's lock is held.
func (m *Memory) retractInHistory(stream, id string, now int64) {
	h := &m.history
	if m.opts.HistoryBytes < 0 {
		return
	}
	if h.retracted == nil {
		h.retracted = make(map[string]*histRetractions)
	}
	hr := h.retracted[stream]
	if hr == nil {
		if len(h.retracted) >= maxRetractedStreams {
			h.forgetStalestRetractions()
		}
		hr = &histRetractions{at: make(map[string]int64)}
		h.retracted[stream] = hr
	}
	if _, ok := hr.at[id]; ok {
		return
	}
	hr.at[id] = now
	hr.order = append(hr.order, id)
	if len(hr.order) > MaxHistoryRetractions {
		delete(hr.at, hr.order[0])
		hr.order[0] = ""
		hr.order = hr.order[1:]
	}
}

// forgetStalestRetractions drops the stream whose newest retraction is
// oldest.
func (h *memHistory) forgetStalestRetractions() {
	stalest, at := "", int64(0)
	for id, hr := range h.retracted {
		if last := hr.at[hr.order[len(hr.order)-1]]; stalest == "" || last < at {
			stalest, at = id, last
		}
	}
	delete(h.retracted, stalest)
}

// expireRetractions drops the retractions older than oldest (Unix
// seconds): their comments have left the history too.
func (h *memHistory) expireRetractions(oldest int64) {
	for stream, hr := range h.retracted {
		for len(hr.order) > 0 && hr.at[hr.order[0]] < oldest {
			delete(hr.at, hr.order[0])
			hr.order[0] = ""
			hr.order = hr.order[1:]
		}
		if len(hr.order) == 0 {
			delete(h.retracted, stream)
		}
	}
}

type histStream struct {
	id   string
	secs []Second // oldest first
}

type histEntry struct {
	hs     *histStream
	second int64
	bytes  int64
}

// histStreamBytes and histSecondBytes estimate the memory of a stream's
// history and of one of its seconds besides the strings it holds: map
// entry, struct, slice headers and queue entry.
const (
	histStreamBytes = 96
	histSecondBytes = 120
)

func secondBytes(s Second) int64 {
	n := int64(histSecondBytes)
	for _, c := range s.Counts {
		n += int64(len(c.Emoji)) + 24
	}
	for _, c := range s.Comments {
		n += int64(len(c.User)+len(c.Text)) + 32
	}
	return n
}

// archive moves the seconds in (h.archived, horizon] of the streams into
// the history, then drops the history's seconds older than oldest and,
// oldest first, those past the budget. The store's lock is held.
func (m *Memory) archive(horizon int64) {
	h := &m.history
	if m.opts.HistoryBytes < 0 {
		return
	}
	from := h.archived
	var fresh []histEntry
	for id, st := range m.streams {
		var secs []int64
		for sec, ms := range st.seconds {
			if sec > from && sec <= horizon && (len(ms.counts) > 0 || len(ms.comments) > 0) {
				secs = append(secs, sec)
			}
		}
		if len(secs) == 0 {
			continue
		}
		slices.Sort(secs)
		hs := h.streams[id]
		if hs == nil {
			hs = &histStream{id: id}
			h.streams[id] = hs
			h.bytes += histStreamBytes + int64(len(id))
		}
		for _, sec := range secs {
			ms := st.seconds[sec]
			s := Second{Stream: id, Second: sec, Counts: make([]Count, 0, len(ms.counts)), Comments: slices.Clone(ms.comments)}
			for e, n := range ms.counts {
				if e != SampledTaps { // push's own tally, no reaction
					s.Counts = append(s.Counts, Count{Emoji: e, N: n})
				}
			}
			slices.SortFunc(s.Counts, func(a, b Count) int { return cmp.Compare(a.Emoji, b.Emoji) })
			hs.secs = append(hs.secs, s)
			fresh = append(fresh, histEntry{hs: hs, second: sec, bytes: secondBytes(s)})
		}
	}
	slices.SortStableFunc(fresh, func(a, b histEntry) int { return cmp.Compare(a.second, b.second) })
	for _, e := range fresh {
		h.bytes += e.bytes
	}
	h.queue = append(h.queue, fresh...)
	h.archived = horizon
	oldest := horizon - int64(m.opts.History.Seconds())
	h.expireRetractions(oldest)
	for h.head < len(h.queue) {
		e := h.queue[h.head]
		if e.second >= oldest && h.bytes <= m.opts.HistoryBytes {
			break
		}
		if e.second >= oldest {
			m.metrics.historyEvicted.Inc()
		}
		h.queue[h.head] = histEntry{}
		h.head++
		h.bytes -= e.bytes
		e.hs.secs[0] = Second{}
		e.hs.secs = e.hs.secs[1:]
		if len(e.hs.secs) == 0 {
			delete(h.streams, e.hs.id)
			h.bytes -= histStreamBytes + int64(len(e.hs.id))
		}
	}
	// Compact the queue once its dead front is as long as the live rest.
	if h.head > 1024 && h.head*2 > len(h.queue) {
		h.queue = append(h.queue[:0], h.queue[h.head:]...)
		h.head = 0
	}
}

// History implements Store.
func (m *Memory) History(_ context.Context, stream string, from, to int64) (History, error) {
	if to-from+1 > MaxHistoryRange {
		return History{}, fmt.Errorf("history range [%d, %d] is longer than %d s", from, to, MaxHistoryRange)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	horizon := Horizon(m.opts.Clock.Now(), m.opts.SealDelay)
	m.sweep(horizon)
	hist := History{Horizon: horizon}
	hs := m.history.streams[stream]
	if hs == nil {
		return hist, nil
	}
	to = min(to, horizon)
	i := sort.Search(len(hs.secs), func(i int) bool { return hs.secs[i].Second >= from })
	j := sort.Search(len(hs.secs), func(i int) bool { return hs.secs[i].Second > to })
	if i < j {
		hist.Seconds = slices.Clone(hs.secs[i:j])
	}
	if hr := m.history.retracted[stream]; hr != nil {
		hist.Seconds = withoutRetracted(hist.Seconds, func(id string) bool { _, ok := hr.at[id]; return ok })
	}
	return hist, nil
}

package push

import (
	"errors"
	"hash/maphash"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/emojicast/emojicast/emoji"
	"github.com/emojicast/emojicast/store"
)

// errTooManyStreams is returned by add when the aggregator holds its maximum
// number of streams; the caller answers 503 so nothing accepted is dropped.
var errTooManyStreams = errors.New("push: too many active streams")

const aggShards = 64

// aggregator sums accepted taps per stream, second and emoji between
// flushes. A tap costs a map lookup under a read lock and an atomic add; the
// flusher drains the sums without stopping tappers.
//
// Each stream has a current second. Tappers add to it; the first tapper of a
// new second retires it and installs a fresh one. The flusher drains the
// current second in place (atomic swaps to zero) and retires seconds only
// after sealing them: sealing makes new tappers move on, and the flusher
// waits for tappers already inside to leave before its final drain, so no
// add lands in a second that is gone.
type aggregator struct {
	seed       maphash.Seed
	maxStreams int64
	streams    atomic.Int64
	shards     [aggShards]aggShard
}

type aggShard struct {
	mu sync.RWMutex
	m  map[string]*streamSums
	_  [32]byte // keep neighbouring shards' locks off one cache line
}

type streamSums struct {
	id  string
	cur atomic.Pointer[secondSums]

	mu      sync.Mutex // guards retired and dead, and serializes rotation
	retired []*secondSums
	dead    bool // evicted: tappers must look the stream up again
}

// sealed is added to a secondSums' writer count to seal it: enter sees a
// negative count and refuses.
const sealed = -1 << 40

type secondSums struct {
	second  int64
	writers atomic.Int64
	counts  [emoji.Max]atomic.Int64
	sampled atomic.Int64 // store.SampledTaps: weighted taps of sends that stated a sample
}

func (s *secondSums) enter() bool {
	if s.writers.Add(1) < 0 {
		s.writers.Add(-1)
		return false
	}
	return true
}

func (s *secondSums) leave() { s.writers.Add(-1) }

// seal stops new adds and waits for the adds under way to finish.
func (s *secondSums) seal() {
	s.writers.Add(sealed)
	for s.writers.Load() != sealed {
		runtime.Gosched()
	}
}

// drain moves the sums into deltas, leaving zeros.
func (s *secondSums) drain(stream string, emojis *emoji.Set, deltas []store.Delta) []store.Delta {
	for i := range emojis.Len() {
		if n := s.counts[i].Swap(0); n != 0 {
			deltas = append(deltas, store.Delta{Stream: stream, Second: s.second, Emoji: emojis.At(i).ID, Count: n})
		}
	}
	if n := s.sampled.Swap(0); n != 0 {
		deltas = append(deltas, store.Delta{Stream: stream, Second: s.second, Emoji: store.SampledTaps, Count: n})
	}
	return deltas
}

func newAggregator(maxStreams int) *aggregator {
	a := &aggregator{seed: maphash.MakeSeed(), maxStreams: int64(maxStreams)}
	for i := range a.shards {
		a.shards[i].m = make(map[string]*streamSums)
	}
	return a
}

// add counts n taps of emoji index e on stream in second sec, sampled of
// them (0 or n) from a send that stated a sample.
func (a *aggregator) add(stream []byte, sec int64, e int, n, sampled int64) error {
	for {
		st, err := a.lookup(stream, sec)
		if err != nil {
			return err
		}
		if st.add(sec, e, n, sampled) {
			return nil
		}
	}
}

func (a *aggregator) lookup(stream []byte, sec int64) (*streamSums, error) {
	sh := &a.shards[maphash.Bytes(a.seed, stream)%aggShards]
	sh.mu.RLock()
	st := sh.m[string(stream)]
	sh.mu.RUnlock()
	if st != nil {
		return st, nil
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if st = sh.m[string(stream)]; st != nil {
		return st, nil
	}
	if a.streams.Load() >= a.maxStreams {
		return nil, errTooManyStreams
	}
	st = &streamSums{id: string(stream)}
	st.cur.Store(&secondSums{second: sec})
	sh.m[st.id] = st
	a.streams.Add(1)
	return st, nil
}

// add reports false if the stream was evicted and must be looked up again.
func (st *streamSums) add(sec int64, e int, n, sampled int64) bool {
	for {
		cur := st.cur.Load()
		if cur.second < sec {
			if !st.rotate(sec) {
				return false
			}
			continue
		}
		// A tapper that read the clock just before a rotation lands in the
		// newer second: off by a moment, never lost.
		if cur.enter() {
			cur.counts[e].Add(n)
			if sampled != 0 {
				cur.sampled.Add(sampled)
			}
			cur.leave()
			return true
		}
		st.mu.Lock()
		dead := st.dead
		st.mu.Unlock()
		if dead {
			return false
		}
	}
}

func (st *streamSums) rotate(sec int64) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.dead {
		return false
	}
	if old := st.cur.Load(); old.second < sec {
		st.cur.Store(&secondSums{second: sec})
		st.retired = append(st.retired, old)
	}
	return true
}

// drain appends every stream's sums as deltas and evicts streams whose
// current second is older than idleBefore and that had nothing to drain.
func (a *aggregator) drain(deltas []store.Delta, emojis *emoji.Set, idleBefore int64) []store.Delta {
	var sums []*streamSums
	for i := range a.shards {
		sh := &a.shards[i]
		sums = sums[:0]
		sh.mu.RLock()
		for _, st := range sh.m {
			sums = append(sums, st)
		}
		sh.mu.RUnlock()
		for _, st := range sums {
			before := len(deltas)
			deltas = st.drain(deltas, emojis)
			if len(deltas) == before && st.cur.Load().second < idleBefore {
				deltas = a.evict(sh, st, deltas, emojis)
			}
		}
	}
	return deltas
}

func (st *streamSums) drain(deltas []store.Delta, emojis *emoji.Set) []store.Delta {
	st.mu.Lock()
	retired := st.retired
	st.retired = nil
	st.mu.Unlock()
	for _, old := range retired {
		old.seal()
		deltas = old.drain(st.id, emojis, deltas)
	}
	return st.cur.Load().drain(st.id, emojis, deltas)
}

// evict removes an idle stream. Its last second is sealed and drained, so a
// tapper racing with the eviction either counts before the seal or finds
// the stream dead and starts a new one.
func (a *aggregator) evict(sh *aggShard, st *streamSums, deltas []store.Delta, emojis *emoji.Set) []store.Delta {
	sh.mu.Lock()
	st.mu.Lock()
	if st.dead {
		// Another drain evicted it since this one listed the shard:
		// sealing its second again would wait forever.
		st.mu.Unlock()
		sh.mu.Unlock()
		return deltas
	}
	st.dead = true
	delete(sh.m, st.id)
	retired := st.retired
	st.retired = nil
	st.mu.Unlock()
	sh.mu.Unlock()
	a.streams.Add(-1)
	cur := st.cur.Load()
	cur.seal()
	for _, old := range retired {
		old.seal()
		deltas = old.drain(st.id, emojis, deltas)
	}
	return cur.drain(st.id, emojis, deltas)
}

// len returns the number of streams held.
func (a *aggregator) len() int { return int(a.streams.Load()) }

// Package ratelimit is a per-key token bucket with a hard bound on the keys it
// remembers, for limits keyed by client input (users, client addresses).
//
// Each key costs one int64: its bucket is kept as the generic cell rate
// algorithm's theoretical arrival time (TAT), the moment at which the bucket
// will be full again. A key whose TAT has passed holds a full bucket and is
// the same as an absent one, so it can be forgotten at no cost; that is how
// the limiter stays within its bound. When every remembered key is still
// refilling, the limiter forgets some of them anyway and counts it: a
// forgotten key gets a full bucket back, which errs toward letting clients
// through rather than growing without bound.
package ratelimit

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

const shardCount = 64

// Limiter limits the rate of events per key. It is safe for concurrent use.
type Limiter struct {
	interval  int64 // nanoseconds per token
	tolerance int64 // nanoseconds of burst: burst * interval
	perShard  int
	seed      maphash.Seed
	shards    [shardCount]shard
	evicted   atomic.Uint64
}

type shard struct {
	mu  sync.Mutex
	tat map[string]*int64 // a pointer so a known key updates without a map write
	_   [40]byte          // keep neighbouring shards' locks off one cache line
}

// New returns a Limiter that allows rate events per second per key with
// bursts of up to burst events, remembering at most maxKeys keys.
func New(rate float64, burst, maxKeys int) *Limiter {
	if rate <= 0 || burst < 1 || maxKeys < 1 {
		panic("BUG: ratelimit.New needs a positive rate, burst and maxKeys")
	}
	interval := int64(float64(time.Second) / rate)
	l := &Limiter{
		interval:  interval,
		tolerance: int64(burst) * interval,
		perShard:  max(1, maxKeys/shardCount),
		seed:      maphash.MakeSeed(),
	}
	for i := range l.shards {
		l.shards[i].tat = make(map[string]*int64)
	}
	return l
}

// Allow takes n events for key at time now (Unix nanoseconds). It returns 0
// when they are allowed, or how long the caller must wait before n events
// would be. An n larger than the burst is never allowed. Allow does not
// allocate unless it remembers a new key.
func (l *Limiter) Allow(key []byte, n int, now int64) (wait time.Duration) {
	s := &l.shards[maphash.Bytes(l.seed, key)%shardCount]
	s.mu.Lock()
	defer s.mu.Unlock()
	cell := s.tat[string(key)]
	tat := now
	if cell != nil && *cell > now {
		tat = *cell
	}
	next := tat + int64(n)*l.interval
	if over := next - now - l.tolerance; over > 0 {
		return time.Duration(over)
	}
	if cell == nil {
		if len(s.tat) >= l.perShard {
			l.makeRoom(s, now)
		}
		cell = new(int64)
		s.tat[string(key)] = cell
	}
	*cell = next
	return 0
}

// makeRoom forgets keys with full buckets; if that frees less than an eighth
// of the shard, it forgets arbitrary keys too, so that a flood of new keys
// costs amortized O(1) per key instead of a sweep per key.
func (l *Limiter) makeRoom(s *shard, now int64) {
	for k, tat := range s.tat {
		if *tat <= now {
			delete(s.tat, k)
		}
	}
	target := l.perShard - l.perShard/8 - 1
	for k := range s.tat {
		if len(s.tat) <= target {
			break
		}
		delete(s.tat, k)
		l.evicted.Add(1)
	}
}

// Len returns the number of keys the limiter remembers.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}

// Evicted returns how many keys were forgotten while their buckets were
// still refilling.
func (l *Limiter) Evicted() uint64 { return l.evicted.Load() }

// MaxKeys returns the bound on remembered keys.
func (l *Limiter) MaxKeys() int { return l.perShard * shardCount }

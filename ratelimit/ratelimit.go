// Package ratelimit is a per-key token bucket with a hard bound on the keys it
// remembers, for limits keyed by client input (users, client addresses).
//
// Each key costs a small cell: its bucket is kept as the generic cell rate
// algorithm's theoretical arrival time (TAT), the moment at which the bucket
// will be full again. A key whose TAT has passed holds a full bucket and is
// the same as an absent one, so it can be forgotten at no cost; that is how
// the limiter stays within its bound. When every remembered key is still
// refilling, the limiter forgets some of them anyway and counts it: a
// forgotten key gets a full bucket back, which errs toward letting clients
// through rather than growing without bound.
//
// A limiter can be shared by processes (see NewShared): each remembers what
// each key used since the last exchange, hands it over (Usage) once the key
// comes near its limit, and takes back the fleet's TAT (Merge).
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
	shared    bool // keys record what they used, for Usage
	shards    [shardCount]shard
	evicted   atomic.Uint64
}

type shard struct {
	mu    sync.Mutex
	tat   map[string]*cell // a pointer so a known key updates without a map write
	dirty []string         // keys that took events since the last Usage, when shared
	_     [16]byte         // keep neighbouring shards' locks off one cache line
}

// cell is one key's state: its TAT, and when the limiter is shared, what
// it used that the fleet has not heard of yet.
type cell struct {
	tat int64
	// used is the nanoseconds of allowance the key took since it was last
	// handed over, or since its share was last paid back (see share),
	// from since on (Unix nanoseconds).
	used  int64
	since int64
	// share is the TAT of used at a KeptShare-th of the rate: while it
	// has not passed, used is what the key kept on this node lately; once
	// it has, used was paid back at that rate and is forgiven. It bounds
	// what a node keeps from the fleet over any window, not only per round.
	share  int64
	listed bool // in its shard's dirty list
}

// KeptShare is the part of a shared key's limit a node keeps from the
// fleet: a key whose use since it was last handed over, and whose debt,
// each stay within 1/KeptShare of its tolerance costs the fleet no
// exchange. Over any time T a client spreading its sends over N processes
// gets at most rate*T + burst and N times (rate*T + burst)/KeptShare more
// (plus what the exchange interval lets through); a client tapping far
// below its limit is never exchanged. Most viewers are such clients.
const KeptShare = 4

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
		l.shards[i].tat = make(map[string]*cell)
	}
	return l
}

// NewShared returns a Limiter like New whose keys record what they use, so
// that Usage and Merge can share it with other processes.
func NewShared(rate float64, burst, maxKeys int) *Limiter {
	l := New(rate, burst, maxKeys)
	l.shared = true
	return l
}

// Allow takes n events for key at time now (Unix nanoseconds). It returns 0
// when they are allowed, or how long the caller must wait before n events
// would be. An n larger than the burst is never allowed. Allow does not
// allocate unless it remembers a new key.
func (l *Limiter) Allow(key []byte, n int, now int64) (wait time.Duration) {
	return l.take(key, int64(n)*l.interval, l.tolerance, now)
}

// AllowDebt is Allow for events that arrive in rare heavy lumps, such as
// sampled taps each standing for many: n events are allowed when, after
// them, the key owes at most max(burst, 2n) events, so a key may go into
// debt by up to its own lump and then waits it out. Over any time T a key
// still gets at most rate*T + max(burst, 2n) events.
func (l *Limiter) AllowDebt(key []byte, n int64, now int64) (wait time.Duration) {
	return l.take(key, n*l.interval, max(l.tolerance, 2*n*l.interval), now)
}

// AllowPer takes one event for key at time now (Unix nanoseconds) from an
// allowance of n events per window, refilled evenly over the window; the
// window may change from call to call, and the Limiter's own rate and
// burst are not used. It reports whether the event is allowed and does not
// allocate unless it remembers a new key.
func (l *Limiter) AllowPer(key []byte, n int, window time.Duration, now int64) bool {
	return l.take(key, int64(window)/int64(max(n, 1)), int64(window), now) == 0
}

// take is the generic cell rate algorithm: an event costing cost
// nanoseconds is allowed while the bucket's theoretical arrival time stays
// within tolerance of now.
func (l *Limiter) take(key []byte, cost, tolerance, now int64) time.Duration {
	s := &l.shards[maphash.Bytes(l.seed, key)%shardCount]
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.tat[string(key)]
	tat := now
	if c != nil && c.tat > now {
		tat = c.tat
	}
	next := tat + cost
	if over := next - now - tolerance; over > 0 {
		return time.Duration(over)
	}
	if c == nil {
		if len(s.tat) >= l.perShard {
			l.makeRoom(s, now)
		}
		c = new(cell)
		s.tat[string(key)] = c
	}
	c.tat = next
	if l.shared {
		l.record(s, c, key, cost, now)
	}
	return 0
}

// record adds cost to what c used and lists it for the next Usage.
func (l *Limiter) record(s *shard, c *cell, key []byte, cost, now int64) {
	if l.forgivable(c, now) {
		// What the key kept was paid back at a KeptShare-th of the rate:
		// forgiving it keeps the bound (the share's bucket is full again,
		// the same as a fresh one) and spares a quiet key's lumps from
		// adding up to a hand-over. Use past the share waits for Usage.
		c.used, c.share = 0, now
	}
	if c.used == 0 {
		c.since = now
	}
	c.used += cost
	c.share += KeptShare * cost
	if !c.listed {
		c.listed = true
		s.dirty = append(s.dirty, string(key))
	}
}

// forgivable reports whether what c kept from the fleet was paid back at a
// KeptShare-th of the rate and never crossed the share: the fleet need
// not hear of it.
func (l *Limiter) forgivable(c *cell, now int64) bool {
	return c.share <= now && KeptShare*c.used <= l.tolerance
}

// Use is what a key of a shared limiter used that the fleet has not heard
// of yet, for Usage.
type Use struct {
	Used  int64 // nanoseconds of allowance taken (events times the interval)
	Since int64 // Unix nanoseconds from which Used was taken
}

// Usage calls fn for every key that took events since the last call and
// is near its limit, with all it took since it was last handed over, and
// starts counting that key afresh. A key is near its limit when, at now
// (Unix nanoseconds), what it used since it was last handed over or its
// debt is more than 1/KeptShare of its tolerance; other keys stay on this
// process (see KeptShare) and are handed over whole once they cross.
func (l *Limiter) Usage(now int64, fn func(key string, u Use)) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for _, k := range s.dirty {
			c := s.tat[k]
			if c == nil {
				continue
			}
			c.listed = false
			if c.used == 0 || KeptShare*max(c.used, c.tat-now) <= l.tolerance {
				continue
			}
			fn(k, Use{Used: c.used, Since: c.since})
			c.used, c.share = 0, now
		}
		// Keep the list's memory for the next round unless a flood grew it.
		if cap(s.dirty) > maxKeptDirty {
			s.dirty = nil
		} else {
			clear(s.dirty)
			s.dirty = s.dirty[:0]
		}
		s.mu.Unlock()
	}
}

// maxKeptDirty bounds the dirty list a shard keeps between rounds.
const maxKeptDirty = 1024

// Merge raises key's TAT (Unix nanoseconds) to tat, the fleet's: what
// other processes let the key use counts here too. An unknown key is
// remembered only if its bucket is not full at now.
func (l *Limiter) Merge(key string, tat, now int64) {
	if tat <= now {
		return
	}
	s := &l.shards[maphash.String(l.seed, key)%shardCount]
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.tat[key]
	if c == nil {
		if len(s.tat) >= l.perShard {
			l.makeRoom(s, now)
		}
		c = new(cell)
		s.tat[key] = c
	}
	c.tat = max(c.tat, tat)
}

// Forget forgets key, as if its bucket were full: for a caller that took an
// event and then could not use it.
func (l *Limiter) Forget(key []byte) {
	s := &l.shards[maphash.Bytes(l.seed, key)%shardCount]
	s.mu.Lock()
	delete(s.tat, string(key))
	s.mu.Unlock()
}

// makeRoom forgets keys with full buckets; if that frees less than an eighth
// of the shard, it forgets arbitrary keys too, so that a flood of new keys
// costs amortized O(1) per key instead of a sweep per key.
func (l *Limiter) makeRoom(s *shard, now int64) {
	for k, c := range s.tat {
		// A full bucket whose kept use was paid back is the same as none.
		if c.tat <= now && l.forgivable(c, now) {
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

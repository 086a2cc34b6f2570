package pull

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/compress"
	"github.com/emojicast/emojicast/ringbuffer"
)

// Every cursor maps to one of bodySlots bodies per stream and second: one
// per distance 0..60 from now, and one for cursors older than the window
// (the gap body). The slots up to wholeSlots are the bodies of viewers who
// keep up and of polls without a cursor, shared by nearly every poll: they are compressed whole, for the
// fewest bytes, and cached. The others, a viewer catching up or a client
// asking for every cursor there is, are assembled from pieces per request.
const (
	bodySlots  = ringbuffer.Size + 2
	gapSlot    = bodySlots - 1
	wholeSlots = defaultBack // and polls without a cursor
)

// bucket is one published second of a stream, already encoded as the JSON
// object the poll body lists.
type bucket struct {
	json   [formats][]byte // in each body format
	total  int64           // reactions in the second, for the control rules
	tag    [formats]uint64 // FNV-1a of json: the bucket's part of an ETag
	pieces *[formats]bucketPieces
}

// advice is what the server tells a stream's viewers besides the buckets.
// The syncer replaces it once per second; bodies are built from one value.
type advice struct {
	nextMS  int64
	divisor int64 // sample = 1/divisor
	viewers int64
}

// stream is what a pull node keeps for one stream its viewers poll.
type stream struct {
	id     string
	ring   ringbuffer.Ring[bucket]
	bodies [formats]*compress.Cache
	advice atomic.Pointer[advice]
	head   [formats]atomic.Pointer[bodyHead] // the newest second's body heads

	lastSeen atomic.Int64 // Unix second of the last poll or watch
	presence presence     // viewers arriving and due to leave, for the estimate

	audience streamAudience // owned by the syncer goroutine
}

func newStream(id string, ctl *advice, now int64) *stream {
	st := &stream{id: id}
	for f := range st.bodies {
		st.bodies[f] = compress.NewCache(wholeSlots + 2)
	}
	st.advice.Store(ctl)
	st.lastSeen.Store(now)
	return st
}

// synced reports whether the syncer has filled the stream's ring at least
// once; before that the node does not know what the stream holds.
func (st *stream) synced() bool { return st.ring.Tail() != 0 }

const registryShards = 64

// registry is the bounded set of streams a pull node serves.
type registry struct {
	seed    maphash.Seed
	max     int64
	evicted prometheus.Counter
	count   atomic.Int64
	// lastEvict is the Unix second of the last evictStale scan.
	lastEvict atomic.Int64
	shard     [registryShards]struct {
		mu sync.RWMutex
		m  map[string]*stream
		_  [32]byte
	}
}

func newRegistry(max int, evicted prometheus.Counter) *registry {
	r := &registry{seed: maphash.MakeSeed(), max: int64(max), evicted: evicted}
	for i := range r.shard {
		r.shard[i].m = make(map[string]*stream)
	}
	return r
}

// has reports whether the registry holds the stream.
func (r *registry) has(id []byte) bool {
	sh := &r.shard[maphash.Bytes(r.seed, id)%registryShards]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.m[string(id)] != nil
}

// get returns the stream with the given id, creating it with ctl if it is
// new and there is room; nil if it is new and the registry is full.
func (r *registry) get(id []byte, ctl *advice, now int64) *stream {
	sh := &r.shard[maphash.Bytes(r.seed, id)%registryShards]
	sh.mu.RLock()
	st := sh.m[string(id)]
	sh.mu.RUnlock()
	if st != nil {
		return st
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if st = sh.m[string(id)]; st != nil {
		return st
	}
	if r.count.Load() >= r.max {
		sh.mu.Unlock()
		r.evictStale(now)
		sh.mu.Lock()
		if st = sh.m[string(id)]; st != nil {
			return st
		}
		if r.count.Load() >= r.max {
			return nil
		}
	}
	st = newStream(string(id), ctl, now)
	sh.m[st.id] = st
	r.count.Add(1)
	return st
}

// evictStale makes room in a full registry, at most once a second: it
// removes the streams nobody polled for twice their poll interval and 2 s
// more, which have no viewers left. Without it, streams opened once and
// abandoned (random ids, a flood) would lock new streams out until the
// syncer drops them as idle, a minute later.
func (r *registry) evictStale(now int64) {
	if r.lastEvict.Swap(now) == now {
		return
	}
	n := 0
	for i := range r.shard {
		sh := &r.shard[i]
		sh.mu.Lock()
		for id, st := range sh.m {
			if st.lastSeen.Load() < now-2*st.advice.Load().nextMS/1000-2 {
				delete(sh.m, id)
				n++
			}
		}
		sh.mu.Unlock()
	}
	r.count.Add(int64(-n))
	r.evicted.Add(float64(n))
}

// snapshot appends every stream to dst.
func (r *registry) snapshot(dst []*stream) []*stream {
	for i := range r.shard {
		sh := &r.shard[i]
		sh.mu.RLock()
		for _, st := range sh.m {
			dst = append(dst, st)
		}
		sh.mu.RUnlock()
	}
	return dst
}

// evictIdle removes streams nobody polled since before, and returns how many.
func (r *registry) evictIdle(before int64) int {
	n := 0
	for i := range r.shard {
		sh := &r.shard[i]
		sh.mu.Lock()
		for id, st := range sh.m {
			if st.lastSeen.Load() < before {
				delete(sh.m, id)
				n++
			}
		}
		sh.mu.Unlock()
	}
	r.count.Add(int64(-n))
	return n
}

func (r *registry) len() int { return int(r.count.Load()) }

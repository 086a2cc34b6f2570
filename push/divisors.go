package push

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emojicast/emojicast/store"
)

// divisors keeps the sample divisors the fleet advertises for the streams
// this node receives sends for, read from the store in the background so
// the request path only reads memory.
//
// The weighting rule (API.md, Sampling): a send counts count × k taps only
// when it states the sample 1/k it was forwarded with and the fleet
// advertised 1/k for the stream (now, or within store.RecentFor), or k is
// within 2x of the current divisor (the most the fleet moves it in a
// step); a send that states none, or another k, counts count taps.
// Until the node has read a stream's divisor it trusts a stated sample up
// to maxDivisor, and it advertises nothing rather than 1. The per-user
// limit is charged the weight, so no claim buys more than the limit.
type divisors struct {
	maxStreams int
	maxDivisor int64

	mu sync.RWMutex
	m  map[string]*streamDivisor
}

// recentFor is store.RecentFor in seconds.
const recentFor = int64(store.RecentFor / time.Second)

type streamDivisor struct {
	current  atomic.Int64 // 0 until read from the store
	lastUsed atomic.Int64 // Unix second of the last send

	mu      sync.Mutex
	recent  [4]advertised // replaced divisors, newest first
	loading chan struct{} // closed when the read under way ends; nil if none
	failed  int64         // Unix second of the last failed first read
}

type advertised struct {
	k     int64
	until int64 // Unix second after which it is no longer honoured
}

func newDivisors(maxStreams int, maxDivisor int64) *divisors {
	return &divisors{maxStreams: maxStreams, maxDivisor: maxDivisor, m: make(map[string]*streamDivisor)}
}

// weigh returns the weight of a send for a stream (nil: the table is full)
// that states the divisor claimed (0: it stated no sample), and the
// divisor to advertise in the answer, 0 while it is unknown.
func (d *divisors) weigh(sd *streamDivisor, claimed, now int64) (weight, current int64) {
	if sd != nil {
		current = sd.current.Load()
	}
	switch {
	case claimed <= 1:
		return 1, current
	case current == 0:
		return min(claimed, d.maxDivisor), 0
	case claimed == current:
		return current, current
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	for _, a := range sd.recent {
		if a.k == claimed && now <= a.until {
			return claimed, current
		}
	}
	if claimed <= 2*current && 2*claimed >= current && claimed <= d.maxDivisor {
		// The fleet moves its divisor at most 2x a step, and pull and push
		// nodes read it at different moments: a client may hold a divisor
		// another node advertised before this one read it.
		return claimed, current
	}
	unadvertised.Inc()
	return 1, current
}

// get returns the stream's entry, creating an unknown one if there is
// room; nil if the table is full.
func (d *divisors) get(stream []byte, now int64) *streamDivisor {
	d.mu.RLock()
	sd := d.m[string(stream)]
	d.mu.RUnlock()
	if sd == nil {
		d.mu.Lock()
		if sd = d.m[string(stream)]; sd == nil {
			if len(d.m) >= d.maxStreams {
				d.mu.Unlock()
				return nil
			}
			sd = &streamDivisor{}
			d.m[string(stream)] = sd
		}
		d.mu.Unlock()
	}
	if sd.lastUsed.Load() != now {
		sd.lastUsed.Store(now)
	}
	return sd
}

// load reads the divisor of a stream the node does not know yet, waiting
// at most timeout; concurrent sends share one read. A read that failed is
// not retried within the same second: the background refresh takes over.
func (d *divisors) load(sd *streamDivisor, stream []byte, s store.ControlReader, timeout time.Duration, now int64) {
	sd.mu.Lock()
	if sd.current.Load() != 0 || sd.failed == now {
		sd.mu.Unlock()
		return
	}
	wait := sd.loading
	if wait == nil {
		sd.loading = make(chan struct{})
	}
	sd.mu.Unlock()
	if wait != nil {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-wait:
		case <-t.C:
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	ctl, err := s.Control(ctx, []string{string(stream)})
	cancel()
	if err == nil {
		sd.set(ctl[0], now)
	}
	sd.mu.Lock()
	if err != nil {
		sd.failed = now
		divisorErrors.Inc()
	}
	close(sd.loading)
	sd.loading = nil
	sd.mu.Unlock()
}

// refresh reads the current divisors of the streams sent to within
// recentFor seconds and forgets the others.
func (d *divisors) refresh(ctx context.Context, s store.ControlReader, now int64) error {
	ids, entries := d.snapshot(now - recentFor)
	if len(ids) == 0 {
		return nil
	}
	ctl, err := s.Control(ctx, ids)
	if err != nil {
		return err
	}
	for i, sd := range entries {
		sd.set(ctl[i], now)
	}
	return nil
}

// snapshot evicts entries unused since before and returns the rest.
func (d *divisors) snapshot(before int64) ([]string, []*streamDivisor) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]string, 0, len(d.m))
	entries := make([]*streamDivisor, 0, len(d.m))
	for id, sd := range d.m {
		if sd.lastUsed.Load() < before {
			delete(d.m, id)
			continue
		}
		ids = append(ids, id)
		entries = append(entries, sd)
	}
	return ids, entries
}

// set records the fleet's divisor. The one it replaces stays honoured for
// recentFor; so does the fleet's previous one when this node learns the
// divisor for the first time (it may have just started).
func (sd *streamDivisor) set(c store.Control, now int64) {
	old := sd.current.Load()
	if c.Divisor < 1 || c.Divisor == old {
		return
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if old == 0 {
		old = c.Previous
	}
	if old > 0 {
		copy(sd.recent[1:], sd.recent[:len(sd.recent)-1])
		sd.recent[0] = advertised{k: old, until: now + recentFor}
	}
	sd.current.Store(c.Divisor)
}

package push

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/emojicast/emojicast/store"
)

// divisors keeps the sample divisor pull nodes advertise for each stream
// this node receives sends for, read from the store in the background so
// the request path only reads memory. Each accepted tap counts k times,
// where 1/k is the sample the client applied: a client may say which sample
// it used, and it is believed if that sample was advertised for the stream
// within the last recentFor seconds; otherwise the current one applies.
type divisors struct {
	max int

	mu sync.RWMutex
	m  map[string]*streamDivisor
}

// recentFor is how long a replaced divisor is still accepted from clients:
// a viewer may go that long between polls when the fleet is overloaded.
const recentFor = 60

type streamDivisor struct {
	current  atomic.Int64
	lastUsed atomic.Int64 // Unix second of the last send

	mu     sync.Mutex
	recent [4]advertised // replaced divisors, newest first
}

type advertised struct {
	k     int64
	until int64 // Unix second after which it is no longer accepted
}

func newDivisors(max int) *divisors {
	return &divisors{max: max, m: make(map[string]*streamDivisor)}
}

// weight returns the divisor to weight a tap with, and the one to advertise
// in the answer. claimed is the divisor the client says it sampled with; 0
// when it did not say.
func (d *divisors) weight(stream []byte, claimed, now int64) (weight, current int64) {
	sd := d.get(stream, now)
	if sd == nil {
		return 1, 1
	}
	current = sd.current.Load()
	if claimed == 0 || claimed == current {
		return current, current
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	for _, a := range sd.recent {
		if a.k == claimed && now <= a.until {
			return claimed, current
		}
	}
	return current, current
}

// get returns the stream's entry, creating one at divisor 1 if there is
// room; nil if the table is full.
func (d *divisors) get(stream []byte, now int64) *streamDivisor {
	d.mu.RLock()
	sd := d.m[string(stream)]
	d.mu.RUnlock()
	if sd == nil {
		d.mu.Lock()
		if sd = d.m[string(stream)]; sd == nil {
			if len(d.m) >= d.max {
				d.mu.Unlock()
				return nil
			}
			sd = &streamDivisor{}
			sd.current.Store(1)
			d.m[string(stream)] = sd
		}
		d.mu.Unlock()
	}
	if sd.lastUsed.Load() != now {
		sd.lastUsed.Store(now)
	}
	return sd
}

// refresh reads the current divisors of the streams sent to within
// recentFor seconds and forgets the others.
func (d *divisors) refresh(ctx context.Context, s store.Store, now int64) error {
	ids, entries := d.snapshot(now - recentFor)
	if len(ids) == 0 {
		return nil
	}
	ctl, err := s.Control(ctx, ids)
	if err != nil {
		return err
	}
	for i, sd := range entries {
		sd.set(ctl[i].Divisor, now)
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

func (sd *streamDivisor) set(k, now int64) {
	old := sd.current.Load()
	if k < 1 || k == old {
		return
	}
	sd.mu.Lock()
	copy(sd.recent[1:], sd.recent[:len(sd.recent)-1])
	sd.recent[0] = advertised{k: old, until: now + recentFor}
	sd.current.Store(k)
	sd.mu.Unlock()
}

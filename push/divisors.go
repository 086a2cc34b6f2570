package push

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/store"
)

// divisors keeps the sample divisors the fleet advertises for the streams
// this node receives sends for, read from the store in the background so
// the request path only reads memory.
//
// The weighting rule (API.md, Sampling): a send counts count × k taps only
// when it states the sample 1/k it was forwarded with and the fleet
// advertised 1/k for the stream, now or within store.RecentFor; a send
// that states none, or any other k, counts count taps. A claim the node
// cannot check (it has not read the stream's divisor, or its table is
// full) counts count taps too: no claim is ever trusted unchecked. A claim
// the node does not know yet is checked against the store once more,
// within the second, before it is refused: pull nodes may advertise a
// divisor a moment before this node's background read sees it.
type divisors struct {
	maxStreams int
	readErrors prometheus.Counter

	mu sync.RWMutex
	m  map[string]*streamDivisor
}

// recentFor is store.RecentFor in seconds.
const recentFor = int64(store.RecentFor / time.Second)

// maxRecent bounds the replaced divisors a stream remembers: the fleet
// moves a divisor at most once a second, so a minute's worth fits.
const maxRecent = 64

type streamDivisor struct {
	current  atomic.Int64 // 0 until read from the store
	lastUsed atomic.Int64 // Unix second of the last send

	mu      sync.Mutex
	recent  []advertised  // replaced divisors still honoured, oldest first
	loading chan struct{} // closed when the read under way ends; nil if none
	readAt  int64         // Unix second of the last read a send asked for
}

type advertised struct {
	k     int64
	until int64 // Unix second after which it is no longer honoured
}

func newDivisors(maxStreams int, readErrors prometheus.Counter) *divisors {
	return &divisors{maxStreams: maxStreams, readErrors: readErrors, m: make(map[string]*streamDivisor)}
}

// weigh returns the weight of a send for a stream (nil: the table is full)
// that states the divisor claimed (0: it stated no sample), the divisor to
// advertise in the answer (0 while it is unknown), and whether the claim
// was checked: false when a sample was stated that the fleet did not
// advertise as far as the node knows, or that it could not check.
func (d *divisors) weigh(sd *streamDivisor, claimed, now int64) (weight, current int64, ok bool) {
	if sd != nil {
		current = sd.current.Load()
	}
	switch {
	case claimed <= 1:
		return 1, current, true
	case current == 0:
		return 1, 0, false
	case claimed == current:
		return current, current, true
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	for _, a := range sd.recent {
		if a.k == claimed && now <= a.until {
			return claimed, current, true
		}
	}
	return 1, current, false
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

// read reads the divisor of a stream from the store for a send that needs
// it (the stream is new to the node, or a claim is not known), waiting at
// most timeout; concurrent sends share one read, and a stream is read so
// at most once a second: past that the background refresh takes over.
// ctx ends with the node.
func (d *divisors) read(ctx context.Context, sd *streamDivisor, stream []byte, s store.AudienceReader, timeout time.Duration, now int64) {
	sd.mu.Lock()
	wait := sd.loading
	if wait == nil {
		if sd.readAt == now {
			sd.mu.Unlock()
			return
		}
		sd.readAt = now
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
	ctx, cancel := context.WithTimeout(ctx, timeout)
	ctl, err := s.Audience(ctx, []string{string(stream)})
	cancel()
	if err == nil {
		sd.set(ctl[0], now)
	} else {
		d.readErrors.Inc()
	}
	sd.mu.Lock()
	close(sd.loading)
	sd.loading = nil
	sd.mu.Unlock()
}

// refresh reads the current divisors of the streams sent to within
// recentFor seconds and forgets the others.
func (d *divisors) refresh(ctx context.Context, s store.AudienceReader, now int64) error {
	ids, entries := d.snapshot(now - recentFor)
	if len(ids) == 0 {
		return nil
	}
	ctl, err := s.Audience(ctx, ids)
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
// recentFor, and so does the fleet's previous one (the node may have
// missed it: it just started, or the fleet moved twice between reads).
func (sd *streamDivisor) set(c store.Audience, now int64) {
	old := sd.current.Load()
	if c.Divisor < 1 || c.Divisor == old && (c.Previous < 1 || c.Previous == old) {
		return
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	sd.remember(old, c.Divisor, now, true)
	sd.remember(c.Previous, c.Divisor, now, false)
	sd.current.Store(c.Divisor)
}

// remember keeps k, replaced by current, honoured until now+recentFor,
// forgetting what expired and, past maxRecent, the oldest. A k already
// kept is renewed only when it was current until now (replaced): the
// store's word that it was the previous one is no news.
func (sd *streamDivisor) remember(k, current, now int64, replaced bool) {
	if k < 1 || k == current {
		return
	}
	if !replaced && slices.ContainsFunc(sd.recent, func(a advertised) bool { return a.k == k && a.until >= now }) {
		return
	}
	kept := sd.recent[:0]
	for _, a := range sd.recent {
		if a.until >= now && a.k != k {
			kept = append(kept, a)
		}
	}
	if len(kept) == maxRecent {
		kept = append(kept[:0], kept[1:]...)
	}
	sd.recent = append(kept, advertised{k: k, until: now + recentFor})
}

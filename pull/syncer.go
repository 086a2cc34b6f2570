package pull

import (
	"context"
	"math"
	"strconv"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/emoji"
	"github.com/emojicast/emojicast/ringbuffer"
	"github.com/emojicast/emojicast/store"
)

// syncScratch is reused from sync to sync by the syncer goroutine.
type syncScratch struct {
	streams []*stream
	behind  []*stream
	cursors []store.Cursor
}

// sync moves the seconds sealed since the last sync into the rings of the
// streams that are behind. It asks the store for its horizon first and
// collects only when some stream is behind it: once a second for all of
// them, or at once for a stream that was just added.
func (p *Pull) sync(ctx context.Context, sc *syncScratch) error {
	horizon, err := p.opts.Store.Horizon(ctx)
	if err != nil {
		return err
	}
	sc.streams = p.streams.snapshot(sc.streams[:0])
	sc.behind, sc.cursors = sc.behind[:0], sc.cursors[:0]
	for _, st := range sc.streams {
		if tail := st.ring.Tail(); tail < horizon {
			sc.behind = append(sc.behind, st)
			sc.cursors = append(sc.cursors, store.Cursor{Stream: st.id, After: tail})
		}
	}
	if len(sc.behind) > 0 {
		coll, err := p.opts.Store.Collect(ctx, sc.cursors)
		if err != nil {
			return err
		}
		p.publish(sc.behind, coll)
		horizon = coll.Horizon
	}
	if horizon > p.horizon.Load() {
		p.horizon.Store(horizon)
		now := p.opts.Clock.Now()
		evicted := p.streams.evictIdle(now.Add(-p.opts.IdleAfter).Unix())
		streamsEvicted.Add(float64(evicted))
	}
	p.lastSync.Store(p.opts.Clock.Now().UnixNano())
	return nil
}

// publish writes the collected seconds into the rings. Seconds come grouped
// by stream in cursor order, so one pass over both finds each stream's.
func (p *Pull) publish(behind []*stream, coll store.Collection) {
	secs := coll.Seconds
	for _, st := range behind {
		var mine []store.Second
		for len(secs) > 0 && secs[0].Stream == st.id {
			mine = append(mine, secs[0])
			secs = secs[1:]
		}
		// Control first: a reader that sees the new tail sees its control.
		p.updateControl(st, mine, coll.Horizon)
		for _, s := range mine {
			b := p.encodeBucket(s)
			if err := st.ring.Publish(&ringbuffer.Bucket[bucket]{Second: s.Second, Value: b}); err != nil {
				panic("BUG: publishing a second at or before the tail: " + err.Error())
			}
			secondsPublished.Inc()
		}
		st.ring.Advance(coll.Horizon)
	}
}

// encodeBucket encodes one second as {"t":..,"c":{..},"burst":[..]}, emojis
// in the set's order so equal counts encode to equal bytes on every node.
func (p *Pull) encodeBucket(s store.Second) bucket {
	var counts [emoji.Max]int64
	n := p.opts.Emojis.Len()
	var total int64
	for _, c := range s.Counts {
		i, ok := p.opts.Emojis.IndexString(c.Emoji)
		if !ok || c.N <= 0 {
			unknownEmojis.Inc()
			continue
		}
		counts[i] += c.N
		total += c.N
	}
	b := make([]byte, 0, 32+16*len(s.Counts))
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, s.Second, 10)
	b = append(b, `,"c":{`...)
	first := true
	for i := range n {
		if counts[i] == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = api.AppendJSONString(b, p.opts.Emojis.At(i).ID)
		b = append(b, ':')
		b = strconv.AppendInt(b, counts[i], 10)
	}
	b = append(b, '}')
	first = true
	for i := range n {
		if counts[i] < p.opts.BurstThreshold {
			continue
		}
		if first {
			b = append(b, `,"burst":[`...)
		} else {
			b = append(b, ',')
		}
		first = false
		b = api.AppendJSONString(b, p.opts.Emojis.At(i).ID)
	}
	if !first {
		b = append(b, ']')
	}
	b = append(b, '}')
	return bucket{json: b, total: total}
}

// updateControl recomputes a stream's next_ms, sample and viewer estimate
// from the polls it got and the reactions it had since the last sync.
func (p *Pull) updateControl(st *stream, secs []store.Second, horizon int64) {
	elapsed := horizon - st.ring.Tail()
	if st.ring.Tail() == 0 || elapsed <= 0 {
		elapsed = 1
	}
	polls := float64(st.polls.Swap(0)) / float64(elapsed)
	// Smooth over a few seconds: clients poll every next_ms with jitter,
	// so one second's count is noisy.
	const alpha = 0.3
	st.pollRate += alpha * (polls - st.pollRate)
	if len(secs) > 0 {
		st.lastActive = secs[len(secs)-1].Second
	}
	old := st.ctl.Load()
	next := p.opts.QuietNextMS
	if st.lastActive >= horizon-int64(p.opts.QuietAfter.Seconds()) {
		next = p.opts.BusyNextMS
	}
	// Each viewer polls once per next_ms, so viewers = polls/s * interval.
	viewers := int64(math.Round(st.pollRate * float64(old.nextMS) / 1000))
	if next != old.nextMS || viewers != old.viewers {
		st.ctl.Store(&control{nextMS: next, divisor: old.divisor, viewers: viewers})
	}
}

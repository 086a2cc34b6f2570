package pull

import (
	"context"
	"slices"
	"strconv"
	"time"

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
	top     []store.StreamStats
	buckets []*ringbuffer.Bucket[bucket]

	// The horizon steps once a second, at a phase the syncer learns from
	// its reads: a read that saw the new horizon came after one that began
	// at readAt and saw the old one, so the next step comes after
	// readAt + 1 s, and reads before due would only see what is known.
	horizon int64
	readAt  time.Time
	due     time.Time
}

// horizonLead is how long before the earliest moment of the horizon's next
// step the syncer starts asking again, for the clocks' drift.
const horizonLead = 50 * time.Millisecond

// storeHorizon returns the newest sealed second, asking the store only
// once its next step may have come: two or three reads a second at a
// SyncInterval of 100 ms instead of ten, each step found as soon as
// before. asked says whether it asked.
func (p *Node) storeHorizon(ctx context.Context, sc *syncScratch) (horizon int64, asked bool, err error) {
	now := p.opts.Clock.Now()
	known := max(sc.horizon, p.horizon.Load())
	if now.Before(sc.due) {
		return known, false, nil
	}
	h, err := p.opts.Store.Horizon(ctx)
	if err != nil {
		return 0, true, err
	}
	if sc.horizon != 0 && h > sc.horizon {
		sc.due = sc.readAt.Add(time.Second - horizonLead)
	}
	sc.horizon, sc.readAt = h, now
	return max(h, p.horizon.Load()), true, nil
}

// sync moves the seconds sealed since the last sync into the rings of the
// streams that are behind. It learns the store's horizon first (see
// storeHorizon) and collects only when some stream is behind it: once a
// second for all of them, or at once for a stream that was just added.
func (p *Node) sync(ctx context.Context, sc *syncScratch) error {
	horizon, asked, err := p.storeHorizon(ctx, sc)
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
		ctls, cerr := p.advise(ctx, sc.behind, coll)
		sc.buckets = p.publish(sc.behind, coll, ctls, sc.buckets)
		horizon, asked = coll.Horizon, true
		if cerr != nil {
			p.metrics.controlErrors.Inc()
			p.logSyncError(cerr)
		}
	}
	if !asked {
		return nil
	}
	if horizon > p.horizon.Load() {
		p.horizon.Store(horizon)
		p.reportTop(ctx, sc)
		now := p.opts.Clock.Now()
		evicted := p.streams.evictIdle(now.Add(-p.opts.IdleAfter).Unix())
		p.metrics.streamsEvicted.Add(float64(evicted))
	}
	p.lastSync.Store(p.opts.Clock.Now().UnixNano())
	return nil
}

// publish writes the collected seconds into the rings, each stream's new
// control first, so that a reader who sees the new tail sees its control.
// Seconds come grouped by stream in cursor order, so one pass finds each
// stream's. A stream's tail moves once, to the horizon, after all its
// seconds are stored: the collection covers the whole window up to the
// horizon, so a reader never sees a tail whose window holds seconds not
// yet synced (after a stall, or on the first sync).
func (p *Node) publish(behind []*stream, coll store.Collection, ctls []*advice, scratch []*ringbuffer.Bucket[bucket]) []*ringbuffer.Bucket[bucket] {
	secs := coll.Seconds
	for i, st := range behind {
		if ctls[i] != st.advice.Load() {
			st.advice.Store(ctls[i])
		}
		scratch = scratch[:0]
		for len(secs) > 0 && secs[0].Stream == st.id {
			scratch = append(scratch, &ringbuffer.Bucket[bucket]{Second: secs[0].Second, Value: p.encodeBucket(secs[0])})
			secs = secs[1:]
		}
		if err := st.ring.Publish(coll.Horizon, scratch...); err != nil {
			panic("BUG: publishing a second at or before the tail: " + err.Error())
		}
		p.metrics.secondsPublished.Add(float64(len(scratch)))
	}
	clear(scratch)
	return scratch[:0]
}

// encodeBucket encodes one second as
// {"t":..,"c":{..},"burst":[..],"m":[{"u":..,"x":..}]}, emojis in the
// set's order so equal counts encode to equal bytes on every node, and
// comments in the order the store holds them.
func (p *Node) encodeBucket(s store.Second) bucket {
	var counts [emoji.Max]int64
	n := p.opts.Emojis.Len()
	var total int64
	for _, c := range s.Counts {
		if c.Emoji == store.SampledTaps {
			continue
		}
		i, ok := p.opts.Emojis.IndexString(c.Emoji)
		if !ok || c.N <= 0 {
			p.metrics.unknownEmojis.Inc()
			continue
		}
		counts[i] += c.N
		total += c.N
	}
	size := 32 + 16*len(s.Counts)
	for _, c := range s.Comments {
		size += 24 + len(c.User) + len(c.Text) + len(c.ID)
	}
	for _, id := range s.Retracted {
		size += 3 + len(id)
	}
	b := make([]byte, 0, size)
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
	b = appendComments(b, s.Comments, s.Retracted)
	b = appendRetracted(b, s.Retracted)
	b = append(b, '}')
	compact := p.appendCompactBucket(make([]byte, 0, len(b)/2+16), s, counts[:n])
	return bucket{json: [formats][]byte{b, compact}, total: total, tag: [formats]uint64{hashOf(b), hashOf(compact)}, pieces: new([formats]bucketPieces)}
}

// appendComments appends ,"m":[{"u":..,"x":..,"id":..},..] when there are
// comments, leaving out those the same second retracts.
func appendComments(b []byte, comments []store.Comment, retracted []string) []byte {
	first := true
	for _, c := range comments {
		if c.ID != "" && slices.Contains(retracted, c.ID) {
			continue
		}
		if first {
			b = append(b, `,"m":[`...)
		} else {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"u":`...)
		b = api.AppendJSONString(b, c.User)
		b = append(b, `,"x":`...)
		b = api.AppendJSONString(b, c.Text)
		if c.ID != "" {
			b = append(b, `,"id":`...)
			b = api.AppendJSONString(b, c.ID)
		}
		b = append(b, '}')
	}
	if !first {
		b = append(b, ']')
	}
	return b
}

// appendRetracted appends ,"r":[id,..]: the comments of earlier seconds
// (or of this one) that clients showing them must take down.
func appendRetracted(b []byte, ids []string) []byte {
	for i, id := range ids {
		if i == 0 {
			b = append(b, `,"r":[`...)
		} else {
			b = append(b, ',')
		}
		b = api.AppendJSONString(b, id)
	}
	if len(ids) > 0 {
		b = append(b, ']')
	}
	return b
}

package pull

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"github.com/emojicast/emojicast/store"
)

// The control rules. Once a second, when the horizon moves, the syncer
// recomputes for every stream it serves:
//
// viewers: every poll answer tells its viewer to come back in next_ms, so a
// poll is an arrival now and a departure next_ms later; viewers present are
// arrivals minus departures so far (Little's law, counted rather than
// averaged, so it stays right while next_ms changes and while a crowd
// arrives at once). It needs no viewer ids and costs two atomic adds per
// poll. A client that polls faster than it is told would count as many
// viewers, so each client address counts at most ViewersPerAddress
// arrivals per stream and poll window. Each node reports its own count to
// the store and shows the fleet's sum.
//
// sample: the push fleet should receive about TargetSends forwarded taps
// per second per stream. What sampling can change is the sends that state
// a sample: push nodes add their taps, at the weight each was counted
// with, under store.SampledTaps with every second's counts, so every pull
// node reads the same figure. It is smoothed over about ten seconds (a
// second at least twice the smoothed figure is taken at once: a surge),
// and the divisor is ceil(figure / target), between 1 and MaxDivisor.
// Sends that state no sample are counted once and left out: raising the
// divisor would not make them fewer, so they cannot drive it up. A client
// that states a sample but forwards every tap weighs on the figure only
// up to its per-user limit, which push charges at the send's weight. The
// divisor moves only when off by more than an eighth, and then by at
// most 2x per step, so clients and push nodes rarely see it change. A
// divisor is written to the store a second before it is advertised, so
// push nodes know it before clients use it; every report keeps it alive
// in the store, so it never expires while the stream is served.
//
// next_ms: BusyNextMS for a stream with reactions in the last QuietAfter,
// otherwise (sparse control) a tenth of the stream's quiet spell so far
// (since its last reaction, or since this node serves it) within
// [QuietNextMS, QuietMaxNextMS]: a viewer of a stream quiet for long waits
// longer, but never more than a tenth of how long nothing happened, and the
// first reaction brings BusyNextMS back at once. Then stretched by the
// node's overload factor when it is over its load budget (bandwidth
// control), always within [MinNextMS, MaxNextMS].

// presenceSlots is the seconds of arrivals and departures a stream keeps;
// it must exceed the longest next_ms, so MaxNextMS is at most maxNextMS.
const (
	presenceSlots = 64
	maxNextMS     = (presenceSlots - 4) * 1000
)

// presence counts a stream's viewers as they arrive (poll) and as they are
// due to leave (the poll's next_ms later), per second.
type presence struct {
	arrive, depart [presenceSlots]atomic.Int64
}

func presenceSlot(sec int64) int { return int(uint64(sec) % presenceSlots) }

// poll records a poll answered at nowMS (Unix milliseconds) with nextMS.
func (pr *presence) poll(nowMS, nextMS int64) {
	pr.arrive[presenceSlot(nowMS/1000)].Add(1)
	pr.depart[presenceSlot((nowMS+nextMS)/1000)].Add(1)
}

// arrive counts a poll of st from client (an address key; nil when the
// caller cannot tell clients apart) answered at nowMS with nextMS, unless
// the client already counted its share, viewers, in this poll window.
func (p *Node) arrive(st *stream, client []byte, nowMS, nextMS int64, viewers int) {
	if client != nil {
		var buf [16 + 1 + 64]byte
		key := append(append(append(buf[:0], client...), '|'), st.id...)
		if !p.counted.AllowPer(key, viewers, time.Duration(nextMS)*time.Millisecond, nowMS*int64(time.Millisecond)) {
			return
		}
	}
	st.presence.poll(nowMS, nextMS)
}

// streamAudience is the syncer's memory of one stream between control steps.
type streamAudience struct {
	counted    int64   // the newest second folded into present
	present    int64   // viewers present at the end of second counted
	lastActive int64   // newest second that had reactions
	served     int64   // the horizon of the stream's first control step
	sampled    float64 // smoothed store.SampledTaps per second
	judged     bool    // sampled holds at least one step's figure

	// Smoothed rates of the stream, for the operators' view.
	tapsPerS, commentsPerS float64
}

// rateAlpha smooths the operators' rates over a few seconds.
const rateAlpha = 0.3

// observe folds the seconds just published into the operators' rates.
func (sc *streamAudience) observe(secs []store.Second, since, horizon int64) {
	if since == 0 || horizon <= since {
		return // a stream just added: nothing to judge by
	}
	var reactions int64
	var comments int
	for _, s := range secs {
		comments += len(s.Comments)
		for _, c := range s.Counts {
			if c.Emoji != store.SampledTaps {
				reactions += c.N
			}
		}
	}
	perSecond := float64(reactions) / float64(horizon-since)
	sc.tapsPerS += rateAlpha * (perSecond - sc.tapsPerS)
	sc.commentsPerS += rateAlpha * (float64(comments)/float64(horizon-since) - sc.commentsPerS)
}

// localViewers folds the seconds completed since the last step into the
// count of viewers present and returns it.
func (sc *streamAudience) localViewers(st *stream, now time.Time) int64 {
	done := now.Unix() - 1
	if sc.counted == 0 || done-sc.counted >= presenceSlots-2 {
		// A new stream, or a syncer so late the slots wrapped: start over.
		for i := range presenceSlots {
			st.presence.arrive[i].Store(0)
			st.presence.depart[i].Store(0)
		}
		sc.counted, sc.present = done, 0
	}
	for s := sc.counted + 1; s <= done; s++ {
		i := presenceSlot(s)
		sc.present += st.presence.arrive[i].Swap(0) - st.presence.depart[i].Swap(0)
	}
	sc.counted = done
	return max(sc.present, 0)
}

// demand returns the store.SampledTaps per second in the seconds just
// published, or -1 when there are none to judge by (a stream just added).
func demand(secs []store.Second, since, horizon int64) float64 {
	if since == 0 || horizon <= since {
		return -1
	}
	var total int64
	for _, s := range secs {
		for _, c := range s.Counts {
			if c.Emoji == store.SampledTaps {
				total += c.N
			}
		}
	}
	return float64(total) / float64(horizon-since)
}

// chooseDivisor applies the sample rule to one stream, starting from the
// divisor the fleet advertises so that nodes converge on one value.
func (p *Node) chooseDivisor(sc *streamAudience, perSecond float64, current int64) int64 {
	if perSecond >= 0 {
		const alpha = 0.1
		if !sc.judged || perSecond >= 2*sc.sampled {
			sc.sampled = perSecond
		} else {
			sc.sampled += alpha * (perSecond - sc.sampled)
		}
		sc.judged = true
	}
	if !sc.judged {
		return current // nothing to judge by yet
	}
	current = min(max(current, 1), p.opts.MaxDivisor)
	want := int64(math.Ceil(sc.sampled / float64(p.opts.TargetSends)))
	want = min(max(want, 1), p.opts.MaxDivisor)
	switch {
	case float64(want) > 1.125*float64(current):
		return min(want, 2*current)
	case 1.125*float64(want) < float64(current):
		return max(want, (current+1)/2)
	}
	return current
}

// quietGrowth is how many times its poll interval a quiet stream's quiet
// spell is, once the interval grows past QuietNextMS.
const quietGrowth = 10

// nextMS applies the poll-interval rule to one stream.
func (p *Node) nextMS(sc *streamAudience, horizon int64) int64 {
	if sc.served == 0 {
		sc.served = horizon
	}
	next := p.opts.BusyNextMS
	if sc.lastActive < horizon-int64(p.opts.QuietAfter/time.Second) {
		spell := horizon - max(sc.lastActive, sc.served)
		next = min(max(spell*1000/quietGrowth, p.opts.QuietNextMS), p.opts.QuietMaxNextMS)
	}
	if p.opts.Load != nil {
		if f := p.opts.Load.Factor(); f > 1 {
			next = int64(float64(next) * f)
		}
	}
	return min(max(next, p.opts.MinNextMS), p.opts.MaxNextMS)
}

// advise runs one control step for the streams about to be published and
// returns their new advice, in the order of behind. Store errors
// leave the fleet figures as they were and are returned for logging; the
// step itself always completes, so polls keep their pacing.
func (p *Node) advise(ctx context.Context, behind []*stream, coll store.Collection) ([]*advice, error) {
	now := p.opts.Clock.Now()
	ids := make([]string, len(behind))
	local := make([]int64, len(behind))
	for i, st := range behind {
		ids[i] = st.id
		local[i] = st.audience.localViewers(st, now)
	}
	fleet, err := p.opts.Store.Audience(ctx, ids)
	if err != nil {
		fleet = nil
	}
	reports := make([]store.AudienceReport, len(behind))
	out := make([]*advice, len(behind))
	secs := coll.Seconds
	for i, st := range behind {
		sc := &st.audience
		var mine []store.Second
		for len(secs) > 0 && secs[0].Stream == st.id {
			mine = append(mine, secs[0])
			secs = secs[1:]
		}
		if len(mine) > 0 {
			sc.lastActive = mine[len(mine)-1].Second
		}
		old := st.advice.Load()
		viewers, advertised := local[i], old.divisor
		if fleet != nil {
			viewers, advertised = fleet[i].Viewers, fleet[i].Divisor
		}
		reports[i] = store.AudienceReport{Stream: st.id, Viewers: local[i]}
		sc.observe(mine, st.ring.Tail(), coll.Horizon)
		if k := p.chooseDivisor(sc, demand(mine, st.ring.Tail(), coll.Horizon), advertised); k != advertised {
			reports[i].Divisor, reports[i].Previous = k, advertised
		}
		next := &advice{nextMS: p.nextMS(sc, coll.Horizon), divisor: advertised, viewers: viewers}
		if *next == *old {
			next = old
		}
		out[i] = next
	}
	if rerr := p.opts.Store.ReportAudience(ctx, p.opts.NodeID, reports); rerr != nil && err == nil {
		err = rerr
	}
	return out, err
}

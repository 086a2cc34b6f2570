package danmaku

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/store"
)

// The comment budget. A stream may broadcast at most Budget comments a
// second across the whole push fleet, and when more are offered, which are
// kept must not depend on when in the second a comment arrived or which
// push node got it. The sender is answered at once, so a node cannot wait
// for the second to end and draw a sample. Instead:
//
// Rate. Each node counts the comments offered to it per stream and second
// (valid, within the user's limit) and reports the count of its last
// complete second to the store; the fleet's rate R is the sum of the
// latest reports, with the node's own count fresh from memory.
//
// Probability. A comment is kept with probability p = min(1, keep*Budget/R)
// (keep = 0.9, see keepShare), the same on every node. Within a second a
// node draws by systematic sampling: an accumulator starts at a random
// phase in [0, 1) and each offer adds p; an offer that carries it past a
// whole number is kept. Every offer, first or last, is kept with
// probability exactly p, and the number kept in a second is R*p give or
// take one, so the hard cap below is rarely reached.
//
// Cap. The Budget seats of a second are split evenly over the live push
// nodes (those that reported within store.CommentLoadTTL); the seats that
// do not divide evenly go to different nodes each second. Every node sees
// the same live nodes, so the seats add up to the Budget: a second never
// holds more. A node that gets more than its share of a stream's comments
// lowers its own p so that it still expects to keep keepShare of its
// seats: late comments are not the ones shed.
//
// Joining. A node takes seats only once it has told the store it is live
// and read the fleet back; when it finds other nodes live, it waits two
// report intervals more, until each of them has counted it. A node that
// could not read the fleet for store.CommentLoadTTL (the others have
// dropped it by then) takes no seats until it joins again. Meanwhile its
// comments are shed: the answer stays immediate and the budget holds.
//
// The first second of a sudden surge, before any count of it was reported,
// has no rate to go by: it is first come, first served up to the seats.

// keepShare is the share of the seats a node aims to fill: the margin
// absorbs the second-to-second wobble of the rate so that the cap, which
// sheds the latest comments, rarely has a say.
const keepShare = 0.9

// budget decides, per stream and second, which comments a node keeps.
type budget struct {
	perSecond int
	node      string
	maxStream int
	clock     clock.Clock // ages the fleet view

	mu      sync.Mutex
	streams map[string]*streamBudget

	fleet atomic.Pointer[fleetView]
}

// fleetView is the last comment load read from the store.
type fleetView struct {
	nodes   []string         // live push nodes, sorted
	offered map[string]int64 // stream -> comments other nodes offered in their last second
	at      time.Time        // when it was read; zero: never
	// seatsFrom is when this node may take seats: a node that finds
	// others already live waits until every one of them has read the
	// fleet again and counts it too.
	seatsFrom time.Time
}

type streamBudget struct {
	mu       sync.Mutex
	second   int64 // the second being counted
	offered  int64 // offers in second so far
	last     int64 // offers in second-1
	p        float64
	seats    int
	acc      float64
	kept     int
	reported int64 // the last second whose count was reported
	dead     bool  // forgotten as idle: callers must get the stream again
}

func newBudget(perSecond int, node string, maxStreams int, clk clock.Clock) *budget {
	b := &budget{perSecond: perSecond, node: node, maxStream: maxStreams, clock: clk, streams: make(map[string]*streamBudget)}
	b.fleet.Store(&fleetView{})
	return b
}

// admit decides on one comment offered for stream in second sec, and
// returns the second it was counted in: sec, or the stream's current
// second when a request that read the clock just before the second turned
// gets here after one that read it just after (it is off by a moment,
// never counted against a second whose seats are closed). ok is false when
// the node holds its maximum of streams and this one is new. A positive
// perSecond below the node's budget is the stream's own (an operator's
// setting); it takes effect from the stream's next second.
func (b *budget) admit(stream []byte, sec int64, perSecond int) (keep bool, in int64, ok bool) {
	if perSecond <= 0 || perSecond > b.perSecond {
		perSecond = b.perSecond
	}
	for {
		sb := b.get(stream, sec)
		if sb == nil {
			return false, 0, false
		}
		// An entry forgotten as idle between get and its lock is got
		// again, so that no second's seats are counted in two places.
		if keep, in, alive := b.offer(sb, string(stream), sec, perSecond); alive {
			return keep, in, true
		}
	}
}

// offer counts one offer in sb; alive is false when sb was forgotten.
func (b *budget) offer(sb *streamBudget, stream string, sec int64, perSecond int) (keep bool, in int64, alive bool) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.dead {
		return false, 0, false
	}
	if sec > sb.second {
		b.startSecond(sb, stream, sec, perSecond)
	}
	sb.offered++
	sb.acc += sb.p
	if sb.acc < 1 {
		return false, sb.second, true
	}
	sb.acc--
	if sb.kept >= sb.seats {
		return false, sb.second, true
	}
	sb.kept++
	return true, sb.second, true
}

// startSecond moves a stream's counting to second sec and fixes the
// second's probability and seats.
func (b *budget) startSecond(sb *streamBudget, stream string, sec int64, perSecond int) {
	if sb.second == sec-1 {
		sb.last = sb.offered
	} else {
		sb.last = 0
	}
	sb.second, sb.offered, sb.kept = sec, 0, 0
	view := b.fleet.Load()
	sb.seats = 0
	if now := b.clock.Now(); !view.at.IsZero() && now.Sub(view.at) <= store.CommentLoadTTL && !now.Before(view.seatsFrom) {
		sb.seats = seats(perSecond, view.nodes, b.node, stream, sec)
	}
	rate := float64(sb.last + view.offered[stream])
	sb.p = 1
	if rate > 0 {
		sb.p = min(1, keepShare*float64(perSecond)/rate)
		if sb.last > 0 {
			sb.p = min(sb.p, keepShare*float64(sb.seats)/float64(sb.last))
		}
	}
	sb.acc = rand.Float64()
}

// get returns the stream's entry, creating it (as if second sec-1 had no
// comments, so it is not idle) if there is room; nil if there is not.
func (b *budget) get(stream []byte, sec int64) *streamBudget {
	b.mu.Lock()
	defer b.mu.Unlock()
	sb := b.streams[string(stream)]
	if sb == nil {
		if len(b.streams) >= b.maxStream {
			return nil
		}
		sb = &streamBudget{second: sec - 1}
		b.streams[string(stream)] = sb
	}
	return sb
}

// seats returns the seats of node in second sec of stream: the budget
// split evenly over the live nodes (node among them even if the store does
// not list it yet), the remainder going to the nodes that rank first by a
// hash of node, stream and second, so it moves from node to node.
func seats(budget int, live []string, node, stream string, sec int64) int {
	if !slices.Contains(live, node) {
		live = append(slices.Clip(live), node)
	}
	n := len(live)
	base, extra := budget/n, budget%n
	if extra == 0 {
		return base
	}
	mine := rank(node, stream, sec)
	ahead := 0
	for _, other := range live {
		if r := rank(other, stream, sec); r < mine || r == mine && other < node {
			ahead++
		}
	}
	if ahead < extra {
		return base + 1
	}
	return base
}

// rank orders the nodes for the left-over seats of a second: a hash of
// node and stream mixed with the second (splitmix64's finalizer, as FNV
// alone barely moves its high bits for a change of the last bytes).
func rank(node, stream string, sec int64) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(node))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(stream))
	x := h.Sum64() ^ uint64(sec)*0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// idleAfter is how many seconds a stream without comments is remembered.
const idleAfter = 5

// reports returns, for each stream not reported since, the count of the
// last complete second (now-1), and forgets idle streams.
func (b *budget) reports(now int64) []store.CommentReport {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []store.CommentReport
	for id, sb := range b.streams {
		sb.mu.Lock()
		var n int64
		switch sb.second {
		case now - 1:
			n = sb.offered
		case now:
			n = sb.last
		}
		if sb.reported < now-1 {
			sb.reported = now - 1
			out = append(out, store.CommentReport{Stream: id, Offered: n})
		}
		if sb.second < now-idleAfter {
			sb.dead = true
			delete(b.streams, id)
		}
		sb.mu.Unlock()
	}
	return out
}

// streamIDs returns the streams the node keeps budgets for.
func (b *budget) streamIDs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]string, 0, len(b.streams))
	for id := range b.streams {
		ids = append(ids, id)
	}
	return ids
}

// refresh reads the fleet's comment load for the node's streams. It runs
// after the node reported itself live.
func (b *budget) refresh(ctx context.Context, s store.CommentLoadSharer) error {
	ids := b.streamIDs()
	load, err := s.CommentLoad(ctx, ids)
	if err != nil {
		return err
	}
	now := b.clock.Now()
	view := &fleetView{nodes: load.Nodes, offered: make(map[string]int64, len(ids)), at: now}
	for i, id := range ids {
		for _, l := range load.Streams[i] {
			if l.Node != b.node {
				view.offered[id] += l.Offered
			}
		}
	}
	view.seatsFrom = b.seatsFrom(now, load.Nodes)
	b.fleet.Store(view)
	return nil
}

// seatsFrom returns when the node may take seats. A node joining the fleet
// (at start, or back after it could not reach the store for longer than
// the others remember it) that finds other nodes live waits two report
// intervals, by which time each of them has read the fleet again and
// counted it: until then their seats add up to the whole budget.
func (b *budget) seatsFrom(now time.Time, live []string) time.Time {
	prev := b.fleet.Load()
	if !prev.at.IsZero() && now.Sub(prev.at) <= store.CommentLoadTTL {
		return prev.seatsFrom
	}
	for _, n := range live {
		if n != b.node {
			return now.Add(2 * commentLoadInterval)
		}
	}
	return now
}

// len returns the number of streams with budgets.
func (b *budget) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.streams)
}

// commentLoadInterval is how often a node shares and reads comment load:
// often enough that a second's counts reach the other nodes well before
// the next second starts.
const commentLoadInterval = 250 * time.Millisecond

func (c *Comments) commentLoadLoop(ctx context.Context) {
	tick := time.NewTicker(commentLoadInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			c.shareCommentLoad(ctx)
		case <-c.stop:
			return
		}
	}
}

// shareCommentLoad reports the counts of the seconds completed since the
// last report, and that the node is live, to every store, so that every
// region's store knows the whole push fleet; then it reads the fleet's
// load from the first, the node's own region. Other regions are written
// in the background, so a region that hangs does not hold up the node's
// own.
func (c *Comments) shareCommentLoad(ctx context.Context) {
	reports := c.budget.reports(c.opts.Clock.Now().Unix())
	for i, s := range c.opts.Stores[1:] {
		busy := &c.reporting[i]
		if !busy.CompareAndSwap(false, true) {
			continue // the last report to this region is still under way
		}
		go func() {
			defer busy.Store(false)
			call, cancel := context.WithTimeout(ctx, c.opts.Timeout)
			defer cancel()
			if err := s.ReportComments(call, c.opts.Node, reports); err != nil {
				c.metrics.commentLoadErrors.Inc()
			}
		}()
	}
	call, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	home := c.opts.Stores[0]
	if err := home.ReportComments(call, c.opts.Node, reports); err != nil {
		c.metrics.commentLoadErrors.Inc()
		return
	}
	if err := c.budget.refresh(call, home); err != nil {
		c.metrics.commentLoadErrors.Inc()
	}
}

package pull

import (
	"context"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/compress"
	"github.com/emojicast/emojicast/store"
)

// HistorySealedMaxAge is how long the answer for a range of whole sealed
// minutes is kept, by this node and (its Cache-Control) by edges and
// browsers. Sealed counts never change, but an operator may still take a
// comment down (store.ModerationWriter.Retract): replays stop showing it within
// about twice this.
const HistorySealedMaxAge = 30 * time.Second

// The caching of history answers. A shared cache may serve an expired
// answer while it refetches it (RFC 5861 stale-while-revalidate) for as
// long again as it was fresh, so a retraction still leaves replays within
// about twice HistorySealedMaxAge; and while the origin fails
// (stale-if-error), for an hour of whole sealed minutes, since a replay
// that goes on through an outage is worth a retraction shown late, and
// for 10 s of a range reaching the present, as polls.
var (
	cacheSealed = []byte("public, max-age=" + strconv.Itoa(int(HistorySealedMaxAge/time.Second)) +
		", stale-while-revalidate=" + strconv.Itoa(int(HistorySealedMaxAge/time.Second)) + ", stale-if-error=3600")
	cachePartial = []byte("public, max-age=1, stale-while-revalidate=1, stale-if-error=10")
)

// historyCacheBytes bounds the heap a node's sealed history cache takes,
// bodies, keys and bookkeeping counted: an hour of a busy stream with
// comments is a few MB, and the edge caches them too.
const historyCacheBytes = 64 << 20

// HandleHistory serves GET /v1/streams/{stream}/history?from=T1&to=T2. stream
// is a valid stream id. The answer lists the sealed seconds of [T1, T2],
// T2 clipped to the newest sealed second, as the poll lists its buckets,
// without the comments operators took down. A range of whole minutes that
// is sealed through its end changes only when a comment of it is taken
// down: it is served with max-age HistorySealedMaxAge, and the node keeps
// its body as long.
func (p *Node) HandleHistory(ctx *fasthttp.RequestCtx, id []byte) {
	args := ctx.QueryArgs()
	from, to, ok := parseRange(args.Peek("from"), args.Peek("to"))
	if !ok {
		api.WriteError(ctx, api.ErrInvalidRange)
		return
	}
	key := historyKey{stream: string(id), from: from, to: to}
	now := p.opts.Clock.Now()
	if body := p.history.get(key, now); body != nil {
		p.metrics.historyServed.WithLabelValues("cached").Inc()
		p.writeHistory(ctx, body, cacheSealed)
		return
	}
	sctx, cancel := context.WithTimeout(p.life, p.opts.SyncTimeout)
	h, err := p.opts.History.History(sctx, key.stream, from, to)
	cancel()
	if err != nil {
		p.metrics.historyErrors.Inc()
		p.opts.Logger.Debug("cannot read history", "stream", key.stream, "err", err)
		api.WriteRetry(ctx, api.ErrUnavailable, 1)
		return
	}
	body := compress.NewBody(p.encodeHistory(from, min(to, h.Horizon), h.Seconds))
	if sealedMinutes(from, to, h.Horizon) {
		p.metrics.historyServed.WithLabelValues("sealed").Inc()
		p.history.put(key, body, now)
		p.writeHistory(ctx, body, cacheSealed)
		return
	}
	p.metrics.historyServed.WithLabelValues("partial").Inc()
	p.writeHistory(ctx, body, cachePartial)
}

// sealedMinutes reports whether a range's counts can never change: it is
// whole minutes, and all of it was sealed when read.
func sealedMinutes(from, to, horizon int64) bool {
	return from%60 == 0 && (to+1)%60 == 0 && to <= horizon
}

func (p *Node) writeHistory(ctx *fasthttp.RequestCtx, body *compress.Body, cacheControl []byte) {
	if api.WriteBody(ctx, body, contentTypeJSON, cacheControl) {
		p.metrics.notModified.Inc()
	}
}

// encodeHistory builds {"from":..,"to":..,"buckets":[..]} with each second
// encoded as a poll bucket, so equal seconds give equal bytes on every node.
func (p *Node) encodeHistory(from, to int64, secs []store.Second) []byte {
	out := make([]byte, 0, 64+64*len(secs))
	out = append(out, `{"from":`...)
	out = strconv.AppendInt(out, from, 10)
	out = append(out, `,"to":`...)
	out = strconv.AppendInt(out, to, 10)
	out = append(out, `,"buckets":[`...)
	for i, s := range secs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, p.encodeBucket(s).json[formatV1]...)
	}
	return append(out, "]}"...)
}

// parseRange parses a history range: from and to are Unix seconds, both
// present, 0 <= from <= to, spanning at most store.MaxHistoryRange seconds.
func parseRange(fromArg, toArg []byte) (from, to int64, ok bool) {
	from, hasFrom, okFrom := parseSince(fromArg)
	to, hasTo, okTo := parseSince(toArg)
	if !hasFrom || !hasTo || !okFrom || !okTo || from < 0 || to < from || to-from >= store.MaxHistoryRange {
		return 0, 0, false
	}
	return from, to, true
}

type historyKey struct {
	stream   string
	from, to int64
}

// historyCache keeps the sealed history bodies built last, each for
// HistorySealedMaxAge. It is keyed by client input, so it is bounded by
// what it really holds: each entry is charged its key, its structs, its
// share of the map and its bodies as the allocator rounds them (an empty
// range costs about five times its two bodies), up to maxBytes and
// maxEntries, evicting the oldest. Expired entries leave when asked for
// and whenever a body is put, so a flood of ranges nobody asks again does
// not stay.
type historyCache struct {
	maxBytes   int
	maxEntries int
	// expired and full count the entries dropped, by why.
	expired, full prometheus.Counter

	mu         sync.Mutex
	m          map[historyKey]*historyEntry
	head, tail *historyEntry // put oldest first
	bytes      int           // charged for the entries and the map
	// slots is the most entries the map has held: a Go map keeps the
	// room it grew to after its entries are deleted.
	slots int
}

type historyEntry struct {
	key        historyKey
	body       *compress.Body
	at         int64 // Unix nanoseconds it was read from the store
	cost       int
	prev, next *historyEntry
}

// historyCacheEntries caps the entries of a node's history cache: far
// more distinct sealed ranges than viewers replay at once.
const historyCacheEntries = 50_000

// mapSlotBytes is what one entry costs the map: its key, pointer and
// control byte (41 bytes) several times over, since a map whose oldest
// entries are deleted as new ones come leaves tombstones and grows past
// its live entries: 126 to 172 bytes per live entry were measured (Go
// 1.26, 1,000 to 50,000 entries, ten turnovers).
const mapSlotBytes = int(unsafe.Sizeof(historyKey{})+unsafe.Sizeof(uintptr(0))+1) * 9 / 2

func newHistoryCache(maxBytes, maxEntries int, m *metrics) *historyCache {
	// The map's room stays charged (see slots): it must leave most of the
	// limit to the entries.
	maxEntries = min(maxEntries, maxBytes/(4*mapSlotBytes))
	return &historyCache{
		maxBytes: maxBytes, maxEntries: maxEntries, m: make(map[historyKey]*historyEntry),
		expired: m.historyDropped.WithLabelValues("expired"), full: m.historyDropped.WithLabelValues("full"),
	}
}

// allocSize is what the heap gives for n bytes: rounded up to a size
// class, up to an eighth more.
func allocSize(n int) int {
	if n == 0 {
		return 0
	}
	return (n+15)&^15 + n/8
}

// cost is what keeping b for k takes from the heap, the map's slot aside.
func (c *historyCache) cost(k historyKey, b *compress.Body) int {
	return allocSize(int(unsafe.Sizeof(historyEntry{}))) + allocSize(len(k.stream)) +
		allocSize(int(unsafe.Sizeof(compress.Body{}))) +
		allocSize(cap(b.Plain)) + allocSize(cap(b.Gzip)) + allocSize(cap(b.PlainETag)) + allocSize(cap(b.GzipETag))
}

// len is the number of entries kept.
func (c *historyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// get returns the body kept for k, unless it was read from the store
// HistorySealedMaxAge or longer before now; then it drops it.
func (c *historyCache) get(k historyKey, now time.Time) *compress.Body {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil
	}
	if expired(e, now) {
		c.remove(e)
		c.expired.Inc()
		return nil
	}
	return e.body
}

func expired(e *historyEntry, now time.Time) bool {
	return now.UnixNano()-e.at >= int64(HistorySealedMaxAge)
}

// put keeps b, read from the store at now, for k, as the newest entry. It
// drops the expired entries, then the oldest until the cache is within
// its bounds.
func (c *historyCache) put(k historyKey, b *compress.Body, now time.Time) {
	cost := c.cost(k, b)
	if cost > c.maxBytes/8 {
		return // one body must not flush the rest
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.head != nil && expired(c.head, now) {
		c.remove(c.head)
		c.expired.Inc()
	}
	if old, ok := c.m[k]; ok {
		c.remove(old)
	}
	e := &historyEntry{key: k, body: b, at: now.UnixNano(), cost: cost, prev: c.tail}
	if c.tail != nil {
		c.tail.next = e
	} else {
		c.head = e
	}
	c.tail = e
	c.m[k] = e
	c.bytes += cost
	if len(c.m) > c.slots {
		c.slots = len(c.m)
		c.bytes += mapSlotBytes
	}
	for c.head != nil && (c.bytes > c.maxBytes || len(c.m) > c.maxEntries) {
		c.remove(c.head)
		c.full.Inc()
	}
}

// remove unlinks e and forgets it.
func (c *historyCache) remove(e *historyEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
	delete(c.m, e.key)
	c.bytes -= e.cost
}

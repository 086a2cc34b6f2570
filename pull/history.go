package pull

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/compress"
	"github.com/emojicast/emojicast/store"
)

// HistorySealedMaxAge is how long the answer for a range of whole sealed
// minutes is kept, by this node and (its Cache-Control) by edges and
// browsers. Sealed counts never change, but an operator may still take a
// comment down (store.Moderator.Retract): replays stop showing it within
// about twice this.
const HistorySealedMaxAge = 30 * time.Second

var cacheSealed = []byte("public, max-age=" + strconv.Itoa(int(HistorySealedMaxAge/time.Second)))

// historyCacheBytes bounds the sealed history bodies a node keeps, both
// encodings counted: an hour of a busy stream with comments is a few MB,
// and the edge caches them too.
const historyCacheBytes = 64 << 20

// HandleHistory serves GET /v1/streams/{stream}/history?from=T1&to=T2. stream
// is a valid stream id. The answer lists the sealed seconds of [T1, T2],
// T2 clipped to the newest sealed second, as the poll lists its buckets,
// without the comments operators took down. A range of whole minutes that
// is sealed through its end changes only when a comment of it is taken
// down: it is served with max-age HistorySealedMaxAge, and the node keeps
// its body as long.
func (p *Pull) HandleHistory(ctx *fasthttp.RequestCtx, id []byte) {
	args := ctx.QueryArgs()
	from, to, ok := parseRange(args.Peek("from"), args.Peek("to"))
	if !ok {
		api.WriteError(ctx, api.ErrInvalidRange)
		return
	}
	key := historyKey{stream: string(id), from: from, to: to}
	now := p.opts.Clock.Now()
	if body := p.history.get(key, now); body != nil {
		historyServed.WithLabelValues("cached").Inc()
		writeHistory(ctx, body, cacheSealed)
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), p.opts.SyncTimeout)
	h, err := p.opts.Store.History(sctx, key.stream, from, to)
	cancel()
	if err != nil {
		historyErrors.Inc()
		p.opts.Logger.Debug("cannot read history", "stream", key.stream, "err", err)
		api.WriteRetry(ctx, api.ErrUnavailable, 1)
		return
	}
	body := compress.NewBody(p.encodeHistory(from, min(to, h.Horizon), h.Seconds))
	if sealedMinutes(from, to, h.Horizon) {
		historyServed.WithLabelValues("sealed").Inc()
		p.history.put(key, body, now)
		writeHistory(ctx, body, cacheSealed)
		return
	}
	historyServed.WithLabelValues("partial").Inc()
	writeHistory(ctx, body, cachePublic)
}

// sealedMinutes reports whether a range's counts can never change: it is
// whole minutes, and all of it was sealed when read.
func sealedMinutes(from, to, horizon int64) bool {
	return from%60 == 0 && (to+1)%60 == 0 && to <= horizon
}

func writeHistory(ctx *fasthttp.RequestCtx, body *compress.Body, cacheControl []byte) {
	if api.WriteBody(ctx, body, contentTypeJSON, cacheControl) {
		notModified.Inc()
	}
}

// encodeHistory builds {"from":..,"to":..,"buckets":[..]} with each second
// encoded as a poll bucket, so equal seconds give equal bytes on every node.
func (p *Pull) encodeHistory(from, to int64, secs []store.Second) []byte {
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
// HistorySealedMaxAge, up to historyCacheBytes, evicting the oldest: it is
// keyed by client input, so it is bounded.
type historyCache struct {
	mu    sync.Mutex
	m     map[historyKey]cachedHistory
	order []historyKey // oldest first
	bytes int
}

type cachedHistory struct {
	body *compress.Body
	at   time.Time // when it was read from the store
}

func bodySize(b *compress.Body) int { return len(b.Plain) + len(b.Gzip) }

// get returns the body kept for k, unless it was read from the store
// HistorySealedMaxAge or longer before now.
func (c *historyCache) get(k historyKey, now time.Time) *compress.Body {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || now.Sub(e.at) >= HistorySealedMaxAge {
		return nil
	}
	return e.body
}

// put keeps b, read from the store at now, for k. A stale body of k is
// replaced in place; it leaves with its first place in the order.
func (c *historyCache) put(k historyKey, b *compress.Body, now time.Time) {
	if bodySize(b) > historyCacheBytes/8 {
		return // one body must not flush the rest
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[historyKey]cachedHistory)
	}
	if old, ok := c.m[k]; ok {
		c.bytes += bodySize(b) - bodySize(old.body)
		c.m[k] = cachedHistory{body: b, at: now}
	} else {
		c.m[k] = cachedHistory{body: b, at: now}
		c.order = append(c.order, k)
		c.bytes += bodySize(b)
	}
	for c.bytes > historyCacheBytes {
		old := c.order[0]
		c.order[0] = historyKey{}
		c.order = c.order[1:]
		c.bytes -= bodySize(c.m[old].body)
		delete(c.m, old)
	}
}

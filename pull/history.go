package pull

import (
	"context"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/compress"
	"github.com/emojicast/emojicast/store"
)

var cacheImmutable = []byte("public, max-age=31536000, immutable")

// historyCacheBytes bounds the immutable history bodies a node keeps, both
// encodings counted: an hour of a busy stream with comments is a few MB,
// and the edge caches them too.
const historyCacheBytes = 64 << 20

// HandleHistory serves GET /v1/streams/{stream}/history?from=T1&to=T2. stream
// is a valid stream id. The answer lists the sealed seconds of [T1, T2],
// T2 clipped to the newest sealed second, as the poll lists its buckets. A
// range of whole minutes that is sealed through its end never changes: it
// is served immutable, and the node keeps its body.
func (p *Pull) HandleHistory(ctx *fasthttp.RequestCtx, id []byte) {
	args := ctx.QueryArgs()
	from, to, ok := parseRange(args.Peek("from"), args.Peek("to"))
	if !ok {
		api.WriteError(ctx, api.ErrInvalidRange)
		return
	}
	key := historyKey{stream: string(id), from: from, to: to}
	if body := p.history.get(key); body != nil {
		historyServed.WithLabelValues("cached").Inc()
		writeHistory(ctx, body, cacheImmutable)
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
	if immutable(from, to, h.Horizon) {
		historyServed.WithLabelValues("immutable").Inc()
		p.history.put(key, body)
		writeHistory(ctx, body, cacheImmutable)
		return
	}
	historyServed.WithLabelValues("partial").Inc()
	writeHistory(ctx, body, cachePublic)
}

// immutable reports whether a range's answer can never change: it is
// whole minutes, and all of it was sealed when read.
func immutable(from, to, horizon int64) bool {
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

// historyCache keeps the immutable history bodies built last, up to
// historyCacheBytes, evicting the oldest: it is keyed by client input, so
// it is bounded.
type historyCache struct {
	mu    sync.Mutex
	m     map[historyKey]*compress.Body
	order []historyKey // oldest first
	bytes int
}

func bodySize(b *compress.Body) int { return len(b.Plain) + len(b.Gzip) }

func (c *historyCache) get(k historyKey) *compress.Body {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *historyCache) put(k historyKey, b *compress.Body) {
	if bodySize(b) > historyCacheBytes/8 {
		return // one body must not flush the rest
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[historyKey]*compress.Body)
	}
	if _, ok := c.m[k]; ok {
		return
	}
	c.m[k] = b
	c.order = append(c.order, k)
	c.bytes += bodySize(b)
	for c.bytes > historyCacheBytes {
		old := c.order[0]
		c.order[0] = historyKey{}
		c.order = c.order[1:]
		c.bytes -= bodySize(c.m[old])
		delete(c.m, old)
	}
}

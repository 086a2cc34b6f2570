package pull

import (
	"bytes"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/compress"
	"github.com/emojicast/emojicast/ringbuffer"
)

// MaxFuture is how far past the server clock a cursor may be (docs/api.md: 300 s).
const MaxFuture = 300

// defaultBack is how many seconds a poll without a cursor gets.
const defaultBack = 5

var (
	contentTypeJSON = []byte("application/json")
)

// HandlePoll serves GET /v1/streams/{stream}/reactions?since=T, and with
// &v=2 the compact body. stream is a valid stream id; client identifies the
// client's address for the viewer estimate (nil: every poll counts). On a
// body cache hit it does not allocate.
func (p *Node) HandlePoll(ctx *fasthttp.RequestCtx, id, client []byte) {
	query := ctx.URI().QueryString()
	f, fok := parseFormat(rawArg(query, "v"))
	if !fok {
		api.WriteError(ctx, api.ErrInvalidVersion)
		return
	}
	since, hasSince, ok := parseSince(rawArg(query, "since"))
	nowMS := p.opts.Clock.Now().UnixMilli()
	wall := nowMS / 1000
	if !ok || hasSince && since > wall+MaxFuture {
		api.WriteError(ctx, api.ErrInvalidSince)
		return
	}
	st := p.streams.get(id, p.initial, wall)
	if st == nil {
		p.metrics.pollsRefused.Inc()
		api.WriteRetry(ctx, api.ErrOverloaded, 1)
		return
	}
	if st.lastSeen.Load() != wall {
		st.lastSeen.Store(wall)
	}
	counts := p.countsPoll(ctx)
	if !st.synced() {
		if counts {
			p.arrive(st, client, nowMS, unsyncedNextMS, p.opts.ViewersPerAddress)
		}
		p.wakeSyncer()
		p.writeUnsynced(ctx, f, since, hasSince)
		return
	}
	// A viewer is counted for the next_ms its answer advises.
	advised := st.advice.Load().nextMS
	if f == formatCompact {
		advised = max(advised, p.opts.CompactMinNextMS)
	}
	if counts {
		p.arrive(st, client, nowMS, advised, p.opts.ViewersPerAddress)
	}
	now := st.ring.Tail()
	if !hasSince {
		since = now - defaultBack
	}
	setExpires(ctx, now, wall)
	p.writeSlot(ctx, st, f, now, slotOf(now, since))
}

// writeSlot answers with the body of a slot. The bodies of viewers who keep
// up and the gap body are cached; the others are assembled per request from
// pieces. HEAD of an assembled body builds nothing: its ETag comes from the
// parts' hashes. (HEAD of a slot of viewers who keep up builds and caches
// the body, as a GET would: whether a compact one has a gzip form decides
// its headers.)
func (p *Node) writeSlot(ctx *fasthttp.RequestCtx, st *stream, f format, now int64, slot int) {
	cslot := cacheSlot(slot)
	if cslot >= 0 {
		if body := st.bodies[f].Get(now, cslot); body != nil {
			p.writeBody(ctx, f, body)
			return
		}
	}
	var scratch [ringbuffer.Size]*ringbuffer.Bucket[bucket]
	parts := p.bodyParts(st, scratch[:0], f, now, slot)
	tag := parts.tag()
	var buf [16]byte
	if ctx.IsHead() && slot > wholeSlots {
		gz, ifNoneMatch := api.Negotiate(ctx)
		if api.WriteBodyHeaders(ctx, gz, true, ifNoneMatch, etagOf(buf[:0], f, tag, gz), contentTypes[f], pollCacheControl) {
			p.metrics.notModified.Inc()
		}
		return
	}
	if cslot >= 0 {
		var body *compress.Body
		if slot <= wholeSlots {
			body = compress.NewBodyTag(parts.appendPlain(nil), tag)
			if f == formatCompact {
				// No ETag (see etagOf), and no gzip form where gzip's 18
				// bytes of framing make the body longer: a second of
				// reactions without comments.
				body.PlainETag, body.GzipETag = nil, nil
				if len(body.Gzip) >= len(body.Plain) {
					body.Gzip = nil
				}
			}
			p.metrics.bodiesEncoded.Inc()
		} else {
			body = &compress.Body{
				Plain:     parts.appendPlain(nil),
				Gzip:      parts.appendGzip(nil),
				PlainETag: etagOf(nil, f, tag, false),
				GzipETag:  etagOf(nil, f, tag, true),
			}
			p.metrics.bodiesAssembled.Inc()
		}
		p.writeBody(ctx, f, st.bodies[f].Put(now, cslot, body))
		return
	}
	gz, ifNoneMatch := api.Negotiate(ctx)
	if api.WriteBodyHeaders(ctx, gz, true, ifNoneMatch, etagOf(buf[:0], f, tag, gz), contentTypes[f], pollCacheControl) {
		p.metrics.notModified.Inc()
		return
	}
	// The response's own pooled buffer takes the body.
	out := ctx.Response.SwapBody(nil)[:0]
	if gz {
		out = parts.appendGzip(out)
	} else {
		out = parts.appendPlain(out)
	}
	ctx.Response.SwapBody(out)
	p.metrics.bodiesAssembled.Inc()
}

// cacheSlot is where a slot's body is cached, or -1 for a body assembled
// per request: the bodies of viewers who keep up, then the gap body, one
// for every cursor older than the window.
func cacheSlot(slot int) int {
	switch {
	case slot <= wholeSlots:
		return slot
	case slot == gapSlot:
		return wholeSlots + 1
	}
	return -1
}

// etagOf appends the ETag of an assembled body's representation. Compact
// bodies have none: an answer without news is as short as a 304 with its
// ETag, and every header is paid by every poll.
func etagOf(dst []byte, f format, tag uint64, gz bool) []byte {
	switch {
	case f == formatCompact:
		return nil
	case gz:
		return compress.AppendETag(dst, tag, compress.MarkPieces)
	}
	return compress.AppendETag(dst, tag, compress.MarkPlain)
}

// rawArg returns the first parameter name of a query as sent, not
// decoded, or nil when there is none. It does not allocate.
func rawArg(query []byte, name string) []byte {
	for len(query) > 0 {
		var param []byte
		param, query, _ = bytes.Cut(query, []byte{'&'})
		if key, value, _ := bytes.Cut(param, []byte{'='}); string(key) == name {
			return value
		}
	}
	return nil
}

// parseSince parses the since parameter as sent: absent is fine, anything
// but the canonical decimal spelling of a second is not. A cursor is a now
// the server sent, so no client has reason to spell it another way, and a
// cache in front of the node keys on the spelling: a sign, leading zeros or
// percent escapes would make every spelling of one cursor its own entry.
// "0" is the one canonical cursor older than every window. It does not
// allocate.
func parseSince(b []byte) (since int64, present, ok bool) {
	if b == nil {
		return 0, false, true
	}
	if len(b) == 0 || len(b) > 18 || b[0] == '0' && len(b) > 1 {
		return 0, true, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, true, false
		}
		since = since*10 + int64(c-'0')
	}
	return since, true, true
}

// slotOf maps a cursor to its body slot for second now. Cursors at or after
// now share slot 0 (nothing new), cursors older than the window share the
// gap slot: every cursor in a slot gets the same bytes.
func slotOf(now, since int64) int {
	switch d := now - since; {
	case d <= 0:
		return 0
	case d > ringbuffer.Size:
		return gapSlot
	default:
		return int(d)
	}
}

func appendAudience(out []byte, ctl *advice) []byte {
	out = append(out, `,"next_ms":`...)
	out = strconv.AppendInt(out, ctl.nextMS, 10)
	out = append(out, `,"sample":`...)
	out = api.AppendSample(out, ctl.divisor)
	out = append(out, `,"viewers":`...)
	return strconv.AppendInt(out, ctl.viewers, 10)
}

// writeUnsynced answers a poll for a stream the node has not synced yet: no
// buckets, the client's own cursor back as now (so it skips nothing), and a
// short next_ms. Such an answer is not cacheable.
func (p *Node) writeUnsynced(ctx *fasthttp.RequestCtx, f format, since int64, hasSince bool) {
	if !hasSince {
		h, ok := p.horizonEstimate()
		if !ok {
			api.WriteRetry(ctx, api.ErrUnavailable, 1)
			return
		}
		since = h - defaultBack
	}
	var buf [160]byte
	out := appendHead(buf[:0], f, since, &advice{nextMS: unsyncedNextMS, divisor: 1})
	out = append(out, tails[f][0].Plain...)
	api.WriteJSON(ctx, fasthttp.StatusOK, out)
}

// contentTypes are the Content-Type of each format's answers. A compact
// answer has none: its client knows what it asked for, and on a poll a
// second the header costs a compact viewer 14 bytes through HTTP/2 (32
// over HTTP/1.1), a tenth of an answer.
var contentTypes = [formats][]byte{contentTypeJSON, nil}

// writeBody serves a poll body in format f with the caching headers of
// docs/api.md, or 304 when the client already has it.
func (p *Node) writeBody(ctx *fasthttp.RequestCtx, f format, body *compress.Body) {
	if api.WriteBody(ctx, body, contentTypes[f], pollCacheControl) {
		p.metrics.notModified.Inc()
	}
}

package pull

import (
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
	cachePublic     = []byte("public, max-age=1")
	contentTypeJSON = []byte("application/json")
)

// HandlePoll serves GET /v1/streams/{stream}/reactions?since=T. stream is a
// valid stream id. On a body cache hit it does not allocate.
func (p *Pull) HandlePoll(ctx *fasthttp.RequestCtx, id []byte) {
	since, hasSince, ok := parseSince(ctx.QueryArgs().Peek("since"))
	nowMS := p.opts.Clock.Now().UnixMilli()
	wall := nowMS / 1000
	if !ok || hasSince && since > wall+MaxFuture {
		api.WriteError(ctx, api.ErrInvalidSince)
		return
	}
	st := p.streams.get(id, p.initial, wall)
	if st == nil {
		pollsRefused.Inc()
		api.WriteRetry(ctx, api.ErrOverloaded, 1)
		return
	}
	if st.lastSeen.Load() != wall {
		st.lastSeen.Store(wall)
	}
	if !st.synced() {
		st.presence.poll(nowMS, unsyncedNextMS)
		p.wakeSyncer()
		p.writeUnsynced(ctx, since, hasSince)
		return
	}
	st.presence.poll(nowMS, st.ctl.Load().nextMS)
	now := st.ring.Tail()
	if !hasSince {
		since = now - defaultBack
	}
	slot := slotOf(now, since)
	body := st.bodies.Get(now, slot)
	if body == nil {
		body = st.bodies.Put(now, slot, p.encodeBody(st, now, slot))
		bodiesEncoded.Inc()
	}
	writeBody(ctx, body)
}

// parseSince parses the since parameter: absent is fine, anything but a
// decimal integer is not. It does not allocate.
func parseSince(b []byte) (since int64, present, ok bool) {
	if b == nil {
		return 0, false, true
	}
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, true, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, true, false
		}
		since = since*10 + int64(c-'0')
	}
	if neg {
		since = -since
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

// encodeBody builds the poll body of a slot:
// {"now":..,"next_ms":..,"sample":..,"viewers":..,"buckets":[..]} and
// "gap":true when the cursor is older than the window.
func (p *Pull) encodeBody(st *stream, now int64, slot int) *compress.Body {
	ctl := st.ctl.Load()
	var scratch [ringbuffer.Size]*ringbuffer.Bucket[bucket]
	buckets, lost := st.ring.Range(scratch[:0], now-int64(slot), now)
	size := 96
	for _, b := range buckets {
		size += len(b.Value.json) + 1
	}
	out := make([]byte, 0, size)
	out = append(out, `{"now":`...)
	out = strconv.AppendInt(out, now, 10)
	out = appendControl(out, ctl)
	out = append(out, `,"buckets":[`...)
	for i, b := range buckets {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, b.Value.json...)
	}
	out = append(out, ']')
	if lost {
		out = append(out, `,"gap":true`...)
	}
	out = append(out, '}')
	return compress.NewBody(out)
}

func appendControl(out []byte, ctl *control) []byte {
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
func (p *Pull) writeUnsynced(ctx *fasthttp.RequestCtx, since int64, hasSince bool) {
	if !hasSince {
		since = p.horizonEstimate() - defaultBack
	}
	var buf [160]byte
	out := append(buf[:0], `{"now":`...)
	out = strconv.AppendInt(out, since, 10)
	out = appendControl(out, &control{nextMS: unsyncedNextMS, divisor: 1})
	out = append(out, `,"buckets":[]}`...)
	api.WriteJSON(ctx, fasthttp.StatusOK, out)
}

// writeBody serves a poll body with the caching headers of docs/api.md, or 304
// when the client already has it.
func writeBody(ctx *fasthttp.RequestCtx, body *compress.Body) {
	if api.WriteBody(ctx, body, contentTypeJSON, cachePublic) {
		notModified.Inc()
	}
}

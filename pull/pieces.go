package pull

import (
	"encoding/binary"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/compress"
	"github.com/emojicast/emojicast/ringbuffer"
)

// A poll body is a head, the buckets separated by commas, and a tail, in
// one of two formats (API v1's, and the compact one a client asks for with
// v=2):
//
//	{"now":..,"next_ms":..,"sample":..,"viewers":..,"buckets":[  [now,next_ms,sample,viewers,[
//	{"t":..,..},{"t":..,..}                                       [t,burst,[counts..]],..
//	]} or ],"gap":true}                                           ]] or ],1]
//
// Each part is compressed at most once (a compress.Piece), so a body
// assembled from them costs copies, whatever the cursor. Its identity, the
// tag its ETags are made of, hashes the head, each bucket's own hash and
// the tail: it is computed without building the body, so HEAD never
// encodes anything.

// bodyHead is the head of a stream's bodies for one second and control.
type bodyHead struct {
	now   int64
	ctl   *advice
	plain []byte
	piece atomic.Pointer[compress.Piece]
}

// bucketPieces are a bucket's JSON as pieces: first opens the list, next
// follows a comma.
type bucketPieces struct {
	first, next atomic.Pointer[compress.Piece]
}

// tails are the ends of the bodies of each format: [format][gap].
var tails = [formats][2]*compress.Piece{
	{compress.NewPiece([]byte(`]}`)), compress.NewPiece([]byte(`],"gap":true}`))},
	{compress.NewPiece([]byte(`]]`)), compress.NewPiece([]byte(`],1]`))},
}

// headFor returns the head of st's second now under control ctl in format
// f, building it when the stream's stored one is older. A compact head
// advises at least CompactMinNextMS.
func (p *Node) headFor(st *stream, f format, now int64, ctl *advice) *bodyHead {
	if h := st.head[f].Load(); h != nil && h.now == now && h.ctl == ctl {
		return h
	}
	advised := ctl
	if f == formatCompact && ctl.nextMS < p.opts.CompactMinNextMS {
		c := *ctl
		c.nextMS = p.opts.CompactMinNextMS
		advised = &c
	}
	out := appendHead(make([]byte, 0, 96), f, now, advised)
	h := &bodyHead{now: now, ctl: ctl, plain: out}
	// Two builders of the same second store equal heads: either will do.
	st.head[f].Store(h)
	return h
}

// appendHead appends the head of a body in format f.
func appendHead(out []byte, f format, now int64, ctl *advice) []byte {
	if f == formatV1 {
		out = append(out, `{"now":`...)
		out = strconv.AppendInt(out, now, 10)
		out = appendAudience(out, ctl)
		return append(out, `,"buckets":[`...)
	}
	out = append(out, '[')
	out = strconv.AppendInt(out, now, 10)
	out = append(out, ',')
	out = strconv.AppendInt(out, ctl.nextMS, 10)
	out = append(out, ',')
	out = api.AppendSample(out, ctl.divisor)
	out = append(out, ',')
	out = strconv.AppendInt(out, ctl.viewers, 10)
	return append(out, ",["...)
}

// headPiece returns the head compressed as a piece.
func (h *bodyHead) headPiece(encoded prometheus.Counter) *compress.Piece {
	return storePiece(&h.piece, h.plain, false, encoded)
}

// piece returns the bucket's JSON in format f as a piece, after a comma
// unless first.
func (b *bucket) piece(f format, first bool, encoded prometheus.Counter) *compress.Piece {
	if first {
		return storePiece(&b.pieces[f].first, b.json[f], false, encoded)
	}
	return storePiece(&b.pieces[f].next, b.json[f], true, encoded)
}

// storePiece returns the piece at ptr, compressing plain (after a comma if
// comma) first if there is none. Concurrent first users may both compress;
// every one of them gets the stored piece.
func storePiece(ptr *atomic.Pointer[compress.Piece], plain []byte, comma bool, encoded prometheus.Counter) *compress.Piece {
	if pc := ptr.Load(); pc != nil {
		return pc
	}
	if comma {
		plain = append(append(make([]byte, 0, len(plain)+1), ','), plain...)
	}
	pc := compress.NewPiece(plain)
	encoded.Inc()
	if ptr.CompareAndSwap(nil, pc) {
		return pc
	}
	return ptr.Load()
}

// parts is what a body is made of.
type parts struct {
	f       format
	head    *bodyHead
	buckets []*ringbuffer.Bucket[bucket]
	tail    *compress.Piece
	encoded prometheus.Counter // pieces compressed
}

// bodyParts reads what the body of a slot of st is made of in format f.
func (p *Node) bodyParts(st *stream, scratch []*ringbuffer.Bucket[bucket], f format, now int64, slot int) parts {
	buckets, lost := st.ring.Range(scratch, now-int64(slot), now)
	gap := 0
	if lost {
		gap = 1
	}
	return parts{f: f, head: p.headFor(st, f, now, st.advice.Load()), buckets: buckets, tail: tails[f][gap], encoded: p.metrics.piecesEncoded}
}

// tag is the identity of the body made of the parts.
func (p *parts) tag() uint64 {
	h := fnvAdd(fnvOffset, p.head.plain)
	var b [8]byte
	for _, bk := range p.buckets {
		binary.LittleEndian.PutUint64(b[:], bk.Value.tag[p.f])
		h = fnvAdd(h, b[:])
	}
	return fnvAdd(h, p.tail.Plain)
}

// appendPlain appends the body made of the parts.
func (p *parts) appendPlain(dst []byte) []byte {
	dst = append(dst, p.head.plain...)
	for i, b := range p.buckets {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, b.Value.json[p.f]...)
	}
	return append(dst, p.tail.Plain...)
}

// appendGzip appends the body made of the parts as gzip, assembled from
// their pieces.
func (p *parts) appendGzip(dst []byte) []byte {
	var j compress.GzipJoiner
	dst = j.Start(dst)
	dst = j.Append(dst, p.head.headPiece(p.encoded))
	for i, b := range p.buckets {
		dst = j.Append(dst, b.Value.piece(p.f, i == 0, p.encoded))
	}
	dst = j.Append(dst, p.tail)
	return j.End(dst)
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnvAdd continues a 64-bit FNV-1a hash over b.
func fnvAdd(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// hashOf is the 64-bit FNV-1a hash of b.
func hashOf(b []byte) uint64 { return fnvAdd(fnvOffset, b) }

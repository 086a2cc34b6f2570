package pull

import (
	"encoding/binary"
	"strconv"
	"sync/atomic"

	"github.com/emojicast/emojicast/compress"
	"github.com/emojicast/emojicast/ringbuffer"
)

// A poll body is a head, the buckets separated by commas, and a tail:
//
//	{"now":..,"next_ms":..,"sample":..,"viewers":..,"buckets":[  head
//	{"t":..,..},{"t":..,..}                                       buckets
//	]} or ],"gap":true}                                           tail
//
// Each part is compressed at most once (a compress.Piece), so a body
// assembled from them costs copies, whatever the cursor. Its identity, the
// tag its ETags are made of, hashes the head, each bucket's own hash and
// the tail: it is computed without building the body, so HEAD never
// encodes anything.

// bodyHead is the head of a stream's bodies for one second and control.
type bodyHead struct {
	now   int64
	ctl   *control
	plain []byte
	piece atomic.Pointer[compress.Piece]
}

// bucketPieces are a bucket's JSON as pieces: first opens the list, next
// follows a comma.
type bucketPieces struct {
	first, next atomic.Pointer[compress.Piece]
}

var (
	tailPlain = compress.NewPiece([]byte(`]}`))
	tailGap   = compress.NewPiece([]byte(`],"gap":true}`))
)

// headFor returns the head of second now under control ctl, building it
// when the stream's stored one is older.
func (st *stream) headFor(now int64, ctl *control) *bodyHead {
	if h := st.head.Load(); h != nil && h.now == now && h.ctl == ctl {
		return h
	}
	out := make([]byte, 0, 96)
	out = append(out, `{"now":`...)
	out = strconv.AppendInt(out, now, 10)
	out = appendControl(out, ctl)
	out = append(out, `,"buckets":[`...)
	h := &bodyHead{now: now, ctl: ctl, plain: out}
	// Two builders of the same second store equal heads: either will do.
	st.head.Store(h)
	return h
}

// headPiece returns the head compressed as a piece.
func (h *bodyHead) headPiece() *compress.Piece {
	return storePiece(&h.piece, h.plain, false)
}

// piece returns the bucket's JSON as a piece, after a comma unless first.
func (b *bucket) piece(first bool) *compress.Piece {
	if first {
		return storePiece(&b.pieces.first, b.json, false)
	}
	return storePiece(&b.pieces.next, b.json, true)
}

// storePiece returns the piece at ptr, compressing plain (after a comma if
// comma) first if there is none. Concurrent first users may both compress;
// every one of them gets the stored piece.
func storePiece(ptr *atomic.Pointer[compress.Piece], plain []byte, comma bool) *compress.Piece {
	if pc := ptr.Load(); pc != nil {
		return pc
	}
	if comma {
		plain = append(append(make([]byte, 0, len(plain)+1), ','), plain...)
	}
	pc := compress.NewPiece(plain)
	piecesEncoded.Inc()
	if ptr.CompareAndSwap(nil, pc) {
		return pc
	}
	return ptr.Load()
}

// bodyParts reads what the body of a slot is made of.
func (st *stream) bodyParts(scratch []*ringbuffer.Bucket[bucket], now int64, slot int) (head *bodyHead, buckets []*ringbuffer.Bucket[bucket], tail *compress.Piece) {
	head = st.headFor(now, st.ctl.Load())
	buckets, lost := st.ring.Range(scratch, now-int64(slot), now)
	tail = tailPlain
	if lost {
		tail = tailGap
	}
	return head, buckets, tail
}

// bodyTag is the identity of the body made of the given parts.
func bodyTag(head *bodyHead, buckets []*ringbuffer.Bucket[bucket], tail *compress.Piece) uint64 {
	h := fnvAdd(fnvOffset, head.plain)
	var b [8]byte
	for _, bk := range buckets {
		binary.LittleEndian.PutUint64(b[:], bk.Value.tag)
		h = fnvAdd(h, b[:])
	}
	return fnvAdd(h, tail.Plain)
}

// appendPlain appends the body made of the given parts.
func appendPlain(dst []byte, head *bodyHead, buckets []*ringbuffer.Bucket[bucket], tail *compress.Piece) []byte {
	dst = append(dst, head.plain...)
	for i, b := range buckets {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, b.Value.json...)
	}
	return append(dst, tail.Plain...)
}

// appendGzip appends the body made of the given parts as gzip, assembled
// from their pieces.
func appendGzip(dst []byte, head *bodyHead, buckets []*ringbuffer.Bucket[bucket], tail *compress.Piece) []byte {
	var j compress.GzipJoiner
	dst = j.Start(dst)
	dst = j.Append(dst, head.headPiece())
	for i, b := range buckets {
		dst = j.Append(dst, b.Value.piece(i == 0))
	}
	dst = j.Append(dst, tail)
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

package compress

import (
	"encoding/base64"
	"encoding/binary"
	"hash/fnv"
)

// Body is an encoded response body in its two representations. It is
// immutable once built and safe to share between goroutines.
type Body struct {
	Plain     []byte
	Gzip      []byte // nil when there is none: Plain goes to every client
	PlainETag []byte // strong ETag of Plain, quoted
	GzipETag  []byte // strong ETag of Gzip, quoted
}

// Marks told apart in ETags: a gzip body compressed whole and one assembled
// from pieces have different bytes for the same plain body, so a strong
// validator must differ too.
const (
	MarkPlain  = 0
	MarkGzip   = 'g'
	MarkPieces = 'p'
)

// NewBody encodes plain with gzip and computes both ETags from the body's
// 64-bit FNV-1a hash.
func NewBody(plain []byte) *Body {
	h := fnv.New64a()
	_, _ = h.Write(plain)
	return NewBodyTag(plain, h.Sum64())
}

// NewBodyTag is NewBody with the body's identity given: tag must differ
// for different plain bodies and be the same on every node for the same
// one, so that every node gives a body the same validators.
func NewBodyTag(plain []byte, tag uint64) *Body {
	return &Body{
		Plain:     plain,
		Gzip:      AppendGzip(make([]byte, 0, len(plain)/2+32), plain),
		PlainETag: AppendETag(nil, tag, MarkPlain),
		GzipETag:  AppendETag(nil, tag, MarkGzip),
	}
}

// AppendETag appends the strong ETag of a representation: tag in 11
// base64url characters, then the representation's mark (none for plain),
// quoted. Every byte of a poll answer's headers is paid by every poll.
func AppendETag(dst []byte, tag uint64, mark byte) []byte {
	var raw [8]byte
	binary.BigEndian.PutUint64(raw[:], tag)
	var enc [11]byte
	base64.RawURLEncoding.Encode(enc[:], raw[:])
	dst = append(dst, '"')
	dst = append(dst, enc[:]...)
	if mark != MarkPlain {
		dst = append(dst, mark)
	}
	return append(dst, '"')
}

package compress

import (
	"encoding/base64"
	"hash/fnv"
)

// Body is an encoded response body in its two representations. It is
// immutable once built and safe to share between goroutines.
type Body struct {
	Plain     []byte
	Gzip      []byte
	PlainETag []byte // strong ETag of Plain, quoted
	GzipETag  []byte // strong ETag of Gzip, quoted
}

// NewBody encodes plain with gzip and computes both ETags. The ETags depend
// only on the plain bytes, so every node that builds the same body gives it
// the same validators; the two representations get different ones, as strong
// validators must. A tag is the body's 64-bit FNV-1a hash in 11 base64url
// characters (a trailing g marks gzip): every byte of a poll answer's
// headers is paid by every poll.
func NewBody(plain []byte) *Body {
	h := fnv.New64a()
	_, _ = h.Write(plain)
	var tag [2 + 11 + 1]byte
	tag[0] = '"'
	base64.RawURLEncoding.Encode(tag[1:12], h.Sum(nil))
	tag[12], tag[13] = 'g', '"'
	return &Body{
		Plain:     plain,
		Gzip:      AppendGzip(make([]byte, 0, len(plain)/2+32), plain),
		PlainETag: append(append([]byte(nil), tag[:12]...), '"'),
		GzipETag:  append([]byte(nil), tag[:]...),
	}
}

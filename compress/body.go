package compress

import (
	"hash/fnv"
	"strconv"
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
// validators must.
func NewBody(plain []byte) *Body {
	h := fnv.New64a()
	_, _ = h.Write(plain)
	sum := strconv.FormatUint(h.Sum64(), 36)
	return &Body{
		Plain:     plain,
		Gzip:      AppendGzip(make([]byte, 0, len(plain)/2+32), plain),
		PlainETag: []byte(`"` + sum + `"`),
		GzipETag:  []byte(`"` + sum + `-gz"`),
	}
}

// Package compress encodes response bodies once and serves them as bytes:
// pooled gzip writers (github.com/klauspost/compress), an encoded Body that
// carries its plain and gzip forms with their strong ETags, a Cache of
// bodies for one generation (for pull: one second of one stream), and
// Pieces: parts compressed once that join into gzip bodies by copying.
package compress

import (
	"sync"

	"github.com/klauspost/compress/gzip"
)

// Level is the gzip level bodies are encoded with. Bodies are small and
// encoded once per generation, then served many times, so the best ratio is
// worth its microseconds.
const Level = gzip.BestCompression

// encoder is a gzip writer bound to the slice it appends to. The pair is
// pooled together; its size does not depend on what it encoded, so the pool
// needs no cap.
type encoder struct {
	zw  *gzip.Writer
	dst []byte
}

func (e *encoder) Write(p []byte) (int, error) {
	e.dst = append(e.dst, p...)
	return len(p), nil
}

var encoderPool = sync.Pool{New: func() any {
	e := &encoder{}
	zw, err := gzip.NewWriterLevel(e, Level)
	if err != nil {
		panic("BUG: invalid gzip level: " + err.Error())
	}
	e.zw = zw
	return e
}}

// AppendGzip appends the gzip encoding of src to dst and returns the extended
// slice. The gzip header carries no name and no time, so equal inputs encode
// to equal bytes on every node.
func AppendGzip(dst, src []byte) []byte {
	e := encoderPool.Get().(*encoder)
	e.dst = dst
	e.zw.Reset(e)
	// Writes to an encoder cannot fail, so neither can the gzip writer.
	_, _ = e.zw.Write(src)
	_ = e.zw.Close()
	dst = e.dst
	e.dst = nil // the pool must not keep the caller's slice alive
	encoderPool.Put(e)
	return dst
}

package compress

import (
	"encoding/binary"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Piece is one part of a body compressed once on its own: raw deflate
// blocks that end on a byte boundary (a sync flush) and are not final, so
// that any sequence of pieces concatenates into one valid deflate stream.
// A body assembled from pieces costs a request copies and a CRC, never a
// compression: whatever cursor a poll asks for, its work is the size of
// its answer. Each piece pays about five bytes for its flush and cannot
// refer to the pieces before it, so bodies many viewers share are better
// compressed whole (NewBody). A Piece is immutable and safe to share.
type Piece struct {
	Plain   []byte
	Deflate []byte
}

// NewPiece compresses plain as a piece.
func NewPiece(plain []byte) *Piece {
	return &Piece{Plain: plain, Deflate: AppendDeflate(make([]byte, 0, len(plain)/2+16), plain)}
}

// flateEncoder is a raw deflate writer bound to the slice it appends to,
// pooled as a pair like encoder.
type flateEncoder struct {
	zw  *flate.Writer
	dst []byte
}

func (e *flateEncoder) Write(p []byte) (int, error) {
	e.dst = append(e.dst, p...)
	return len(p), nil
}

var flatePool = sync.Pool{New: func() any {
	e := &flateEncoder{}
	zw, err := flate.NewWriter(e, Level)
	if err != nil {
		panic("BUG: invalid deflate level: " + err.Error())
	}
	e.zw = zw
	return e
}}

// AppendDeflate appends src to dst as raw deflate blocks ending with a sync
// flush and no final block: a piece. Equal inputs encode to equal bytes.
func AppendDeflate(dst, src []byte) []byte {
	e := flatePool.Get().(*flateEncoder)
	e.dst = dst
	e.zw.Reset(e)
	// Writes to a flateEncoder cannot fail, so neither can the writer.
	_, _ = e.zw.Write(src)
	_ = e.zw.Flush()
	dst = e.dst
	e.dst = nil // the pool must not keep the caller's slice alive
	flatePool.Put(e)
	return dst
}

// gzipHeader starts a stream of pieces: deflate, no flags, no time, best
// compression, unknown OS.
var gzipHeader = [10]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff}

// finalBlock is an empty final deflate block with fixed codes: it ends a
// stream of pieces.
var finalBlock = [2]byte{0x03, 0x00}

// GzipJoiner assembles a gzip stream from pieces: Start, Append each piece
// in order, End. Its zero value is ready; it does not allocate beyond dst.
type GzipJoiner struct {
	crc  uint32
	size uint32
}

// Start appends the gzip header.
func (j *GzipJoiner) Start(dst []byte) []byte {
	*j = GzipJoiner{}
	return append(dst, gzipHeader[:]...)
}

// Append appends p's compressed bytes.
func (j *GzipJoiner) Append(dst []byte, p *Piece) []byte {
	j.crc = crc32.Update(j.crc, crc32.IEEETable, p.Plain)
	j.size += uint32(len(p.Plain))
	return append(dst, p.Deflate...)
}

// End appends the final block and the gzip trailer.
func (j *GzipJoiner) End(dst []byte) []byte {
	dst = append(dst, finalBlock[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, j.crc)
	return binary.LittleEndian.AppendUint32(dst, j.size)
}

package pull

import (
	"strconv"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/store"
)

// format is a poll body's format.
type format int

const (
	// formatV1 is API v1's object.
	formatV1 format = iota
	// formatCompact is the compact body a client asks for with v=2: the
	// same answer as arrays, each bucket's counts by the emoji set's order
	// (the order of watch's emojis), its burst as a bit mask. A busy
	// second is about a third of its v1 bytes and needs no gzip.
	formatCompact
	formats
)

// appendCompactBucket appends a second in the compact format:
// [t,burst,[counts..]] or, with comments, [t,burst,[counts..],[u,x,u,x..]].
// counts are by the set's index; trailing zeros are left out, and bit i of
// burst is set when emoji i reached the burst threshold.
func (p *Pull) appendCompactBucket(b []byte, s store.Second, counts []int64) []byte {
	n := len(counts)
	for n > 0 && counts[n-1] == 0 {
		n--
	}
	var burst int64
	for i, c := range counts[:n] {
		if c >= p.opts.BurstThreshold {
			burst |= 1 << i
		}
	}
	b = append(b, '[')
	b = strconv.AppendInt(b, s.Second, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, burst, 10)
	b = append(b, ",["...)
	for i, c := range counts[:n] {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, c, 10)
	}
	b = append(b, ']')
	for i, c := range s.Comments {
		if i == 0 {
			b = append(b, ",["...)
		} else {
			b = append(b, ',')
		}
		b = api.AppendJSONString(b, c.User)
		b = append(b, ',')
		b = api.AppendJSONString(b, c.Text)
	}
	if len(s.Comments) > 0 {
		b = append(b, ']')
	}
	return append(b, ']')
}

// parseFormat reads the v parameter as sent: absent is API v1, "2" the
// compact body; any other spelling is refused, like a cursor's.
func parseFormat(v []byte) (format, bool) {
	switch {
	case v == nil:
		return formatV1, true
	case string(v) == "2":
		return formatCompact, true
	}
	return 0, false
}

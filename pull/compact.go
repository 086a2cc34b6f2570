package pull

import (
	"slices"
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
// [t,burst,[counts..]], and when it has comments or retractions
// [t,burst,[counts..],[u,x,u,x..],[id,id..]], then [rid,..] when it has
// retractions. counts are by the set's index; trailing zeros are left out,
// and bit i of burst is set when emoji i reached the burst threshold. The
// ids are the comments' in their order ("" for one without), so that an
// older reader of [u,x,..] alone still reads the comments right. A
// comment the same second retracts is left out, as in v1.
func (p *Node) appendCompactBucket(b []byte, s store.Second, counts []int64) []byte {
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
	shown := func(c store.Comment) bool { return c.ID == "" || !slices.Contains(s.Retracted, c.ID) }
	if len(s.Retracted) > 0 || slices.ContainsFunc(s.Comments, shown) {
		b = appendCompactComments(b, s.Comments, shown)
	}
	if len(s.Retracted) > 0 {
		b = append(b, ",["...)
		for i, id := range s.Retracted {
			if i > 0 {
				b = append(b, ',')
			}
			b = api.AppendJSONString(b, id)
		}
		b = append(b, ']')
	}
	return append(b, ']')
}

// appendCompactComments appends ,[u,x,u,x..],[id,id..] of the comments
// shown says to keep.
func appendCompactComments(b []byte, comments []store.Comment, shown func(store.Comment) bool) []byte {
	b = append(b, ",["...)
	first := true
	for _, c := range comments {
		if !shown(c) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = api.AppendJSONString(b, c.User)
		b = append(b, ',')
		b = api.AppendJSONString(b, c.Text)
	}
	b = append(b, "],["...)
	first = true
	for _, c := range comments {
		if !shown(c) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = api.AppendJSONString(b, c.ID)
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

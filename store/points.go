package store

import (
	"fmt"
	"strconv"
)

// A shard's data-point stream ({p:k}:points) holds one record per reaction
// count, comment and retraction a push node's batch wrote, in the order the
// shard's writes happened: what the archiver (package archive) drains into
// PostgreSQL, and analytics jobs read. docs/operations.md lists the fields.

// PointKind tells the records of a data-point stream apart.
type PointKind uint8

// The kinds of data point.
const (
	PointCount      PointKind = iota + 1 // reactions of one emoji
	PointComment                         // a comment, published in second At
	PointRetraction                      // a takedown of comment ID, listed in second At
)

// Point is one record of a data-point stream.
type Point struct {
	Kind   PointKind
	Stream string
	// Second is the second the push node accepted the reactions or comment
	// in; At the second viewers and History got them in: later when they
	// were carried past a sealed second or spilled past a full one.
	Second, At int64
	Emoji      string // PointCount
	Count      int64  // PointCount
	Comment    Comment
	Index      int64 // PointComment: its place among its second's comments
}

// PointsKey returns the data-point stream of shard k under prefix (the
// store's RedisOptions.Prefix).
func PointsKey(prefix string, k int) string {
	return "{" + prefix + ":" + strconv.Itoa(k) + "}:points"
}

// ShardOf returns the shard of a stream.
func ShardOf(stream string) int { return shard(stream) }

// ParsePoint decodes the fields of a data-point record as go-redis reads
// them.
func ParsePoint(values map[string]any) (Point, error) {
	str := func(name string) string { s, _ := values[name].(string); return s }
	num := func(name string) (int64, error) {
		v, err := strconv.ParseInt(str(name), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("data point field %s is %q", name, str(name))
		}
		return v, nil
	}
	p := Point{Stream: str("stream")}
	var err error
	if p.Second, err = num("second"); err != nil {
		return Point{}, err
	}
	p.At = p.Second
	if _, ok := values["at"]; ok {
		if p.At, err = num("at"); err != nil {
			return Point{}, err
		}
	}
	switch {
	case values["emoji"] != nil:
		p.Kind, p.Emoji = PointCount, str("emoji")
		p.Count, err = num("count")
	case values["comment"] != nil:
		p.Kind = PointComment
		var ok bool
		if p.Comment, ok = parseCommentEntry(str("comment")); !ok {
			return Point{}, fmt.Errorf("data point comment %q is not user:text", str("comment"))
		}
		p.Index, err = num("i")
	case values["retract"] != nil:
		p.Kind, p.Comment.ID = PointRetraction, str("retract")
	default:
		return Point{}, fmt.Errorf("data point %v has no emoji, comment or retraction", values)
	}
	if err != nil {
		return Point{}, err
	}
	if p.Stream == "" {
		return Point{}, fmt.Errorf("data point %v has no stream", values)
	}
	return p, nil
}

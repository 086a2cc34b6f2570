package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// historyKey returns the history hash of a stream's minute.
func (r *Redis) historyKey(stream string, minute int64) string {
	return r.tags[shard(stream)] + "h:" + stream + ":" + strconv.FormatInt(minute, 10)
}

func minuteOf(sec int64) int64 {
	m := sec / 60
	if sec < 0 && sec%60 != 0 {
		m--
	}
	return m
}

// History implements Store. It reads the horizon first, seals the stream's
// shard through it, then reads the at most 61 minute hashes of the range,
// pipelined: a second at or before that horizon was sealed before the
// hashes were read, and sealed seconds never change, so what it returns as
// sealed is final. Plain HGETALLs, not one
// script, so that Redis serves other clients between the hashes of a busy
// hour.
func (r *Redis) History(ctx context.Context, stream string, from, to int64) (History, error) {
	if to-from+1 > MaxHistoryRange {
		return History{}, fmt.Errorf("history range [%d, %d] is longer than %d s", from, to, MaxHistoryRange)
	}
	horizon, err := r.Horizon(ctx)
	if err != nil {
		return History{}, err
	}
	hist := History{Horizon: horizon}
	to = min(to, horizon)
	if to < from {
		return hist, nil
	}
	// Seal the stream's shard through the horizon, as Collect does, so
	// that no late write lands in a second returned as sealed.
	k := shard(stream)
	if err := r.sealShards(ctx, []int{k}, horizon); err != nil {
		return History{}, fmt.Errorf("cannot read the history of %s: %w", stream, err)
	}
	first, last := minuteOf(from), minuteOf(to)
	cmds := make([]*redis.MapStringStringCmd, 0, last-first+1)
	var retracted *redis.StringSliceCmd
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for m := first; m <= last; m++ {
			cmds = append(cmds, p.HGetAll(ctx, r.historyKey(stream, m)))
		}
		retracted = r.historyRetracted(ctx, p, stream, from)
		return nil
	})
	if err != nil {
		return History{}, fmt.Errorf("cannot read the history of %s: %w", stream, err)
	}
	for i, cmd := range cmds {
		secs, err := parseHistoryMinute(stream, first+int64(i), from, to, cmd.Val())
		if err != nil {
			return History{}, fmt.Errorf("cannot read the history of %s: %w", stream, err)
		}
		hist.Seconds = append(hist.Seconds, secs...)
	}
	hist.Seconds = dropRetracted(hist.Seconds, retracted.Val())
	return hist, nil
}

// parseHistoryMinute decodes one history hash, keeping its seconds in
// [from, to], oldest first.
func parseHistoryMinute(stream string, minute, from, to int64, fields map[string]string) ([]Second, error) {
	var secs [60]*Second
	var comments [60][]indexedComment
	base := minute * 60
	for field, value := range fields {
		sep := strings.IndexAny(field, ":#")
		if sep < 0 {
			return nil, fmt.Errorf("history field %q has no second", field)
		}
		off, err := strconv.Atoi(field[:sep])
		if err != nil || off < 0 || off >= 60 {
			return nil, fmt.Errorf("history field %q has no second", field)
		}
		sec := base + int64(off)
		if sec < from || sec > to {
			continue
		}
		if secs[off] == nil {
			secs[off] = &Second{Stream: stream, Second: sec, Counts: []Count{}}
		}
		if field[sep] == ':' {
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("history count %q is %q", field, value)
			}
			secs[off].Counts = append(secs[off].Counts, Count{Emoji: field[sep+1:], N: n})
			continue
		}
		idx, err := strconv.Atoi(field[sep+1:])
		c, ok := parseCommentEntry(value)
		if err != nil || !ok {
			return nil, fmt.Errorf("history comment %q is %q", field, value)
		}
		comments[off] = append(comments[off], indexedComment{idx, c})
	}
	var out []Second
	for off, s := range secs {
		if s == nil {
			continue
		}
		slices.SortFunc(s.Counts, func(a, b Count) int { return cmp.Compare(a.Emoji, b.Emoji) })
		slices.SortFunc(comments[off], func(a, b indexedComment) int { return cmp.Compare(a.i, b.i) })
		for _, c := range comments[off] {
			s.Comments = append(s.Comments, c.Comment)
		}
		out = append(out, *s)
	}
	return out, nil
}

type indexedComment struct {
	i int
	Comment
}

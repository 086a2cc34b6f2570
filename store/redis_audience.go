package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The control figures of a stream live in one hash under its shard's tag:
//
//	{p:k}:ctl:<stream>  v:<node> -> "<viewers> <unix ms>", k -> divisor,
//	                    kt -> <unix ms> of the last report, kp -> the divisor
//	                    k replaced, kpt -> <unix ms> it was replaced;
//	                    TTL DivisorTTL
//
// A node's report overwrites its own field; readers sum the fields younger
// than AudienceTTL and delete older ones, so nodes that went away drop out.

func (r *Redis) controlKey(stream string) string {
	return r.tags[shard(stream)] + "ctl:" + stream
}

// now is the time control figures are stamped and judged with.
func (r *Redis) now() time.Time {
	if r.opts.Clock != nil {
		return r.opts.Clock.Now()
	}
	return time.Now()
}

// ReportAudience implements Store.
func (r *Redis) ReportAudience(ctx context.Context, node string, reports []AudienceReport) error {
	if len(reports) == 0 {
		return nil
	}
	ms := strconv.FormatInt(r.now().UnixMilli(), 10)
	pipe := r.client.Pipeline()
	for _, rep := range reports {
		key := r.controlKey(rep.Stream)
		// Every report stamps kt, so a steady divisor lives as long as
		// the stream is reported.
		fields := []any{"v:" + node, strconv.FormatInt(rep.Viewers, 10) + " " + ms, "kt", ms}
		if rep.Divisor > 0 {
			fields = append(fields, "k", rep.Divisor)
			if rep.Previous > 0 {
				fields = append(fields, "kp", rep.Previous, "kpt", ms)
			}
		}
		pipe.HSet(ctx, key, fields...)
		pipe.PExpire(ctx, key, DivisorTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("cannot report control figures: %w", err)
	}
	return nil
}

// Audience implements Store.
func (r *Redis) Audience(ctx context.Context, streams []string) ([]Audience, error) {
	out := make([]Audience, len(streams))
	if len(streams) == 0 {
		return out, nil
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(streams))
	for i, s := range streams {
		cmds[i] = pipe.HGetAll(ctx, r.controlKey(s))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("cannot read control figures: %w", err)
	}
	now := r.now()
	var prune redis.Pipeliner
	for i, cmd := range cmds {
		stale := r.sumAudience(cmd.Val(), now, &out[i])
		if len(stale) > 0 {
			if prune == nil {
				prune = r.client.Pipeline()
			}
			prune.HDel(ctx, r.controlKey(streams[i]), stale...)
		}
	}
	if prune != nil {
		// Pruning is housekeeping: a failure leaves fields the next read
		// skips and deletes again.
		_, _ = prune.Exec(ctx)
	}
	return out, nil
}

// sumAudience folds one stream's hash into c and returns its stale fields.
func (r *Redis) sumAudience(h map[string]string, now time.Time, c *Audience) (stale []string) {
	c.Divisor = 1
	if k, err := strconv.ParseInt(h["k"], 10, 64); err == nil && k > 0 && fresh(h["kt"], now, DivisorTTL) {
		c.Divisor = k
		if kp, err := strconv.ParseInt(h["kp"], 10, 64); err == nil && kp > 0 && kp != k && fresh(h["kpt"], now, RecentFor) {
			c.Previous = kp
		}
	}
	for field, v := range h {
		if !strings.HasPrefix(field, "v:") {
			continue
		}
		viewers, at, ok := strings.Cut(v, " ")
		n, err := strconv.ParseInt(viewers, 10, 64)
		if !ok || err != nil || !fresh(at, now, AudienceTTL) {
			stale = append(stale, field)
			continue
		}
		c.Viewers += n
	}
	return stale
}

// fresh reports whether a Unix-milliseconds stamp is within ttl of now.
func fresh(stamp string, now time.Time, ttl time.Duration) bool {
	ms, err := strconv.ParseInt(stamp, 10, 64)
	return err == nil && now.Sub(time.UnixMilli(ms)) <= ttl
}

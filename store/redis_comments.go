package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The push fleet's comment figures:
//
//	{p:0}:pushers          sorted set push node -> Unix ms of its last report
//	{p:k}:ml:<stream>      hash push node -> "<offered> <unix ms>"
//
// both expiring 2 * CommentLoadTTL after the last report. Readers skip and
// delete what is older than CommentLoadTTL.

func (r *Redis) pushersKey() string { return r.tags[0] + "pushers" }

func (r *Redis) commentLoadKey(stream string) string {
	return r.tags[shard(stream)] + "ml:" + stream
}

// ReportComments implements Store.
func (r *Redis) ReportComments(ctx context.Context, node string, reports []CommentReport) error {
	now := r.now().UnixMilli()
	ms := strconv.FormatInt(now, 10)
	pipe := r.client.Pipeline()
	pipe.ZAdd(ctx, r.pushersKey(), redis.Z{Score: float64(now), Member: node})
	pipe.ZRemRangeByScore(ctx, r.pushersKey(), "-inf", "("+strconv.FormatInt(now-CommentLoadTTL.Milliseconds(), 10))
	pipe.PExpire(ctx, r.pushersKey(), 2*CommentLoadTTL)
	for _, rep := range reports {
		key := r.commentLoadKey(rep.Stream)
		pipe.HSet(ctx, key, node, strconv.FormatInt(rep.Offered, 10)+" "+ms)
		pipe.PExpire(ctx, key, 2*CommentLoadTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("cannot report comment load: %w", err)
	}
	return nil
}

// CommentLoad implements Store.
func (r *Redis) CommentLoad(ctx context.Context, streams []string) (CommentLoad, error) {
	now := r.now()
	pipe := r.client.Pipeline()
	nodes := pipe.ZRangeByScore(ctx, r.pushersKey(), &redis.ZRangeBy{
		Min: strconv.FormatInt(now.Add(-CommentLoadTTL).UnixMilli(), 10), Max: "+inf",
	})
	cmds := make([]*redis.MapStringStringCmd, len(streams))
	for i, s := range streams {
		cmds[i] = pipe.HGetAll(ctx, r.commentLoadKey(s))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return CommentLoad{}, fmt.Errorf("cannot read comment load: %w", err)
	}
	out := CommentLoad{Nodes: nodes.Val(), Streams: make([][]NodeLoad, len(streams))}
	slices.Sort(out.Nodes)
	var prune redis.Pipeliner
	for i, cmd := range cmds {
		var stale []string
		for node, v := range cmd.Val() {
			offered, at, ok := strings.Cut(v, " ")
			n, err := strconv.ParseInt(offered, 10, 64)
			if !ok || err != nil || !fresh(at, now, CommentLoadTTL) {
				stale = append(stale, node)
				continue
			}
			out.Streams[i] = append(out.Streams[i], NodeLoad{Node: node, Offered: n})
		}
		slices.SortFunc(out.Streams[i], func(a, b NodeLoad) int { return strings.Compare(a.Node, b.Node) })
		if len(stale) > 0 {
			if prune == nil {
				prune = r.client.Pipeline()
			}
			prune.HDel(ctx, r.commentLoadKey(streams[i]), stale...)
		}
	}
	if prune != nil {
		// Housekeeping, as in Control: a failure leaves fields the next
		// read skips and deletes again.
		_, _ = prune.Exec(ctx)
	}
	return out, nil
}

package store

import (
	"context"
	_ "embed"
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
// delete what is older than CommentLoadTTL. The times are Redis's (TIME),
// stamped and judged by scripts on the node that holds the key, never a
// push node's clock: a push node whose clock is seconds off would drop out
// of the others' live fleet, or linger in it, and the comment budget's
// seats would no longer add up to the budget.

func (r *Redis) pushersKey() string { return r.tags[0] + "pushers" }

func (r *Redis) commentLoadKey(stream string) string {
	return r.tags[shard(stream)] + "ml:" + stream
}

var (
	//go:embed redis_comment_report.lua
	commentReportSource string
	commentReportScript = redis.NewScript(commentReportSource)
	//go:embed redis_comment_load.lua
	commentLoadSource string
	commentLoadScript = redis.NewScript(commentLoadSource)
)

// commentCalls groups the indexes of streams by shard into script calls of
// at most maxLimitKeysPerCall keys each; the first call is shard 0's and
// carries the fleet's set, so there is one even with no streams. args
// returns a call's arguments after its keys are known.
func (r *Redis) commentCalls(streams []string, args func(fleet bool, idx []int) []any) ([]scriptCall, [][]int) {
	var byShard [RedisShards][]int
	for i, s := range streams {
		k := shard(s)
		byShard[k] = append(byShard[k], i)
	}
	var calls []scriptCall
	var order [][]int
	add := func(fleet bool, part []int) {
		c := scriptCall{args: args(fleet, part)}
		if fleet {
			c.keys = append(c.keys, r.pushersKey())
		}
		for _, i := range part {
			c.keys = append(c.keys, r.commentLoadKey(streams[i]))
		}
		calls = append(calls, c)
		order = append(order, part)
	}
	for k, idx := range byShard {
		fleet := k == 0
		for fleet || len(idx) > 0 {
			part := idx[:min(len(idx), maxLimitKeysPerCall)]
			idx = idx[len(part):]
			add(fleet, part)
			fleet = false
		}
	}
	return calls, order
}

// luaFlag is a bool as the comment scripts take it.
func luaFlag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// ReportComments implements Store: one script call per shard, pipelined.
func (r *Redis) ReportComments(ctx context.Context, node string, reports []CommentReport) error {
	streams := make([]string, len(reports))
	for i, rep := range reports {
		streams[i] = rep.Stream
	}
	calls, _ := r.commentCalls(streams, func(fleet bool, idx []int) []any {
		args := []any{node, CommentLoadTTL.Milliseconds(), luaFlag(fleet)}
		for _, i := range idx {
			args = append(args, reports[i].Offered)
		}
		return args
	})
	if _, err := r.runAll(ctx, commentReportScript, calls); err != nil {
		return fmt.Errorf("cannot report comment load: %w", err)
	}
	return nil
}

// CommentLoad implements Store: one script call per shard, pipelined.
func (r *Redis) CommentLoad(ctx context.Context, streams []string) (CommentLoad, error) {
	calls, order := r.commentCalls(streams, func(fleet bool, _ []int) []any {
		return []any{CommentLoadTTL.Milliseconds(), luaFlag(fleet)}
	})
	cmds, err := r.runAll(ctx, commentLoadScript, calls)
	if err != nil {
		return CommentLoad{}, fmt.Errorf("cannot read comment load: %w", err)
	}
	out := CommentLoad{Streams: make([][]NodeLoad, len(streams))}
	for c, cmd := range cmds {
		nodes, loads, err := commentLoadReply(cmd, len(order[c]))
		if err != nil {
			return CommentLoad{}, fmt.Errorf("cannot read comment load: %w", err)
		}
		for _, n := range nodes {
			if s, ok := n.(string); ok {
				out.Nodes = append(out.Nodes, s)
			}
		}
		for j, i := range order[c] {
			fields, _ := loads[j].([]any)
			for f := 0; f+1 < len(fields); f += 2 {
				node, _ := fields[f].(string)
				v, _ := fields[f+1].(string)
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return CommentLoad{}, fmt.Errorf("cannot read comment load: %s offered %q for %s", node, v, streams[i])
				}
				out.Streams[i] = append(out.Streams[i], NodeLoad{Node: node, Offered: n})
			}
			slices.SortFunc(out.Streams[i], func(a, b NodeLoad) int { return strings.Compare(a.Node, b.Node) })
		}
	}
	slices.Sort(out.Nodes)
	return out, nil
}

// commentLoadReply reads the load script's answer: the live nodes, and the
// node/offered pairs of each of the call's n streams.
func commentLoadReply(cmd *redis.Cmd, n int) (nodes, loads []any, err error) {
	reply, err := cmd.Slice()
	if err == nil && len(reply) == 2 {
		nodes, _ = reply[0].([]any)
		loads, _ = reply[1].([]any)
	}
	if err != nil || len(loads) != n {
		return nil, nil, replyError(cmd, err)
	}
	return nodes, loads, nil
}

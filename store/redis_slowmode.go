package store

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// SlowModeTake asks for a user's turn to comment on a stream in slow mode.
type SlowModeTake struct {
	Stream string
	User   string
	Period time.Duration // the stream's slow mode, at least a millisecond
}

var (
	//go:embed redis_slowmode.lua
	slowModeSource string
	slowModeScript = redis.NewScript(slowModeSource)
)

// TakeSlowMode implements SlowModeSharer: one script call per shard the
// takes touch, all in one pipeline. A turn is the key
// {prefix:k}:sm:<stream>:<user> (stream ids hold no ':'), which expires
// when the period passes.
func (r *Redis) TakeSlowMode(ctx context.Context, takes []SlowModeTake) ([]time.Duration, error) {
	out := make([]time.Duration, len(takes))
	if len(takes) == 0 {
		return out, nil
	}
	var byShard [RedisShards][]int
	for i, tk := range takes {
		s := shard(tk.Stream)
		byShard[s] = append(byShard[s], i)
	}
	var calls []scriptCall
	var order [][]int
	for s, idx := range byShard {
		if len(idx) == 0 {
			continue
		}
		c := scriptCall{keys: make([]string, len(idx)), args: make([]any, len(idx))}
		for j, i := range idx {
			c.keys[j] = r.tags[s] + "sm:" + takes[i].Stream + ":" + takes[i].User
			c.args[j] = max(takes[i].Period.Milliseconds(), 1)
		}
		calls = append(calls, c)
		order = append(order, idx)
	}
	cmds, err := r.runAll(ctx, slowModeScript, calls)
	if err != nil {
		return nil, fmt.Errorf("cannot take slow-mode turns: %w", err)
	}
	for c, cmd := range cmds {
		waits, err := int64Reply(cmd, len(order[c]))
		if err != nil {
			return nil, fmt.Errorf("cannot take slow-mode turns: %w", err)
		}
		for j, i := range order[c] {
			out[i] = time.Duration(waits[j]) * time.Millisecond
		}
	}
	return out, nil
}

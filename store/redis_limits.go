package store

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// LimitUse is what one key used on a process that the fleet has not heard
// of, in the process's clock.
type LimitUse struct {
	Used  int64 // nanoseconds of allowance taken
	Since int64 // Unix nanoseconds from which Used was taken: it is charged from then
}

var (
	//go:embed redis_limits.lua
	limitsSource string
	limitsScript = redis.NewScript(limitsSource)
)

// maxLimitKeysPerCall bounds the keys of one script call, so one call
// never holds Redis for long.
const maxLimitKeysPerCall = 512

// ShareLimits implements LimitSharer: one script call per shard (and per
// maxLimitKeysPerCall keys), all in one pipeline, timed by Redis's clock.
// Keys live under the shard's hash tag as {prefix:k}:rl:<kind>:<key>.
func (r *Redis) ShareLimits(ctx context.Context, kind string, now time.Time, keys []string, uses []LimitUse) ([]int64, error) {
	out := make([]int64, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var byShard [RedisShards][]int
	for i, k := range keys {
		s := shard(k)
		byShard[s] = append(byShard[s], i)
	}
	var calls []scriptCall
	var order [][]int
	for s, idx := range byShard {
		for len(idx) > 0 {
			part := idx[:min(len(idx), maxLimitKeysPerCall)]
			idx = idx[len(part):]
			c := scriptCall{keys: make([]string, len(part)), args: make([]any, 0, 2*len(part))}
			for j, i := range part {
				c.keys[j] = r.tags[s] + "rl:" + kind + ":" + keys[i]
				// Durations, not times: Redis's clock is not the caller's.
				u := uses[i]
				c.args = append(c.args, (u.Used+999)/1000, max(0, now.UnixNano()-u.Since)/1000)
			}
			calls = append(calls, c)
			order = append(order, part)
		}
	}
	cmds, err := r.runAll(ctx, limitsScript, calls)
	if err != nil {
		return nil, fmt.Errorf("cannot share %s limits: %w", kind, err)
	}
	for c, cmd := range cmds {
		debts, err := int64Reply(cmd, len(order[c]))
		if err != nil {
			return nil, fmt.Errorf("cannot share %s limits: %w", kind, err)
		}
		// Redis answers on its own clock, as what each key owes from its
		// now: from the caller's now, in the caller's clock.
		for j, i := range order[c] {
			out[i] = now.UnixNano() + debts[j]*1000
		}
	}
	return out, nil
}

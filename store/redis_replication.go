package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// confirm returns once the writes made so far on the masters of the shards
// ks are on MinReplicas replicas each, or an error when WAIT does not
// confirm that within ReplicaTimeout. WAIT counts the writes of its own
// connection, so on each master it follows a write of its own: the
// replication stream is in order, so a replica that has it has every write
// before it.
func (r *Redis) confirm(ctx context.Context, ks []int) error {
	if r.opts.MinReplicas <= 0 || len(ks) == 0 {
		return nil
	}
	type node struct {
		c   redis.Cmdable
		key string
	}
	var nodes []node
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		seen := map[string]bool{}
		for _, k := range ks {
			key := r.tags[k] + "ack"
			n, err := cc.MasterForKey(ctx, key)
			if err != nil {
				return fmt.Errorf("cannot find the master of shard %d: %w", k, err)
			}
			if addr := n.Options().Addr; !seen[addr] {
				seen[addr] = true
				nodes = append(nodes, node{n, key})
			}
		}
	} else {
		nodes = []node{{r.client, r.tags[ks[0]] + "ack"}}
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			var wait *redis.Cmd
			_, err := n.c.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, n.key, "1", time.Minute)
				wait = p.Do(ctx, "WAIT", r.opts.MinReplicas, r.opts.ReplicaTimeout.Milliseconds())
				return nil
			})
			if err == nil {
				var got int64
				if got, err = wait.Int64(); err == nil && got < int64(r.opts.MinReplicas) {
					err = fmt.Errorf("%w: %d of %d within %v", ErrNotReplicated, got, r.opts.MinReplicas, r.opts.ReplicaTimeout)
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		r.metrics.replicaWaitFailures.Inc()
		return err
	}
	return nil
}

// ErrNotReplicated is the error of a write Redis took but not enough
// replicas confirmed in time: it may be lost in a failover, so the writer
// keeps it and writes it again (a batch is added once per ID).
var ErrNotReplicated = errors.New("not confirmed by enough replicas")

package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Horizon implements Store. It asks Redis even with a manual clock, so an
// unreachable Redis shows as an error either way.
func (r *Redis) Horizon(ctx context.Context) (int64, error) {
	h, err := horizonScript.Run(ctx, r.client, []string{r.tags[0] + "active"}, r.nowArg(), r.sealMillis()).Int64()
	if err != nil {
		return 0, fmt.Errorf("cannot read the horizon: %w", err)
	}
	return h, nil
}

// Collect implements Store.
//
// It takes the horizon from the clock (Horizon), then seals each shard with
// cursors up to it (pipelined, one command per shard), then lists, from the
// shard's index, the streams written since the shard's oldest cursor, at
// most one more than the node serves in that shard (pipelined). Once a shard is
// sealed, no write changes its seconds up to the horizon (Add carries late
// ones past the seal, on the same node), so they are read afterwards: only
// the served streams among those listed, or, when more were written than
// the node serves there, the served streams looked up in the index. Either
// way the index work grows with the smaller of the two sets and the count
// reads with the served streams that had reactions.
func (r *Redis) Collect(ctx context.Context, cursors []Cursor) (Collection, error) {
	horizon, err := r.Horizon(ctx)
	if err != nil {
		return Collection{}, err
	}
	var shards [RedisShards]shardCursors
	shardOf := make([]int, len(cursors)) // for putting replies back in cursor order
	for i, cur := range cursors {
		k := shard(cur.Stream)
		shardOf[i] = k
		shards[k].add(cur.Stream, max(cur.After, horizon-Window))
	}
	if err := r.seal(ctx, &shards, horizon); err != nil {
		return Collection{}, fmt.Errorf("cannot collect seconds: %w", err)
	}
	if err := r.lookUpServed(ctx, &shards); err != nil {
		return Collection{}, fmt.Errorf("cannot collect seconds: %w", err)
	}
	var calls []scriptCall
	var reads []streamSecond // the second of each key pair of each call, in order
	var callOf [RedisShards][]int
	for k := range shards {
		var keys []string
		flush := func() {
			if len(keys) > 0 {
				callOf[k] = append(callOf[k], len(calls))
				calls = append(calls, scriptCall{keys: keys})
				keys = nil
			}
		}
		tag := r.tags[k]
		for i, stream := range shards[k].streams {
			newest, ok := shards[k].newest(i)
			if !ok {
				continue
			}
			for sec := shards[k].after[i] + 1; sec <= min(newest, horizon); sec++ {
				s := strconv.FormatInt(sec, 10)
				keys = append(keys, tag+"c:"+stream+":"+s, tag+"m:"+stream+":"+s)
				reads = append(reads, streamSecond{stream: stream, second: sec})
				if len(keys) >= 2*collectChunk {
					flush()
				}
			}
		}
		flush()
	}
	replies, err := r.readSealed(ctx, calls, reads)
	if err != nil {
		return Collection{}, fmt.Errorf("cannot collect seconds: %w", err)
	}
	// Each shard's replies are in its cursors' order, so taking from the
	// front of the cursor's shard's replies rebuilds the cursor order.
	c := Collection{Horizon: horizon}
	for i, cur := range cursors {
		for _, call := range callOf[shardOf[i]] {
			rep := &replies[call]
			for len(*rep) > 0 && (*rep)[0].Stream == cur.Stream {
				c.Seconds = append(c.Seconds, (*rep)[0])
				*rep = (*rep)[1:]
			}
		}
	}
	return c, nil
}

// collectChunk bounds the seconds one collect script reads, so that Redis
// serves other clients between the chunks of a first sync of many streams.
// Sealed seconds are final, so the chunks need not be read atomically.
const collectChunk = 512

// shardCursors are the cursors of one shard, with what its index said.
type shardCursors struct {
	streams []string
	after   []int64
	oldest  int64
	written map[string]int64 // newest second of the streams written since oldest
	served  []int64          // newest second of each served stream when more were written than served, -1 for none
}

func (sc *shardCursors) add(stream string, after int64) {
	if len(sc.streams) == 0 || after < sc.oldest {
		sc.oldest = after
	}
	sc.streams = append(sc.streams, stream)
	sc.after = append(sc.after, after)
}

// newest returns the newest second written to the i-th stream, if it is
// after its cursor.
func (sc *shardCursors) newest(i int) (int64, bool) {
	var n int64
	var ok bool
	if sc.served != nil {
		n, ok = sc.served[i], sc.served[i] >= 0
	} else {
		n, ok = sc.written[sc.streams[i]]
	}
	return n, ok && n > sc.after[i]
}

// seal seals every shard with cursors through horizon, then reads from
// its index the streams written after its oldest cursor, up to one more
// than the shard's cursors. The seal and the index read are two steps of
// one key each, so that a slot being migrated answers them (ASK) instead
// of TRYAGAIN: the shard's writes are what wait meanwhile, since each of
// them needs all its keys on one node.
func (r *Redis) seal(ctx context.Context, shards *[RedisShards]shardCursors, horizon int64) error {
	var ks []int
	for k := range shards {
		if len(shards[k].streams) > 0 {
			ks = append(ks, k)
		}
	}
	if err := r.sealShards(ctx, ks, horizon); err != nil {
		return err
	}
	var zs [RedisShards]*redis.ZSliceCmd
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range ks {
			zs[k] = p.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
				Key: r.tags[k] + "active", ByScore: true,
				Start: "(" + strconv.FormatInt(shards[k].oldest, 10), Stop: "+inf", Count: int64(len(shards[k].streams)) + 1,
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range ks {
		written := zs[k].Val()
		if len(written) > len(shards[k].streams) {
			continue // more written than served: lookUpServed asks for the served ones
		}
		shards[k].written = make(map[string]int64, len(written))
		for _, z := range written {
			if m, ok := z.Member.(string); ok {
				shards[k].written[m] = int64(z.Score)
			}
		}
	}
	return nil
}

// sealShards moves the seal of the shards ks forward to horizon, and with
// MinReplicas returns once the seals are on the replicas. A seal is the
// score of the one member of a sorted set, so ZADD GT moves it forward
// only, in one command of one key; its TTL is renewed by each node at most
// once a minute (a seal created without one gets it within that minute).
// redis_add.lua reads the seal on the same node, in the same slot, and
// carries a write for a second at or before it into the next one, so once
// sealShards returns every second up to horizon is final on these shards,
// whatever any clock says, and may be read in any number of steps.
func (r *Redis) sealShards(ctx context.Context, ks []int, horizon int64) error {
	now := time.Now().Unix()
	var renew []int
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range ks {
			key := r.tags[k] + "sealed"
			p.ZAddGT(ctx, key, redis.Z{Score: float64(horizon), Member: sealMember})
			if last := r.sealRenewed[k].Load(); now-last >= 60 {
				p.Expire(ctx, key, sealTTL)
				renew = append(renew, k)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range renew {
		r.sealRenewed[k].Store(now)
	}
	for _, k := range ks {
		r.sawSeal(k, horizon)
	}
	return r.confirm(ctx, ks)
}

// sealMember is the one member of a shard's seal.
const sealMember = "s"

// lookUpServed asks the index of each shard whose index listed more
// streams than the node serves there for the served streams' newest
// seconds, pipelined. The shards are sealed, so what it reads is final up
// to the horizon.
func (r *Redis) lookUpServed(ctx context.Context, shards *[RedisShards]shardCursors) error {
	var cmds [RedisShards]*redis.FloatSliceCmd
	need := false
	for k := range shards {
		if len(shards[k].streams) > 0 && shards[k].written == nil {
			need = true
		}
	}
	if !need {
		return nil
	}
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range shards {
			if len(shards[k].streams) > 0 && shards[k].written == nil {
				cmds[k] = p.ZMScore(ctx, r.tags[k]+"active", shards[k].streams...)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for k, cmd := range cmds {
		if cmd == nil {
			continue
		}
		served := make([]int64, len(shards[k].streams))
		for i, v := range cmd.Val() {
			served[i] = -1
			if v != 0 {
				served[i] = int64(v)
			}
		}
		shards[k].served = served
	}
	return nil
}

// sealTTL is how long a shard's seal outlives the last Collect of the
// shard. Without a seal, Add decides what is sealed by the clock.
const sealTTL = 24 * time.Hour

// readSealed runs the collect calls, pipelined, and returns each call's
// non-empty seconds; reads are the seconds of the calls' key pairs, in
// order. A call that a migrating slot answers TRYAGAIN (its keys are split
// between two nodes, or some do not exist, as the keys of empty seconds)
// is read key by key instead, each key from whichever node holds it: the
// seconds are sealed, so reading them in several steps is as good as in
// one, and a slot's migration does not stop syncs.
func (r *Redis) readSealed(ctx context.Context, calls []scriptCall, reads []streamSecond) ([][]Second, error) {
	cmds := make([]*redis.Cmd, len(calls))
	_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			cmds[i] = collectScript.EvalSha(ctx, p, c.keys)
		}
		return nil
	})
	replies := make([][]Second, len(calls))
	first := 0 // index in reads of the call's first pair
	for i, c := range calls {
		pairs := reads[first : first+len(c.keys)/2]
		first += len(c.keys) / 2
		err := cmds[i].Err()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			cmds[i] = collectScript.Eval(ctx, r.client, c.keys)
			err = cmds[i].Err()
		}
		switch {
		case err != nil && redis.IsTryAgainError(err):
			replies[i], err = r.readKeys(ctx, c.keys, pairs)
		case err == nil:
			replies[i], err = parseCollected(cmds[i], pairs)
		}
		if err != nil {
			return nil, err
		}
	}
	return replies, nil
}

// readKeys reads (count key, comment key) pairs with plain commands,
// pipelined, and returns the non-empty seconds.
func (r *Redis) readKeys(ctx context.Context, keys []string, reads []streamSecond) ([]Second, error) {
	counts := make([]*redis.MapStringStringCmd, len(reads))
	comments := make([]*redis.StringSliceCmd, len(reads))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range reads {
			counts[i] = p.HGetAll(ctx, keys[2*i])
			comments[i] = p.LRange(ctx, keys[2*i+1], 0, -1)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var secs []Second
	for i, rd := range reads {
		if len(counts[i].Val()) == 0 && len(comments[i].Val()) == 0 {
			continue
		}
		var flat []any
		for emoji, n := range counts[i].Val() {
			flat = append(flat, emoji, n)
		}
		var entries []any
		for _, e := range comments[i].Val() {
			entries = append(entries, e)
		}
		s, err := buildSecond(rd.stream, rd.second, flat, entries)
		if err != nil {
			return nil, err
		}
		secs = append(secs, s)
	}
	return secs, nil
}

// parseCollected decodes redis_collect.lua's flat (i, counts, comments)
// reply; reads are the seconds of the call's key pairs.
func parseCollected(cmd *redis.Cmd, reads []streamSecond) ([]Second, error) {
	flat, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	if len(flat)%3 != 0 {
		return nil, fmt.Errorf("collect script replied %d values, not triples", len(flat))
	}
	secs := make([]Second, 0, len(flat)/3)
	for i := 0; i < len(flat); i += 3 {
		pair, ok1 := flat[i].(int64)
		counts, ok2 := flat[i+1].([]any)
		comments, ok3 := flat[i+2].([]any)
		if !ok1 || !ok2 || !ok3 || len(counts)%2 != 0 || pair < 1 || pair > int64(len(reads)) {
			return nil, fmt.Errorf("collect script replied a malformed second %v", flat[i:i+3])
		}
		s, err := buildSecond(reads[pair-1].stream, reads[pair-1].second, counts, comments)
		if err != nil {
			return nil, err
		}
		secs = append(secs, s)
	}
	return secs, nil
}

// buildSecond decodes a second's (emoji, count, ...) and comment entries.
func buildSecond(stream string, second int64, counts, comments []any) (Second, error) {
	s := Second{Stream: stream, Second: second, Counts: make([]Count, 0, len(counts)/2)}
	for j := 0; j+1 < len(counts); j += 2 {
		emoji, _ := counts[j].(string)
		n, _ := counts[j+1].(string)
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return s, fmt.Errorf("count of %s/%d/%s is %q: %w", stream, second, emoji, n, err)
		}
		s.Counts = append(s.Counts, Count{Emoji: emoji, N: v})
	}
	for _, c := range comments {
		raw, _ := c.(string)
		if id, ok := strings.CutPrefix(raw, retractionMark); ok {
			s.Retracted = append(s.Retracted, id)
			continue
		}
		cm, ok := parseCommentEntry(raw)
		if !ok {
			return s, fmt.Errorf("comment of %s/%d is %q, not user:text", stream, second, raw)
		}
		s.Comments = append(s.Comments, cm)
	}
	return s, nil
}

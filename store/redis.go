package store

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emojicast/emojicast/clock"
)

// RedisShards is the number of shards streams are spread over. A shard is
// a Redis Cluster hash tag: its streams' counts, its active-streams index,
// its batch markers and its data points share one slot, so one Lua script
// updates them atomically. Every node of a deployment must agree on it.
const RedisShards = 64

// pointsTTL is how long a shard's data points outlive its last write; their
// number is bounded by RedisOptions.PointsMaxLen.
const pointsTTL = 7 * 24 * time.Hour

// RedisOptions configures a Redis store. Zero fields take the default in
// their comment.
type RedisOptions struct {
	// Client is the connection to Redis: one node, Sentinel or Cluster.
	// Required; the store closes it on Close.
	Client redis.UniversalClient
	// Prefix starts every key, so deployments (and tests) can share a Redis.
	// Default: "emojicast".
	Prefix string
	// Clock, when set, replaces the Redis clock in what is sealed, and the
	// node's clock in the stamps of control and moderation figures: tests
	// pass a manual clock. The push fleet's comment load and shared limits
	// go by the Redis clock whatever it is.
	// Default: nil, the Redis clock (TIME), the single authority every push
	// and pull node agrees on for what is sealed.
	Clock clock.Clock
	// SealDelay is how long after a second ends it is sealed, in whole
	// milliseconds. Default: DefaultSealDelay.
	SealDelay time.Duration
	// Retention is how long counts and the active-streams index live after
	// their last write. Default: 2 * Window seconds.
	Retention time.Duration
	// PointsMaxLen is the approximate number of data points (one per flushed
	// stream, second, emoji and count) kept in each shard's Redis Stream;
	// negative keeps none. Default: DefaultPointsMaxLen.
	PointsMaxLen int64
	// MaxComments bounds the comments a second of a stream holds.
	// Default: DefaultMaxComments.
	MaxComments int
	// History is how long sealed seconds are kept for History, in whole
	// seconds; negative keeps none. Default: DefaultHistory.
	History time.Duration
	// MinReplicas, when positive, makes a write (Add, and the seals of
	// Collect and History) count as done only once WAIT confirms it on that
	// many replicas of each master it went to; otherwise it fails with
	// ErrNotReplicated and the writer retries. Default: 0, Redis's
	// asynchronous replication, which a failover can roll back.
	MinReplicas int
	// ReplicaTimeout bounds the wait for MinReplicas. Default:
	// DefaultReplicaTimeout.
	ReplicaTimeout time.Duration
}

// DefaultReplicaTimeout is how long a write waits for its replicas by
// default: far longer than replication takes on a healthy network, far
// shorter than the push flush timeout.
const DefaultReplicaTimeout = 500 * time.Millisecond

// DefaultPointsMaxLen keeps about a million data points in all, a few tens
// of MiB of Redis memory.
const DefaultPointsMaxLen = 1_000_000 / RedisShards

func (o *RedisOptions) fillDefaults() error {
	if o.Client == nil {
		return errors.New("store: a Redis client is required")
	}
	if o.Prefix == "" {
		o.Prefix = "emojicast"
	}
	if o.SealDelay <= 0 {
		o.SealDelay = DefaultSealDelay
	}
	if o.Retention <= 0 {
		o.Retention = 2 * Window * time.Second
	}
	if o.MaxComments <= 0 {
		o.MaxComments = DefaultMaxComments
	}
	if o.ReplicaTimeout <= 0 {
		o.ReplicaTimeout = DefaultReplicaTimeout
	}
	switch {
	case o.History == 0:
		o.History = DefaultHistory
	case o.History < 0:
		o.History = 0 // the script's "none"
	}
	switch {
	case o.PointsMaxLen == 0:
		o.PointsMaxLen = DefaultPointsMaxLen
	case o.PointsMaxLen < 0:
		o.PointsMaxLen = 0 // the script's "none"
	}
	return nil
}

// Redis is a Store shared by every push and pull node of a deployment.
//
// Keys of shard k (k = FNV-1a of the stream id mod RedisShards) start with
// the hash tag {prefix:k}:
//
//	{p:k}:c:<stream>:<second>  hash emoji -> count, TTL Retention
//	{p:k}:m:<stream>:<second>  list of comments and retractions (see commentEntry), TTL Retention
//	{p:k}:active               sorted set stream -> newest second written, TTL Retention
//	{p:k}:sealed               sorted set of one member, whose score is the shard's seal: the newest second Collect declared final, TTL sealTTL
//	{p:k}:ack                  written before a WAIT (MinReplicas), TTL 1 min
//	{p:k}:b:<batch id>         marker of an added batch, TTL DedupeWindow
//	{p:k}:points               stream of data points, MAXLEN ~PointsMaxLen
//	{p:k}:h:<stream>:<minute>  hash of the minute's counts and comments, TTL History
//	{p:k}:hr:<stream>          sorted set of retracted comment ids, which History leaves out (redis_moderation.go)
//
// The history hash of a stream and minute (Unix second / 60) holds
// "<s>:<emoji>" -> count and "<s>#<i>" -> "user:text" for second s (0-59)
// of the minute: the same sums and comments as the second's count and
// comment keys, written by the same script, kept after those expire. One
// hash per minute keeps a busy stream's hour to 60 keys; see History.
//
// Every key a script touches is passed in its KEYS, so a Cluster slot
// being migrated answers ASK or TRYAGAIN for the keys still on the other
// node instead of the script reading them as missing.
//
// Add runs one script per shard its batch touches, pipelined. Collect seals
// the served streams' shards and reads their indexes, then runs one script
// per shard with served streams that had reactions, each step pipelined. Both do work
// proportional to the streams with reactions, never to the taps behind the
// counts.
type Redis struct {
	opts   RedisOptions
	client redis.UniversalClient
	tags   [RedisShards]string       // "{prefix:k}:"
	seals  [RedisShards]atomic.Int64 // the newest seal seen per shard, Add's guess
	// spills is the deepest comment spill of each shard's last write,
	// Add's guess of the seconds past a comment's own to pass keys of.
	spills [RedisShards]atomic.Int64
	// sealRenewed is when this store last renewed each shard's seal's TTL.
	sealRenewed [RedisShards]atomic.Int64
}

var _ Store = (*Redis)(nil)

var (
	//go:embed redis_clock.lua
	clockSource string
	//go:embed redis_add.lua
	addSource string
	//go:embed redis_collect.lua
	collectSource string
	//go:embed redis_horizon.lua
	horizonSource string

	addScript     = redis.NewScript(clockSource + addSource)
	collectScript = redis.NewScript(collectSource)
	horizonScript = redis.NewScript(clockSource + horizonSource)
)

// NewRedis returns a Redis store.
func NewRedis(opts RedisOptions) (*Redis, error) {
	if err := opts.fillDefaults(); err != nil {
		return nil, err
	}
	r := &Redis{opts: opts, client: opts.Client}
	for k := range r.tags {
		r.tags[k] = "{" + opts.Prefix + ":" + strconv.Itoa(k) + "}:"
	}
	return r, nil
}

// shard returns the shard of a stream.
func shard(stream string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(stream))
	return int(h.Sum32() % RedisShards)
}

// nowArg is the "now" the scripts get: empty for the Redis clock.
func (r *Redis) nowArg() string {
	if r.opts.Clock == nil {
		return ""
	}
	return strconv.FormatInt(r.opts.Clock.Now().UnixMilli(), 10)
}

func (r *Redis) sealMillis() int64 { return r.opts.SealDelay.Milliseconds() }

// Add implements Store.
//
// Each shard's script needs in KEYS every key it may write, including those
// of the second a late write is carried into, which depends on the shard's
// seal, and those of the seconds a comment spills into when its second is
// full. Add guesses the seal from the last one it saw (Redis answers it
// with every write) and the spill from the shard's last write; when a
// guess is short, the script writes nothing and answers the seal and the
// spill it needs, and Add runs that shard's part again with them.
func (r *Redis) Add(ctx context.Context, batch Batch) error {
	var parts [RedisShards]addPart
	for _, d := range batch.Deltas {
		p := &parts[shard(d.Stream)]
		p.deltas = append(p.deltas, d.Stream, d.Second, d.Emoji, d.Count)
		p.addSecond(streamSecond{d.Stream, d.Second, false})
	}
	for _, c := range batch.Comments {
		p := &parts[shard(c.Stream)]
		p.comments = append(p.comments, c.Stream, c.Second, commentEntry(c.Comment))
		p.addSecond(streamSecond{c.Stream, c.Second, true})
	}
	for _, rt := range batch.Retractions {
		p := &parts[shard(rt.Stream)]
		p.comments = append(p.comments, rt.Stream, rt.Second, retractionMark+rt.ID)
		p.addSecond(streamSecond{rt.Stream, rt.Second, true})
	}
	var todo []int
	for k := range parts {
		if len(parts[k].seconds) > 0 {
			parts[k].seal, parts[k].open = r.guessSeal(k)
			if sp := r.spills[k].Load(); sp > 0 {
				parts[k].spill = sp + sealSlack
			}
			todo = append(todo, k)
		}
	}
	// A guess is off only when the seal moved since the last write, and the
	// retry uses the seal the script answered, or when comments spill
	// further than the shard's last write did: two rounds are the rule.
	applied := false // some shard's part was written in an earlier round
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == addAttempts {
			err := fmt.Errorf("cannot add batch %s: the seal of shard %d kept moving", batch.ID, todo[0])
			if !applied {
				err = fmt.Errorf("%w (%w)", err, ErrNotApplied)
			}
			return err
		}
		calls := make([]scriptCall, len(todo))
		for i, k := range todo {
			calls[i] = r.addCall(k, batch.ID, &parts[k])
		}
		cmds, err := r.runAll(ctx, addScript, calls)
		if err != nil {
			if applied && errors.Is(err, ErrNotApplied) {
				// An earlier round wrote other shards' parts.
				return fmt.Errorf("cannot add batch %s: %v", batch.ID, err)
			}
			return fmt.Errorf("cannot add batch %s: %w", batch.ID, err)
		}
		var again []int
		for i, c := range cmds {
			k := todo[i]
			res, err := addReply(c)
			if err != nil {
				return fmt.Errorf("cannot add batch %s: %w", batch.ID, err)
			}
			if len(res) == 4 {
				parts[k].seal, parts[k].open = res[1], res[2]
				if res[3] > parts[k].spill {
					parts[k].spill = growSpill(parts[k].spill, res[3])
				}
				r.sawSeal(k, res[1])
				again = append(again, k)
				continue
			}
			r.sawSeal(k, res[5])
			applied = true
			lateCarried.Add(float64(res[1]))
			lateCommentsCarried.Add(float64(res[2]))
			commentsDropped.Add(float64(res[3]))
			retractionsDropped.Add(float64(res[4]))
			aheadClamped.Add(float64(res[6]))
			if res[0] == 1 {
				r.spills[k].Store(res[7])
			}
		}
		todo = again
	}
	if err := r.confirm(ctx, shardsOf(&parts)); err != nil {
		return fmt.Errorf("cannot add batch %s: %w", batch.ID, err)
	}
	return nil
}

// addAttempts bounds the runs of one shard's part of a batch whose seal or
// spill guess was off: growSpill reaches the farthest spill by the fourth
// run, which leaves two for a seal that moved meanwhile.
const addAttempts = 6

// growSpill returns the spill to pass keys for after a run that needed
// keys of need seconds past a comment's own, having had spill: a run
// takes the keys it was not passed as empty, so need may be short when
// those are full, and the spill grows fast to cover a long run of full
// seconds in few rounds. No comment goes further than MaxCommentSpill
// past the oldest open second, the earliest it can go to.
func growSpill(spill, need int64) int64 {
	return min(max(need, 2*spill)+8, MaxCommentSpill)
}

// MaxAhead is how many seconds past the open second a write may be: a
// second further ahead (a push node whose clock is far ahead) is written
// into the open second, since its keys, kept for Retention, could expire
// before it is sealed.
const MaxAhead = 30

// addPart is one shard's part of a batch.
type addPart struct {
	deltas, comments []any
	seconds          []streamSecond
	seal, open       int64 // the seal and open second the keys are chosen for
	spill            int64 // the seconds past a comment's own to pass keys of
}

type streamSecond struct {
	stream  string
	second  int64
	comment bool
}

// addSecond notes a second the part writes to. A batch's deltas come
// grouped by stream and second, one per emoji, so repeats of the last one
// are skipped here; addCall drops the others.
func (p *addPart) addSecond(ss streamSecond) {
	if n := len(p.seconds); n == 0 || p.seconds[n-1] != ss {
		p.seconds = append(p.seconds, ss)
	}
}

func shardsOf(parts *[RedisShards]addPart) []int {
	var ks []int
	for k := range parts {
		if len(parts[k].seconds) > 0 {
			ks = append(ks, k)
		}
	}
	return ks
}

// addCall builds the script call of one shard's part of a batch: KEYS hold
// the count or comment key and the history key of each second, and of the
// seconds a write may be carried into if the seal is within a second or two
// of the guess.
// addReply reads the add script's answer: -1, the seal, the open second and
// the spill when the guessed seal was stale; eight counts when it wrote.
func addReply(c *redis.Cmd) ([]int64, error) {
	res, err := c.Int64Slice()
	if err == nil && (len(res) == 4 && res[0] == -1 || len(res) == 8) {
		return res, nil
	}
	return nil, replyError(c, err)
}

func (r *Redis) addCall(k int, id string, p *addPart) scriptCall {
	tag := r.tags[k]
	historyTTL := int64(r.opts.History.Seconds())
	keys := []string{tag + "active", tag + "b:" + id, tag + "points", tag + "sealed"}
	seen := make(map[string]struct{}, 2*len(p.seconds))
	put := func(key string) {
		if _, ok := seen[key]; !ok {
			seen[key] = struct{}{}
			keys = append(keys, key)
		}
	}
	putSecond := func(ss streamSecond, sec int64) {
		kind, spill := "c:", int64(0)
		if ss.comment {
			kind, spill = "m:", p.spill
		}
		for s := sec; s <= sec+spill; s++ {
			put(tag + kind + ss.stream + ":" + strconv.FormatInt(s, 10))
			if historyTTL > 0 {
				put(tag + "h:" + ss.stream + ":" + strconv.FormatInt(minuteOf(s), 10))
			}
		}
	}
	for _, ss := range p.seconds {
		switch {
		case ss.second <= p.seal+sealSlack:
			// Late, or late by the time it arrives: the oldest open
			// second, as the script will find it.
			for s := p.seal + 1; s <= p.seal+sealSlack+1; s++ {
				putSecond(ss, s)
			}
			if ss.second > p.seal {
				putSecond(ss, ss.second)
			}
		case ss.second > p.open+MaxAhead-sealSlack:
			putSecond(ss, ss.second)
			for s := p.open; s <= p.open+sealSlack; s++ {
				putSecond(ss, s)
			}
		default:
			putSecond(ss, ss.second)
		}
	}
	args := append([]any{
		r.nowArg(), r.sealMillis(), int64(r.opts.Retention.Seconds()), DedupeWindow.Milliseconds(),
		r.opts.PointsMaxLen, int64(pointsTTL.Seconds()), tag + "c:", tag + "m:", r.opts.MaxComments,
		tag + "h:", historyTTL, len(p.deltas) / 4, MaxRetractions, MaxAhead, MaxCommentSpill,
	}, p.deltas...)
	return scriptCall{keys: keys, args: append(args, p.comments...)}
}

// sealSlack is how many seconds the seal may have moved past Add's guess
// without another run of the script.
const sealSlack = 2

// guessSeal returns the last seal seen for shard k and the open second,
// or, before any, both from the clock.
func (r *Redis) guessSeal(k int) (seal, open int64) {
	var now time.Time
	if r.opts.Clock != nil {
		now = r.opts.Clock.Now()
	} else {
		now = time.Now()
	}
	clk := Horizon(now, r.opts.SealDelay)
	seal = r.seals[k].Load()
	if seal == 0 {
		seal = clk
	}
	return seal, max(seal, clk) + 1
}

// sawSeal records a seal Redis answered for shard k.
func (r *Redis) sawSeal(k int, seal int64) {
	for {
		old := r.seals[k].Load()
		if seal <= old || r.seals[k].CompareAndSwap(old, seal) {
			return
		}
	}
}

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

// A second's comment list holds comments as "=id:user:text" ("user:text"
// from nodes that assigned no ids) and retractions as "!id". Ids and user
// ids never hold ':', '=' or '!' (api.ValidID), so the marks and the first
// colons are unambiguous.
const (
	commentMark    = "="
	retractionMark = "!"
)

func commentEntry(c Comment) string {
	if c.ID == "" {
		return c.User + ":" + c.Text
	}
	return commentMark + c.ID + ":" + c.User + ":" + c.Text
}

func parseCommentEntry(raw string) (Comment, bool) {
	var c Comment
	if rest, ok := strings.CutPrefix(raw, commentMark); ok {
		if c.ID, raw, ok = strings.Cut(rest, ":"); !ok {
			return c, false
		}
	}
	var ok bool
	c.User, c.Text, ok = strings.Cut(raw, ":")
	return c, ok
}

// scriptCall is one run of a script.
type scriptCall struct {
	keys []string
	args []any
}

// runAll runs the calls in one pipeline (a Cluster client splits it by
// node, and follows MOVED and ASK) and returns their replies in order. A
// Redis that lost its script cache (a restart, or a node a slot just moved
// to) answers NOSCRIPT; those calls did not run and are run again with
// EVAL, which caches the script for the next time. A node answers TRYAGAIN
// while a slot is migrating and a call's keys are split between the two
// nodes; go-redis retries a few times, and runAll retries those calls
// again, with backoff, for at most tryAgainFor, since migrating a slot of a
// few keys takes milliseconds.
func (r *Redis) runAll(ctx context.Context, s *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	todo := make([]int, len(calls))
	for i := range todo {
		todo[i] = i
	}
	backoff := 10 * time.Millisecond
	deadline := time.Now().Add(tryAgainFor)
	ran := false // some call may have run
	fail := func(err error) ([]*redis.Cmd, error) {
		if !ran {
			return nil, fmt.Errorf("%w (%w)", err, ErrNotApplied)
		}
		return nil, err
	}
	for {
		_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range todo {
				cmds[i] = s.EvalSha(ctx, p, calls[i].keys, calls[i].args...)
			}
			return nil
		})
		var again []int
		for _, i := range todo {
			err := cmds[i].Err()
			if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				cmds[i] = s.Eval(ctx, r.client, calls[i].keys, calls[i].args...)
				err = cmds[i].Err()
			}
			if !notRun(err) {
				ran = true
			}
			if err != nil && redis.IsTryAgainError(err) {
				again = append(again, i)
			}
		}
		for _, i := range todo {
			if err := cmds[i].Err(); err != nil && !redis.IsTryAgainError(err) {
				return fail(err)
			}
		}
		if len(again) == 0 {
			return cmds, nil
		}
		if time.Now().Add(backoff).After(deadline) {
			tryAgainGiveUps.Inc()
			return fail(cmds[again[0]].Err())
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
		todo = again
	}
}

// notRun reports whether a call's error says the script surely did not
// run: the connection was never made, or Redis refused the call before
// running it.
func notRun(err error) bool {
	if err == nil {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	for _, prefix := range []string{"TRYAGAIN", "CLUSTERDOWN", "LOADING", "READONLY", "NOSCRIPT", "MOVED", "ASK"} {
		if redis.HasErrorPrefix(err, prefix) {
			return true
		}
	}
	return false
}

// tryAgainFor bounds how long runAll retries calls answered TRYAGAIN.
const tryAgainFor = 2 * time.Second

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
		replicaWaitFailures.Inc()
		return err
	}
	return nil
}

// ErrNotReplicated is the error of a write Redis took but not enough
// replicas confirmed in time: it may be lost in a failover, so the writer
// keeps it and writes it again (a batch is added once per ID).
var ErrNotReplicated = errors.New("not confirmed by enough replicas")

// Close implements Store: it closes the client.
func (r *Redis) Close() error { return r.client.Close() }

// ErrMalformedReply means a script answered in a shape its caller cannot read.
var ErrMalformedReply = errors.New("store: malformed script reply")

// replyError says why a script's reply cannot be read: the command's own
// error, or else ErrMalformedReply with what came and, when go-redis could
// not convert it, why (parseErr).
func replyError(cmd *redis.Cmd, parseErr error) error {
	if err := cmd.Err(); err != nil {
		return err
	}
	if parseErr != nil {
		return fmt.Errorf("%w %v: %w", ErrMalformedReply, cmd.Val(), parseErr)
	}
	return fmt.Errorf("%w %v", ErrMalformedReply, cmd.Val())
}

// int64Reply reads a script's answer as n integers.
func int64Reply(cmd *redis.Cmd, n int) ([]int64, error) {
	res, err := cmd.Int64Slice()
	if err != nil || len(res) != n {
		return nil, replyError(cmd, err)
	}
	return res, nil
}

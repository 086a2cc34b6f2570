package store

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
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
	// Clock, when set, replaces the Redis clock: tests pass a manual clock.
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
}

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
// Add runs one script per shard its batch touches, pipelined. Collect reads
// the indexes of the served streams' shards, then runs one script per shard
// with served streams that had reactions, each step pipelined. Both do work
// proportional to the streams with reactions, never to the taps behind the
// counts.
type Redis struct {
	opts   RedisOptions
	client redis.UniversalClient
	tags   [RedisShards]string // "{prefix:k}:"
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
func (r *Redis) Add(ctx context.Context, batch Batch) error {
	var deltas, comments [RedisShards][]any
	var history [RedisShards]historyKeys
	carry := r.carryMinutes()
	for _, d := range batch.Deltas {
		k := shard(d.Stream)
		deltas[k] = append(deltas[k], d.Stream, d.Second, d.Emoji, d.Count)
		history[k].add(d.Stream, d.Second, carry)
	}
	for _, c := range batch.Comments {
		k := shard(c.Stream)
		comments[k] = append(comments[k], c.Stream, c.Second, commentEntry(c.Comment))
		history[k].add(c.Stream, c.Second, carry)
	}
	for _, rt := range batch.Retractions {
		k := shard(rt.Stream)
		comments[k] = append(comments[k], rt.Stream, rt.Second, retractionMark+rt.ID)
		history[k].add(rt.Stream, rt.Second, carry)
	}
	var calls []scriptCall
	now := r.nowArg()
	historyTTL := int64(r.opts.History.Seconds())
	for k := range RedisShards {
		if len(deltas[k]) == 0 && len(comments[k]) == 0 {
			continue
		}
		tag := r.tags[k]
		args := append([]any{
			now, r.sealMillis(), int64(r.opts.Retention.Seconds()), DedupeWindow.Milliseconds(),
			r.opts.PointsMaxLen, int64(pointsTTL.Seconds()), tag + "c:", tag + "m:", r.opts.MaxComments,
			tag + "h:", historyTTL, len(deltas[k]) / 4, MaxRetractions,
		}, deltas[k]...)
		keys := []string{tag + "active", tag + "b:" + batch.ID, tag + "points"}
		if historyTTL > 0 {
			for _, sm := range history[k].list {
				keys = append(keys, r.historyKey(sm.stream, sm.minute))
			}
		}
		calls = append(calls, scriptCall{keys: keys, args: append(args, comments[k]...)})
	}
	cmds, err := r.runAll(ctx, addScript, calls)
	if err != nil {
		return fmt.Errorf("cannot add batch %s: %w", batch.ID, err)
	}
	for _, c := range cmds {
		res, err := c.Int64Slice()
		if err != nil || len(res) != 5 {
			return fmt.Errorf("cannot add batch %s: unexpected script reply %v: %w", batch.ID, c.Val(), err)
		}
		lateCarried.Add(float64(res[1]))
		lateCommentsCarried.Add(float64(res[2]))
		commentsDropped.Add(float64(res[3]))
		retractionsDropped.Add(float64(res[4]))
	}
	return nil
}

// historyKey returns the history hash of a stream's minute.
func (r *Redis) historyKey(stream string, minute int64) string {
	return r.tags[shard(stream)] + "h:" + stream + ":" + strconv.FormatInt(minute, 10)
}

// carrySkew is how far the Redis clock may be from this process's without
// a late write failing: a second sealed when a batch arrives is carried
// into the oldest open second by the Redis clock, whose history minute
// must be among the keys the script is given.
const carrySkew = 60

// carryMinutes returns the minutes a late second may be carried into: by
// the manual clock exactly, by the process clock within carrySkew.
func (r *Redis) carryMinutes() []int64 {
	if r.opts.History <= 0 {
		return nil
	}
	if r.opts.Clock != nil {
		return []int64{minuteOf(Horizon(r.opts.Clock.Now(), r.opts.SealDelay) + 1)}
	}
	open := Horizon(time.Now(), r.opts.SealDelay) + 1
	return []int64{minuteOf(open - carrySkew), minuteOf(open), minuteOf(open + carrySkew)}
}

func minuteOf(sec int64) int64 {
	m := sec / 60
	if sec < 0 && sec%60 != 0 {
		m--
	}
	return m
}

// historyKeys collects the distinct (stream, minute) history hashes one
// shard's part of a batch may write.
type historyKeys struct {
	seen map[streamMinute]struct{}
	list []streamMinute
}

type streamMinute struct {
	stream string
	minute int64
}

func (h *historyKeys) add(stream string, sec int64, carry []int64) {
	if carry == nil {
		return
	}
	if h.seen == nil {
		h.seen = make(map[streamMinute]struct{})
	}
	h.put(streamMinute{stream, minuteOf(sec)})
	for _, m := range carry {
		h.put(streamMinute{stream, m})
	}
}

func (h *historyKeys) put(sm streamMinute) {
	if _, ok := h.seen[sm]; !ok {
		h.seen[sm] = struct{}{}
		h.list = append(h.list, sm)
	}
}

// History implements Store. It reads the horizon first, then the at most
// 61 minute hashes of the range, pipelined: a second at or before that
// horizon was sealed before the hashes were read, and sealed seconds never
// change, so what it returns as sealed is final. Plain HGETALLs, not one
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
// It first asks each shard's index, pipelined, for the streams written
// since the shard's oldest cursor, at most one more than the node serves in
// that shard. When the index has fewer (the usual case: few of the served
// streams had reactions), only the served ones among them are read; when
// it has more, the served streams are looked up in it instead. Either way
// the index work grows with the smaller of the two sets and the count reads
// with the served streams that had reactions.
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
	if err := r.readIndexes(ctx, &shards); err != nil {
		return Collection{}, fmt.Errorf("cannot collect seconds: %w", err)
	}
	var calls []scriptCall
	var callOf [RedisShards]int
	for k := range shards {
		if pairs := shards[k].toRead(); len(pairs) > 0 {
			callOf[k] = len(calls)
			calls = append(calls, scriptCall{
				keys: []string{r.tags[k] + "active"},
				args: append([]any{horizon, r.tags[k] + "c:", r.tags[k] + "m:"}, pairs...),
			})
		} else {
			callOf[k] = -1
		}
	}
	cmds, err := r.runAll(ctx, collectScript, calls)
	if err != nil {
		return Collection{}, fmt.Errorf("cannot collect seconds: %w", err)
	}
	replies := make([][]Second, len(cmds))
	for i, cmd := range cmds {
		if replies[i], err = parseCollected(cmd); err != nil {
			return Collection{}, fmt.Errorf("cannot collect seconds: %w", err)
		}
	}
	// Each shard's reply is in its cursors' order, so taking from the front
	// of the cursor's shard's reply rebuilds the cursor order.
	c := Collection{Horizon: horizon}
	for i, cur := range cursors {
		if callOf[shardOf[i]] < 0 {
			continue
		}
		rep := &replies[callOf[shardOf[i]]]
		for len(*rep) > 0 && (*rep)[0].Stream == cur.Stream {
			c.Seconds = append(c.Seconds, (*rep)[0])
			*rep = (*rep)[1:]
		}
	}
	return c, nil
}

// shardCursors are the cursors of one shard, with what its index said.
type shardCursors struct {
	streams []string
	after   []int64
	oldest  int64
	written map[string]float64 // streams written since oldest; nil: more than served
}

func (sc *shardCursors) add(stream string, after int64) {
	if len(sc.streams) == 0 || after < sc.oldest {
		sc.oldest = after
	}
	sc.streams = append(sc.streams, stream)
	sc.after = append(sc.after, after)
}

// toRead returns the (stream, after) pairs the collect script must read.
func (sc *shardCursors) toRead() []any {
	var pairs []any
	for i, s := range sc.streams {
		if sc.written != nil {
			if newest, ok := sc.written[s]; !ok || newest <= float64(sc.after[i]) {
				continue
			}
		}
		pairs = append(pairs, s, sc.after[i])
	}
	return pairs
}

// readIndexes asks the index of every shard with cursors for the streams
// written after its oldest cursor, up to one more than the shard's cursors.
func (r *Redis) readIndexes(ctx context.Context, shards *[RedisShards]shardCursors) error {
	var cmds [RedisShards]*redis.ZSliceCmd
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range shards {
			if n := len(shards[k].streams); n > 0 {
				cmds[k] = p.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
					Key: r.tags[k] + "active", ByScore: true,
					Start: "(" + strconv.FormatInt(shards[k].oldest, 10), Stop: "+inf", Count: int64(n) + 1,
				})
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
		zs := cmd.Val()
		if len(zs) > len(shards[k].streams) {
			continue // more written than served: the script looks them up
		}
		shards[k].written = make(map[string]float64, len(zs))
		for _, z := range zs {
			if m, ok := z.Member.(string); ok {
				shards[k].written[m] = z.Score
			}
		}
	}
	return nil
}

// parseCollected decodes redis_collect.lua's flat (stream, second, counts,
// comments) reply.
func parseCollected(cmd *redis.Cmd) ([]Second, error) {
	flat, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	if len(flat)%4 != 0 {
		return nil, fmt.Errorf("collect script replied %d values, not quadruples", len(flat))
	}
	secs := make([]Second, 0, len(flat)/4)
	for i := 0; i < len(flat); i += 4 {
		stream, ok1 := flat[i].(string)
		second, ok2 := flat[i+1].(int64)
		counts, ok3 := flat[i+2].([]any)
		comments, ok4 := flat[i+3].([]any)
		if !ok1 || !ok2 || !ok3 || !ok4 || len(counts)%2 != 0 {
			return nil, fmt.Errorf("collect script replied a malformed second %v", flat[i:i+4])
		}
		s := Second{Stream: stream, Second: second, Counts: make([]Count, 0, len(counts)/2)}
		for j := 0; j < len(counts); j += 2 {
			emoji, _ := counts[j].(string)
			n, _ := counts[j+1].(string)
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("count of %s/%d/%s is %q: %w", stream, second, emoji, n, err)
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
				return nil, fmt.Errorf("comment of %s/%d is %q, not user:text", stream, second, raw)
			}
			s.Comments = append(s.Comments, cm)
		}
		secs = append(secs, s)
	}
	return secs, nil
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
// node) and returns their replies in order. A Redis that lost its script
// cache (a restart) answers NOSCRIPT; those calls did not run and are run
// again with EVAL, which caches the script for the next time.
func (r *Redis) runAll(ctx context.Context, s *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			cmds[i] = s.EvalSha(ctx, p, c.keys, c.args...)
		}
		return nil
	})
	for i, c := range calls {
		err := cmds[i].Err()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			cmds[i] = s.Run(ctx, r.client, c.keys, c.args...)
			err = cmds[i].Err()
		}
		if err != nil {
			return nil, err
		}
	}
	return cmds, nil
}

// Close implements Store: it closes the client.
func (r *Redis) Close() error { return r.client.Close() }

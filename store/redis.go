package store

import (
	_ "embed"
	"errors"
	"hash/fnv"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	// Registerer takes the store's metrics. Default: nil, registered
	// nowhere (tests); emojicast passes prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
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
	opts    RedisOptions
	metrics *metrics
	client  redis.UniversalClient
	tags    [RedisShards]string       // "{prefix:k}:"
	seals   [RedisShards]atomic.Int64 // the newest seal seen per shard, Add's guess
	// spills is the deepest comment spill of each shard's last write,
	// Add's guess of the seconds past a comment's own to pass keys of.
	spills [RedisShards]atomic.Int64
	// sealRenewed is when this store last renewed each shard's seal's TTL.
	sealRenewed [RedisShards]atomic.Int64
}

// NewRedis returns a Redis store.
func NewRedis(opts RedisOptions) (*Redis, error) {
	if err := opts.fillDefaults(); err != nil {
		return nil, err
	}
	r := &Redis{opts: opts, client: opts.Client, metrics: newMetrics(opts.Registerer)}
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

// Close implements Store: it closes the client.
func (r *Redis) Close() error { return r.client.Close() }

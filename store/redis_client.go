package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisTimeout bounds dialing and each read or write of a Redis connection;
// callers' contexts bound whole operations tighter.
const redisTimeout = 3 * time.Second

// NewRedisClient returns a client for spec: a redis://, rediss:// or
// unix:// URL (one node; user, password and database from the URL), or a
// comma-separated list of host:port addresses, which with two or more is a
// Redis Cluster (go-redis UniversalClient semantics). One host:port is
// asked whether it is a cluster node (a managed cluster's configuration
// endpoint), so NewRedisClient fails if it cannot reach it. Contexts'
// deadlines bound its commands.
func NewRedisClient(spec string) (redis.UniversalClient, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("empty redis address")
	}
	if strings.Contains(spec, "://") {
		o, err := redis.ParseURL(spec)
		if err != nil {
			return nil, fmt.Errorf("cannot parse redis URL: %w", err)
		}
		o.ContextTimeoutEnabled = true
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = redisTimeout, redisTimeout, redisTimeout
		return redis.NewClient(o), nil
	}
	var addrs []string
	for a := range strings.SplitSeq(spec, ",") {
		a = strings.TrimSpace(a)
		if !strings.Contains(a, ":") {
			return nil, fmt.Errorf("redis address %q is not host:port", a)
		}
		addrs = append(addrs, a)
	}
	o := &redis.UniversalOptions{
		Addrs:                 addrs,
		ContextTimeoutEnabled: true,
		DialTimeout:           redisTimeout,
		ReadTimeout:           redisTimeout,
		WriteTimeout:          redisTimeout,
	}
	if len(addrs) == 1 {
		cluster, err := isClusterNode(o.Simple())
		if err != nil {
			return nil, err
		}
		o.IsClusterMode = cluster
	}
	return redis.NewUniversalClient(o), nil
}

// isClusterNode asks the server o names whether it runs in cluster mode: a
// standalone client on a cluster node fails on MOVED for most slots.
func isClusterNode(o *redis.Options) (bool, error) {
	c := redis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	info, err := c.Info(ctx, "cluster").Result()
	if err != nil {
		return false, fmt.Errorf("cannot ask redis at %s whether it is a cluster: %w", o.Addr, err)
	}
	return strings.Contains(info, "cluster_enabled:1"), nil
}

// RedisName returns spec without credentials, to name a store in logs.
func RedisName(spec string) string {
	if o, err := redis.ParseURL(strings.TrimSpace(spec)); err == nil {
		return o.Addr
	}
	return strings.TrimSpace(spec)
}

// LogRedisTo sends go-redis's own messages to l at debug level. While Redis
// is down its pool logs every failed dial, many times a second; push and
// pull nodes log an outage once, with what they do about it.
func LogRedisTo(l *slog.Logger) { redis.SetLogger(redisLogger{l}) }

type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if r.l.Enabled(ctx, slog.LevelDebug) {
		r.l.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
	}
}

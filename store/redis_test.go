package store

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/internal/testutil"
)

var prefixSeq atomic.Int64

// newRedis returns a Redis store on spec with a key prefix no other test
// uses, closed when the test ends.
func newRedis(t *testing.T, spec string, opts RedisOptions) *Redis {
	t.Helper()
	client, err := NewRedisClient(spec)
	if err != nil {
		t.Fatal(err)
	}
	opts.Client = client
	if opts.Prefix == "" {
		opts.Prefix = fmt.Sprintf("test%d", prefixSeq.Add(1))
	}
	r, err := NewRedis(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// newRedisOnClock starts a redis-server and returns a store on it whose
// sealing follows a manual clock, 100 ms into contractT0.
func newRedisOnClock(t *testing.T, opts RedisOptions) (*Redis, *clock.Manual) {
	t.Helper()
	srv := redistest.Start(t)
	clk := clock.NewManual(contractT0.Add(100 * time.Millisecond))
	opts.Clock = clk
	return newRedis(t, srv.URL(), opts), clk
}

func TestRedisContract(t *testing.T) {
	srv := redistest.Start(t)
	runContract(t, func(t *testing.T, clk clock.Clock) Store {
		return newRedis(t, srv.URL(), RedisOptions{Clock: clk})
	})
}

// TestRedisClusterContract runs the contract on a real 3-master cluster:
// scripts must only touch keys of their shard's slot, and pipelines span
// the masters.
func TestRedisClusterContract(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	runContract(t, func(t *testing.T, clk clock.Clock) Store {
		return newRedis(t, c.Addrs(), RedisOptions{Clock: clk})
	})
	t.Run("ManyStreamsOverEveryShard", func(t *testing.T) {
		clk := clock.NewManual(contractT0.Add(100 * time.Millisecond))
		testManyStreams(t, newRedis(t, c.Addrs(), RedisOptions{Clock: clk}), clk)
	})
}

// testManyStreams adds to enough streams to touch every shard in one batch
// and collects them all back, in cursor order.
func testManyStreams(t *testing.T, s Store, clk *clock.Manual) {
	t0 := contractT0.Unix()
	var deltas []Delta
	var cursors []Cursor
	var want []Second
	for i := range 500 {
		id := fmt.Sprintf("stream-%d", i)
		deltas = append(deltas, Delta{id, t0, "like", int64(i + 1)})
		cursors = append(cursors, Cursor{id, t0 - 1})
		want = append(want, Second{id, t0, []Count{{"like", int64(i + 1)}}, nil, nil})
	}
	mustAdd(t, s, deltas...)
	sealThrough(clk, t0)
	got := mustCollect(t, s, cursors...)
	if !reflect.DeepEqual(got.Seconds, want) {
		t.Fatalf("collected %d seconds; want 500 in cursor order, first %s", len(got.Seconds), describe(got.Seconds[:min(3, len(got.Seconds))]))
	}
}

func TestRedisManyStreams(t *testing.T) {
	r, clk := newRedisOnClock(t, RedisOptions{})
	testManyStreams(t, r, clk)
}

// TestRedisEveryKeyExpires: whatever runs, Redis memory stays bounded, so
// every key the store writes has a TTL.
func TestRedisEveryKeyExpires(t *testing.T) {
	r, clk := newRedisOnClock(t, RedisOptions{Prefix: "ttl"})
	t0 := contractT0.Unix()
	for i := range 50 {
		mustAdd(t, r, Delta{fmt.Sprintf("s%d", i), t0 + int64(i%3), "love", 1})
	}
	sealThrough(clk, t0+5)
	mustAdd(t, r, Delta{"s1", t0, "love", 1}) // carried
	mustAddBatch(t, r, Batch{ID: "comments", Comments: comments("s2", t0+6, "hello")})
	if err := r.ReportComments(ctx, "push-1", []CommentReport{{"s2", 1}}); err != nil {
		t.Fatal(err)
	}
	keys, err := r.client.Keys(ctx, "{ttl:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, k := range keys {
		ttl, err := r.client.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 {
			t.Fatalf("key %s has TTL %v (%v); every key must expire", k, ttl, err)
		}
		kinds[regexp.MustCompile(`^\{ttl:\d+\}:(\w+)`).FindStringSubmatch(k)[1]] = true
	}
	for _, kind := range []string{"c", "m", "h", "active", "b", "points", "ml", "pushers"} {
		if !kinds[kind] {
			t.Errorf("no %q key among %d keys; the test no longer covers it", kind, len(keys))
		}
	}
}

// pointRecord is one data point as analytics jobs read it.
type pointRecord struct {
	stream, second, emoji, count string
}

// readPoints reads every data point of every shard.
func readPoints(t *testing.T, r *Redis) []pointRecord {
	t.Helper()
	var out []pointRecord
	for _, tag := range r.tags {
		msgs, err := r.client.XRange(ctx, tag+"points", "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			v := m.Values
			out = append(out, pointRecord{v["stream"].(string), v["second"].(string), v["emoji"].(string), v["count"].(string)})
		}
	}
	return out
}

// TestRedisDataPoints: every added delta is one data point with its original
// second, even when the count was carried; a retried batch adds none.
func TestRedisDataPoints(t *testing.T) {
	r, clk := newRedisOnClock(t, RedisOptions{})
	t0 := contractT0.Unix()
	b := Batch{ID: "n-1", Deltas: []Delta{{"a", t0, "love", 3}, {"a", t0, "fire", 2}, {"b", t0, "love", 1}}}
	mustAddBatch(t, r, b)
	mustAddBatch(t, r, b)
	sealThrough(clk, t0+3)
	mustAddBatch(t, r, Batch{ID: "n-2", Deltas: []Delta{{"a", t0, "wow", 7}}})
	got := map[pointRecord]int{}
	for _, p := range readPoints(t, r) {
		got[p]++
	}
	sec := strconv.FormatInt(t0, 10)
	want := map[pointRecord]int{
		{"a", sec, "love", "3"}: 1, {"a", sec, "fire", "2"}: 1, {"b", sec, "love", "1"}: 1, {"a", sec, "wow", "7"}: 1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("data points %v; want %v", got, want)
	}
}

func TestRedisDataPointsAreCapped(t *testing.T) {
	r, _ := newRedisOnClock(t, RedisOptions{PointsMaxLen: 200})
	t0 := contractT0.Unix()
	for i := range 20 {
		var deltas []Delta
		for j := range 200 {
			deltas = append(deltas, Delta{"one-stream", t0 + int64(j), "like", int64(i)})
		}
		mustAdd(t, r, deltas...)
	}
	n, err := r.client.XLen(ctx, r.tags[shard("one-stream")]+"points").Result()
	if err != nil {
		t.Fatal(err)
	}
	// MAXLEN ~ trims whole nodes of 100 entries, so a little over the cap.
	if n < 200 || n > 400 {
		t.Fatalf("data-point stream holds %d records after 4000 adds; want about 200", n)
	}
}

// commandCalls returns how many times Redis ran command, scripts included.
func commandCalls(t *testing.T, c redis.UniversalClient, command string) int64 {
	t.Helper()
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`cmdstat_` + command + `:calls=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// TestRedisCollectReadsOnlyStreamsWithReactions: a pull node serving 2000
// streams of which 3 had reactions reads the counts of those 3 only.
func TestRedisCollectReadsOnlyStreamsWithReactions(t *testing.T) {
	r, clk := newRedisOnClock(t, RedisOptions{})
	t0 := contractT0.Unix()
	var cursors []Cursor
	for i := range 2000 {
		cursors = append(cursors, Cursor{fmt.Sprintf("served-%d", i), t0 - 1})
	}
	mustAdd(t, r, Delta{"served-7", t0, "love", 1}, Delta{"served-700", t0, "love", 2}, Delta{"served-1999", t0, "wow", 3},
		Delta{"not-served", t0, "haha", 4})
	sealThrough(clk, t0)
	before := commandCalls(t, r.client, "hgetall")
	c := mustCollect(t, r, cursors...)
	reads := commandCalls(t, r.client, "hgetall") - before
	if len(c.Seconds) != 3 {
		t.Fatalf("collected %s; want the 3 served streams with reactions", describe(c.Seconds))
	}
	if reads != 3 {
		t.Fatalf("Collect read %d count hashes; want 3, one per served stream with reactions", reads)
	}
}

func TestNewRedisClient(t *testing.T) {
	standalone := redistest.Start(t)
	for _, tc := range []struct {
		spec    string
		cluster bool
		err     string
	}{
		{spec: "redis://127.0.0.1:6400/2"},
		{spec: standalone.Addr()},
		{spec: "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t)), err: "whether it is a cluster"},
		{spec: "10.0.0.1:7000, 10.0.0.2:7000,10.0.0.3:7000", cluster: true},
		{spec: "", err: "empty"},
		{spec: "redis://h:1/notadb", err: "cannot parse"},
		{spec: "10.0.0.1:7000,nohost", err: "not host:port"},
	} {
		c, err := NewRedisClient(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NewRedisClient(%q) error %v; want one about %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewRedisClient(%q): %v", tc.spec, err)
			continue
		}
		if _, isCluster := c.(*redis.ClusterClient); isCluster != tc.cluster {
			t.Errorf("NewRedisClient(%q) is %T; cluster %v wanted", tc.spec, c, tc.cluster)
		}
		_ = c.Close()
	}
	if got := RedisName("redis://user:secret@cache:6379/1"); got != "cache:6379" {
		t.Errorf("RedisName leaks or mangles: %q", got)
	}
}

// TestRedisCollectWhenMoreWrittenThanServed: with more streams written in
// a shard than the node serves there, the served ones are looked up in the
// index instead, with the same result and still only their counts read.
func TestRedisCollectWhenMoreWrittenThanServed(t *testing.T) {
	r, clk := newRedisOnClock(t, RedisOptions{})
	t0 := contractT0.Unix()
	var deltas []Delta
	for i := range 1000 {
		deltas = append(deltas, Delta{fmt.Sprintf("s%d", i), t0, "like", int64(i)})
	}
	mustAdd(t, r, deltas...)
	sealThrough(clk, t0+1)
	before := commandCalls(t, r.client, "hgetall")
	c := mustCollect(t, r, Cursor{"s5", t0 - 1}, Cursor{"s999", t0 - 5}, Cursor{"never", t0 - 1})
	want := []Second{{"s5", t0, []Count{{"like", 5}}, nil, nil}, {"s999", t0, []Count{{"like", 999}}, nil, nil}}
	if !reflect.DeepEqual(c.Seconds, want) {
		t.Fatalf("collected %s; want %s", describe(c.Seconds), describe(want))
	}
	// s5: second t0; s999: t0-4 to t0, its newest written second.
	if reads := commandCalls(t, r.client, "hgetall") - before; reads != 6 {
		t.Fatalf("Collect read %d count hashes; want 6, all of the 2 served streams with reactions", reads)
	}
}

// TestRedisHistoryOfCarriedSecondsOnTheRedisClock: on the Redis clock the
// push node can only guess the minute a late second is carried into; its
// guesses cover it, so a backlog ten minutes old lands in history in the
// open second, once.
func TestRedisHistoryOfCarriedSecondsOnTheRedisClock(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	r := newRedis(t, c.Addrs(), RedisOptions{})
	old := time.Now().Unix() - 600
	mustAddBatch(t, r, Batch{ID: "backlog", Deltas: []Delta{{"late", old, "love", 4}}, Comments: comments("late", old, "from the backlog")})
	before := time.Now().Unix()
	var h History
	testutil.Eventually(t, 5*time.Second, "the carried second to seal", func() bool {
		var err error
		h, err = r.History(ctx, "late", old-10, old+3000)
		return err == nil && len(h.Seconds) > 0
	})
	if len(h.Seconds) != 1 || h.Seconds[0].Second < before-2 || h.Seconds[0].Second > before+2 ||
		!reflect.DeepEqual(h.Seconds[0].Counts, []Count{{"love", 4}}) || len(h.Seconds[0].Comments) != 1 {
		t.Fatalf("history of a carried backlog = %s; want love 4 and the comment once, in the second open at %d", describe(h.Seconds), before)
	}
}

// A managed cluster gives one configuration endpoint: --redis with that one
// address follows the cluster's slots instead of failing on MOVED.
func TestRedisClusterFromOneAddress(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	r := newRedis(t, c.Servers[1].Addr(), RedisOptions{})
	if _, ok := r.opts.Client.(*redis.ClusterClient); !ok {
		t.Errorf("client for one cluster node is %T; want *redis.ClusterClient", r.opts.Client)
	}
	// Keys in every shard, so on every master.
	now := time.Now()
	keys := make([]string, 4*RedisShards)
	for i := range keys {
		keys[i] = fmt.Sprintf("user%d", i)
	}
	uses := make([]LimitUse, len(keys))
	for i := range uses {
		uses[i] = LimitUse{Used: 1e9, Since: now.UnixNano()}
	}
	if _, err := r.ShareLimits(context.Background(), "u", now, keys, uses); err != nil {
		t.Fatalf("sharing limits through one cluster node: %v", err)
	}
}

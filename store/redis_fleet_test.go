package store

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/internal/redistest"
)

// total sums the counts of seconds, keyed by second, failing on a second
// seen twice.
func addTotals(t *testing.T, into map[int64]int64, secs []Second) {
	t.Helper()
	for _, s := range secs {
		if _, dup := into[s.Second]; dup {
			t.Errorf("second %d collected twice", s.Second)
		}
		for _, c := range s.Counts {
			into[s.Second] += c.N
		}
	}
}

func sum(m map[int64]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// TestRedisSlotMigrationLosesNothing moves the slot of a shard from one
// master to another key by key, the way redis-cli --cluster reshard does,
// while a push node keeps adding and a pull node keeps collecting after
// every moved key. Whatever is on which node, Collect must never return a
// horizon past a second whose counts it did not read, and Add must never
// write into a second already collected: every count added is collected
// exactly once.
func TestRedisSlotMigrationLosesNothing(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	clk := clock.NewManual(contractT0.Add(100 * time.Millisecond))
	r := newRedis(t, c.Addrs(), RedisOptions{Clock: clk, Prefix: "mig", PointsMaxLen: -1})
	ctx := context.Background()
	stream := "s"
	for shard(stream) == 0 { // shard 0's node answers Horizon; move another
		stream += "x"
	}
	tag := r.tags[shard(stream)]
	t0 := contractT0.Unix()

	var added int64
	var pending []Batch // batches whose Add failed, retried like a push backlog
	seq := 0
	// A flush during the move waits out TRYAGAIN until the move ends (it
	// needs all its keys on one node), which here waits for the flush: a
	// short deadline keeps the test short. A sync reads one key at a time,
	// so it goes on.
	short := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, 150*time.Millisecond)
	}
	add := func(sec, n int64) {
		seq++
		pending = append(pending, Batch{ID: fmt.Sprintf("mig-%d", seq), Deltas: []Delta{{stream, sec, "like", n}}})
		added += n
		for len(pending) > 0 {
			actx, cancel := short()
			err := r.Add(actx, pending[0])
			cancel()
			if err != nil {
				t.Logf("Add %s during the move: %v", pending[0].ID, err)
				return
			}
			pending = pending[1:]
		}
	}
	collected := map[int64]int64{}
	cursor := t0 - 1
	synced := 0
	collect := func() {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		coll, err := r.Collect(cctx, []Cursor{{stream, cursor}})
		cancel()
		if err != nil {
			t.Logf("Collect during the move failed (safe: the cursor stays): %v", err)
			return
		}
		synced++
		addTotals(t, collected, coll.Seconds)
		cursor = coll.Horizon
	}
	// Seconds t0 .. t0+4 hold counts before the move starts; t0 is sealed
	// and collected, the others are open.
	for i := range int64(5) {
		add(t0+i, 10+i)
	}
	sealThrough(clk, t0)
	collect()

	nodes := make([]*redis.Client, len(c.Servers))
	ids := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		nodes[i] = redis.NewClient(&redis.Options{Addr: s.Addr()})
		defer nodes[i].Close()
		id, err := nodes[i].Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	slot, err := nodes[0].ClusterKeySlot(ctx, tag+"active").Result()
	if err != nil {
		t.Fatal(err)
	}
	src := -1
	for i, n := range nodes {
		if k, _ := n.ClusterCountKeysInSlot(ctx, int(slot)).Result(); k > 0 {
			src = i
		}
	}
	if src < 0 {
		t.Fatalf("no node holds keys of slot %d", slot)
	}
	dst := (src + 1) % len(nodes)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(nodes[dst].Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src]).Err())
	must(nodes[src].Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst]).Err())
	keys, err := nodes[src].ClusterGetKeysInSlot(ctx, int(slot), 1000).Result()
	must(err)
	// The index first, as in the review's proof, then the rest.
	for i, k := range keys {
		if strings.HasSuffix(k, ":active") {
			keys[0], keys[i] = keys[i], keys[0]
		}
	}
	t.Logf("moving slot %d from node %d to node %d: %d keys", slot, src, dst, len(keys))
	host, port, _ := strings.Cut(c.Servers[dst].Addr(), ":")
	sec := t0 + 1
	for _, k := range keys {
		must(nodes[src].Do(ctx, "MIGRATE", host, port, "", 0, 5000, "KEYS", k).Err())
		// A flush and a sync between every moved key: a late second, an
		// on-time one, then the clock seals one more second.
		add(sec, 1)
		add(sec+5, 2)
		sec++
		sealThrough(clk, sec-1)
		collect()
	}
	for _, n := range nodes {
		must(n.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst]).Err())
	}
	for len(pending) > 0 {
		add(sec+5, 0)
	}
	sealThrough(clk, sec+10)
	collect()
	if got := sum(collected); got != added {
		t.Fatalf("added %d likes during the move, collected %d: %v", added, got, collected)
	}
	if synced != len(keys)+2 {
		t.Errorf("%d of %d syncs during the move succeeded; want all: a sync reads one key at a time", synced-2, len(keys))
	}
}

// TestRedisSealHoldsAcrossClockSkew: a push node's store and a pull node's
// store whose clocks are 300 ms apart (as two Redis masters may be) agree
// on what is sealed: a late write never lands in a second already
// collected.
func TestRedisSealHoldsAcrossClockSkew(t *testing.T) {
	srv := redistest.Start(t)
	t0 := contractT0.Unix()
	pullClk := clock.NewManual(time.Unix(t0+1, 0).Add(DefaultSealDelay + 100*time.Millisecond)) // t0 sealed
	pushClk := clock.NewManual(pullClk.Now().Add(-300 * time.Millisecond))                      // t0 still open
	pullSide := newRedis(t, srv.URL(), RedisOptions{Clock: pullClk, Prefix: "skew"})
	pushSide := newRedis(t, srv.URL(), RedisOptions{Clock: pushClk, Prefix: "skew"})
	mustAdd(t, pushSide, Delta{"s", t0, "like", 5})
	collected := map[int64]int64{}
	c1 := mustCollect(t, pullSide, Cursor{"s", t0 - 1})
	addTotals(t, collected, c1.Seconds)
	mustAdd(t, pushSide, Delta{"s", t0, "like", 2}) // late by the pull side's clock
	pullClk.Add(2 * time.Second)
	pushClk.Add(2 * time.Second)
	c2 := mustCollect(t, pullSide, Cursor{"s", c1.Horizon})
	addTotals(t, collected, c2.Seconds)
	if got := sum(collected); got != 7 {
		t.Fatalf("collected %d likes of 7: %v; a late write landed in a second already published", got, collected)
	}
	// And the other way round: the pull side behind the push side.
	mustAdd(t, pullSide, Delta{"s", c2.Horizon + 1, "like", 1})
	pushClk.Add(time.Second)
	c3 := mustCollect(t, pushSide, Cursor{"s", c2.Horizon})
	addTotals(t, collected, c3.Seconds)
	mustAdd(t, pullSide, Delta{"s", c2.Horizon + 1, "like", 3})
	pullClk.Add(2 * time.Second)
	pushClk.Add(2 * time.Second)
	c4 := mustCollect(t, pushSide, Cursor{"s", c3.Horizon})
	addTotals(t, collected, c4.Seconds)
	if got := sum(collected); got != 11 {
		t.Fatalf("collected %d likes of 11: %v", got, collected)
	}
}

// TestRedisFarAheadClockIsClamped: a push node whose clock is 200 s ahead
// writes seconds whose keys (kept for Retention, 120 s) would expire before
// they are sealed; the store puts them in the open second instead, so
// viewers get them now.
func TestRedisFarAheadClockIsClamped(t *testing.T) {
	r, clk := newRedisOnClock(t, RedisOptions{})
	t0 := contractT0.Unix()
	mustCollect(t, r, Cursor{"s", t0 - 5}) // a pull node syncs as usual
	mustAdd(t, r, Delta{"s", t0 + 200, "like", 4}, Delta{"s", t0 + 5, "like", 1})
	sealThrough(clk, t0+6)
	c := mustCollect(t, r, Cursor{"s", t0 - 5})
	collected := map[int64]int64{}
	addTotals(t, collected, c.Seconds)
	if collected[t0+5] != 1 || sum(collected) != 5 {
		t.Fatalf("collected %v by second %d; want the 4 likes from 200 s ahead in an open second and 1 like in %d", collected, t0+6, t0+5)
	}
	// Within MaxAhead a second is kept: a clock 2 s ahead only delays.
	mustAdd(t, r, Delta{"s", t0 + 6 + MaxAhead, "like", 3})
	sealThrough(clk, t0+6+MaxAhead)
	c = mustCollect(t, r, Cursor{"s", t0 + 6})
	if len(c.Seconds) != 1 || c.Seconds[0].Second != t0+6+MaxAhead {
		t.Fatalf("a second %d s ahead was collected as %s; want it kept", MaxAhead, describe(c.Seconds))
	}
}

// TestRedisCommentLoadAcrossSkewedClocks: push nodes whose clocks are 5 s
// ahead and 5 s behind see the same live fleet and each other's reports,
// and a node that stops reporting drops out CommentLoadTTL after its last
// report, whatever the clocks say: the comment budget's seats are split
// over the same nodes everywhere.
func TestRedisCommentLoadAcrossSkewedClocks(t *testing.T) {
	srv := redistest.Start(t)
	const skew = 5 * time.Second
	ahead := newRedis(t, srv.URL(), RedisOptions{Clock: clock.Offset(skew), Prefix: "load"})
	behind := newRedis(t, srv.URL(), RedisOptions{Clock: clock.Offset(-skew), Prefix: "load"})
	report := func(s *Redis, node string, offered int64) {
		t.Helper()
		if err := s.ReportComments(ctx, node, []CommentReport{{"s", offered}}); err != nil {
			t.Fatalf("ReportComments: %v", err)
		}
	}
	load := func(s *Redis) CommentLoad {
		t.Helper()
		l, err := s.CommentLoad(ctx, []string{"s"})
		if err != nil {
			t.Fatalf("CommentLoad: %v", err)
		}
		return l
	}
	report(ahead, "push-ahead", 40)
	report(behind, "push-behind", 20)
	want := CommentLoad{Nodes: []string{"push-ahead", "push-behind"}, Streams: [][]NodeLoad{{{"push-ahead", 40}, {"push-behind", 20}}}}
	for _, s := range []struct {
		name string
		r    *Redis
	}{{"ahead", ahead}, {"behind", behind}, {"ahead again", ahead}} {
		if got := load(s.r); !reflect.DeepEqual(got, want) {
			t.Fatalf("the node %s sees %+v; want %+v", s.name, got, want)
		}
	}
	// push-ahead stops; push-behind goes on reporting every 250 ms.
	stopped := time.Now()
	for {
		report(behind, "push-behind", 20)
		got := load(behind)
		gone := !slices.Contains(got.Nodes, "push-ahead") && len(got.Streams[0]) == 1
		since := time.Since(stopped)
		if gone && since < CommentLoadTTL-500*time.Millisecond {
			t.Fatalf("push-ahead dropped out %v after its last report; want %v", since, CommentLoadTTL)
		}
		if gone {
			break
		}
		if since > CommentLoadTTL+time.Second {
			t.Fatalf("push-ahead still counted %v after its last report: %+v; want gone after %v", since, got, CommentLoadTTL)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

package store

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/internal/redistest"
)

// TestRedisMinReplicasSurvivesFailover: a master dies after taking a batch
// its replica never got, and the replica is promoted. With MinReplicas 1
// Add never reported that batch done, so the writer still holds it and
// writes it to the new master: every batch is counted once. (With
// MinReplicas 0, Redis's asynchronous replication, Add reports it done and
// the failover loses it.)
func TestRedisMinReplicasSurvivesFailover(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	clk := clock.NewManual(contractT0.Add(100 * time.Millisecond))
	opts := RedisOptions{Clock: clk, Prefix: "failover", MinReplicas: 1, ReplicaTimeout: time.Second}
	r := newRedis(t, master.URL(), opts)
	t0 := contractT0.Unix()

	var backlog []Batch // what a push node keeps until Add succeeds
	write := func(s *Redis) {
		for len(backlog) > 0 {
			if err := s.Add(ctx, backlog[0]); err != nil {
				if !errors.Is(err, ErrNotReplicated) {
					t.Logf("Add %s: %v", backlog[0].ID, err)
				}
				return
			}
			backlog = backlog[1:]
		}
	}
	backlog = append(backlog, Batch{ID: "b1", Deltas: []Delta{{"s", t0, "like", 3}}})
	write(r)
	if len(backlog) != 0 {
		t.Fatalf("Add with a healthy replica failed: %d batches kept", len(backlog))
	}

	replica.Pause() // replication falls behind
	backlog = append(backlog, Batch{ID: "b2", Deltas: []Delta{{"s", t0, "like", 4}}})
	start := time.Now()
	write(r)
	if len(backlog) != 1 {
		t.Fatalf("Add reported batch b2 done though no replica confirmed it")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("an unconfirmed Add took %v; want about the replica timeout", d)
	}

	// The master dies; the replica, resumed, is promoted.
	master.Kill()
	replica.Resume()
	promote := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer promote.Close()
	if err := promote.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	// The fleet now writes to the new master, which has no replica yet.
	opts.MinReplicas = 0
	promoted := newRedis(t, replica.URL(), opts)
	write(promoted)
	if len(backlog) != 0 {
		t.Fatalf("the kept batch was not written to the new master")
	}
	sealThrough(clk, t0)
	c := mustCollect(t, promoted, Cursor{"s", t0 - 1})
	got := map[int64]int64{}
	addTotals(t, got, c.Seconds)
	if sum(got) != 7 {
		t.Fatalf("after the failover the store holds %v; want the 7 likes of both batches once", got)
	}
}

// TestRedisMinReplicasRetryCountsOnce: a batch the master took but WAIT
// did not confirm is written again once the replica is back; the master
// adds it once and confirms it.
func TestRedisMinReplicasRetryCountsOnce(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	clk := clock.NewManual(contractT0.Add(100 * time.Millisecond))
	r := newRedis(t, master.URL(), RedisOptions{Clock: clk, MinReplicas: 1, ReplicaTimeout: time.Second})
	t0 := contractT0.Unix()
	b := Batch{ID: "slow", Deltas: []Delta{{"s", t0, "like", 5}}}
	replica.Pause()
	if err := r.Add(ctx, b); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Add with the replica paused = %v; want ErrNotReplicated", err)
	}
	sealThrough(clk, t0)
	if _, err := r.Collect(ctx, []Cursor{{"s", t0 - 1}}); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Collect with the replica paused = %v; want ErrNotReplicated (its seal is unconfirmed)", err)
	}
	replica.Resume()
	mustAddBatch(t, r, b)
	c := mustCollect(t, r, Cursor{"s", t0 - 1})
	if len(c.Seconds) != 1 || c.Seconds[0].Counts[0].N != 5 {
		t.Fatalf("after the retry: %s; want like 5 once", describe(c.Seconds))
	}
	// The replica has it all.
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()
	n, err := rc.HGet(ctx, r.tags[shard("s")]+"c:s:"+strconv.FormatInt(t0, 10), "like").Int64()
	if err != nil || n != 5 {
		t.Fatalf("replica holds %d, %v; want 5", n, err)
	}
}

// TestRedisAddTellsWhenNothingWasWritten: with Redis down, Add fails with
// ErrNotApplied, so a push node may retry the batch however late; a write
// that reached Redis (here: not confirmed by replicas) does not say so.
func TestRedisAddTellsWhenNothingWasWritten(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL(), RedisOptions{MinReplicas: 1, ReplicaTimeout: 50 * time.Millisecond})
	b := Batch{ID: "b", Deltas: []Delta{{"s", time.Now().Unix(), "like", 1}}}
	if err := r.Add(ctx, b); err == nil || errors.Is(err, ErrNotApplied) {
		t.Fatalf("Add without the replicas it needs = %v; want an error that may have applied", err)
	}
	srv.Kill()
	if err := r.Add(ctx, b); !errors.Is(err, ErrNotApplied) {
		t.Fatalf("Add with Redis down = %v; want ErrNotApplied", err)
	}
}

// TestRedisClusterMinReplicas: on a cluster, Add and Collect wait for a
// replica of every master they wrote to, each master on its own
// connection; a master whose replica is frozen fails the batch, whose
// retry counts once.
func TestRedisClusterMinReplicas(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	var replicas []*redistest.Server
	for _, m := range c.Servers {
		replicas = append(replicas, redistest.StartReplica(t, m))
	}
	clk := clock.NewManual(contractT0.Add(100 * time.Millisecond))
	r := newRedis(t, c.Addrs(), RedisOptions{Clock: clk, MinReplicas: 1, ReplicaTimeout: time.Second})
	t0 := contractT0.Unix()
	var deltas []Delta
	var cursors []Cursor
	for i := range 200 { // every shard, so every master
		id := fmt.Sprintf("s%d", i)
		deltas = append(deltas, Delta{id, t0, "like", 1})
		cursors = append(cursors, Cursor{id, t0 - 1})
	}
	mustAddBatch(t, r, Batch{ID: "all", Deltas: deltas})

	replicas[1].Pause()
	b := Batch{ID: "frozen", Deltas: deltas}
	if err := r.Add(ctx, b); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Add with one master's replica frozen = %v; want ErrNotReplicated", err)
	}
	replicas[1].Resume()
	mustAddBatch(t, r, b)
	sealThrough(clk, t0)
	var total int64
	for _, s := range mustCollect(t, r, cursors...).Seconds {
		for _, cnt := range s.Counts {
			total += cnt.N
		}
	}
	if total != 400 {
		t.Fatalf("collected %d likes; want 400: both batches once", total)
	}
}

package archive

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/internal/pgtest"
	"github.com/emojicast/emojicast/internal/redistest"
	tu "github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/store"
)

// t0 is a whole minute, so history ranges line up.
var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

type rig struct {
	st    *store.Redis
	rdb   redis.UniversalClient
	clk   *clock.Manual
	db    *pgxpool.Pool
	pg    *pgtest.Server
	read  *Reader
	reg   *prometheus.Registry
	arch  *Archiver
	first int64 // the first second written
}

func newRig(t *testing.T, opts store.RedisOptions, aopts Options) *rig {
	t.Helper()
	return newRigOn(t, redistest.Start(t), opts, aopts)
}

func newRigOn(t *testing.T, srv *redistest.Server, opts store.RedisOptions, aopts Options) *rig {
	t.Helper()
	pg := pgtest.Start(t)
	rdb, err := store.NewRedisClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(t0.Add(100 * time.Millisecond))
	opts.Client, opts.Clock = rdb, clk
	st, err := store.NewRedis(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	db, err := Open(context.Background(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	reg := prometheus.NewRegistry()
	aopts.Redis, aopts.DB, aopts.Registerer = rdb, db, reg
	aopts.Idle = 50 * time.Millisecond
	arch, err := New(aopts)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{st: st, rdb: rdb, clk: clk, db: db, pg: pg, read: NewReader(db), reg: reg, arch: arch, first: t0.Unix()}
}

// addSecond writes one second of taps and comments of each stream, then
// moves the clock past it: several flushes per second, as several push
// nodes make.
func (r *rig) addSecond(t *testing.T, sec int64, streams []string, batch string) {
	t.Helper()
	for node := range 3 {
		b := store.Batch{ID: fmt.Sprintf("%s-%d-%d", batch, sec, node)}
		for i, s := range streams {
			b.Deltas = append(b.Deltas,
				store.Delta{Stream: s, Second: sec, Emoji: "love", Count: int64(1 + node + i)},
				store.Delta{Stream: s, Second: sec, Emoji: "fire", Count: int64(2*node + 1)})
			b.Comments = append(b.Comments, store.CommentAt{Stream: s, Second: sec,
				Comment: store.Comment{User: "u" + fmt.Sprint(node), Text: fmt.Sprintf("hi %d", sec), ID: fmt.Sprintf("c%d-%d-%d", sec, node, i)}})
		}
		if err := r.st.Add(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// sealThrough moves the clock so sec is sealed, and collects so the seal
// moves in Redis too.
func (r *rig) sealThrough(t *testing.T, sec int64) {
	t.Helper()
	r.clk.Set(time.Unix(sec+2, 0))
	if _, err := r.st.Collect(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) drainAll(t testing.TB) int {
	t.Helper()
	n := 0
	for k := range store.RedisShards {
		m, err := r.arch.Drain(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		n += m
	}
	return n
}

// assertEqualsHistory checks, stream by stream and second by second, that
// the archive holds what the store's History answers.
func (r *rig) assertEqualsHistory(t *testing.T, streams []string, from, to int64) {
	t.Helper()
	for _, s := range streams {
		h, err := r.st.History(context.Background(), s, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Seconds) == 0 {
			t.Fatalf("history of %s is empty: the test wrote nothing", s)
		}
		got, err := r.read.Seconds(context.Background(), s, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, h.Seconds) {
			t.Fatalf("archive of %s:\n%+v\nwant the history:\n%+v", s, got, h.Seconds)
		}
	}
}

var streams = []string{"alpha", "beta", "gamma", "delta-stream"}

// TestArchiveEqualsHistory: counts summed over flushes, late counts
// carried, comments in order and a takedown: the archive answers what
// History does; draining again, or two archivers at once, adds nothing.
func TestArchiveEqualsHistory(t *testing.T) {
	r := newRig(t, store.RedisOptions{}, Options{BatchSize: 7})
	ctx := context.Background()
	for sec := r.first; sec < r.first+10; sec++ {
		r.addSecond(t, sec, streams, "n")
		r.sealThrough(t, sec)
	}
	// Late: carried into the oldest open second.
	r.addSecond(t, r.first+2, streams[:2], "late")
	if err := r.st.Retract(ctx, "alpha", fmt.Sprintf("c%d-1-0", r.first+3)); err != nil {
		t.Fatal(err)
	}
	r.sealThrough(t, r.first+12)
	if n := r.drainAll(t); n == 0 {
		t.Fatal("the archiver archived nothing")
	}
	r.assertEqualsHistory(t, streams, r.first, r.first+59)
	// The takedown applies to the archive.
	secs, _ := r.read.Seconds(ctx, "alpha", r.first+3, r.first+3)
	if len(secs) != 1 || len(secs[0].Comments) != 2 {
		t.Fatalf("alpha's second 3 in the archive: %+v; want 2 comments, the third taken down", secs)
	}
	if n := r.drainAll(t); n != 0 {
		t.Fatalf("a second drain archived %d records; want 0", n)
	}
	// Two archivers on the same shards at once: row locks serialise them.
	for sec := r.first + 13; sec < r.first+20; sec++ {
		r.addSecond(t, sec, streams, "n")
	}
	r.sealThrough(t, r.first+20)
	other, err := New(Options{Redis: r.rdb, DB: r.db, BatchSize: 3, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, a := range []*Archiver{r.arch, other} {
		wg.Go(func() {
			for k := range store.RedisShards {
				if _, err := a.Drain(ctx, k); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	r.assertEqualsHistory(t, streams, r.first, r.first+59)
	if lost := testutil.ToFloat64(r.arch.lost); lost != 0 {
		t.Fatalf("lost %v points; want 0", lost)
	}
}

// TestArchiveSurvivesPostgresOutage: PostgreSQL stops for 30 s while the
// archiver runs and taps keep coming; when it comes back the archive
// catches up to exactly the history.
func TestArchiveSurvivesPostgresOutage(t *testing.T) {
	t.Parallel()
	r := newRig(t, store.RedisOptions{}, Options{BatchSize: 50})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.arch.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	sec := r.first
	for ; sec < r.first+5; sec++ {
		r.addSecond(t, sec, streams, "n")
		r.sealThrough(t, sec)
	}
	r.pg.Stop()
	stopped := time.Now()
	for ; sec < r.first+25; sec++ {
		r.addSecond(t, sec, streams, "n")
		r.sealThrough(t, sec)
		time.Sleep(time.Second)
	}
	for time.Since(stopped) < 30*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	r.pg.Restart()
	for ; sec < r.first+30; sec++ {
		r.addSecond(t, sec, streams, "n")
		r.sealThrough(t, sec)
	}
	tu.Eventually(t, 30*time.Second, "the archive catches up", func() bool {
		return r.lag(t) == 0
	})
	if errs := testutil.ToFloat64(r.arch.errs); errs == 0 {
		t.Fatal("no archive round failed while PostgreSQL was down: the outage was not seen")
	}
	r.assertEqualsHistory(t, streams, r.first, r.first+59)
}

// lag is the records of every shard's stream after its archived offset.
func (r *rig) lag(t *testing.T) int64 {
	t.Helper()
	ctx := context.Background()
	var n int64
	for k := range store.RedisShards {
		var last string
		err := r.db.QueryRow(ctx, "SELECT last_id FROM emojicast_offsets WHERE shard = $1", k).Scan(&last)
		if err != nil {
			last = "0-0"
		}
		msgs, err := r.rdb.XRange(ctx, store.PointsKey("emojicast", k), "("+last, "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		n += int64(len(msgs))
	}
	return n
}

// TestArchiveCountsTrimmedPoints: records trimmed from a stream before the
// archiver ran are counted as lost, exactly, and persist in the offsets.
func TestArchiveCountsTrimmedPoints(t *testing.T) {
	r := newRig(t, store.RedisOptions{PointsMaxLen: 100}, Options{})
	ctx := context.Background()
	// One stream, one shard: 3 flushes × (2 counts + 1 comment) a second.
	for sec := r.first; sec < r.first+100; sec++ {
		r.addSecond(t, sec, streams[:1], "n")
		r.sealThrough(t, sec)
	}
	key := store.PointsKey("emojicast", store.ShardOf(streams[0]))
	info, err := r.rdb.XInfoStream(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	trimmed := info.EntriesAdded - info.Length
	if trimmed <= 0 {
		t.Fatalf("nothing was trimmed (%d added, %d kept): the test is wrong", info.EntriesAdded, info.Length)
	}
	r.drainAll(t)
	if lost := testutil.ToFloat64(r.arch.lost); int64(lost) != trimmed {
		t.Fatalf("lost %v points; want the %d trimmed", lost, trimmed)
	}
	var lost int64
	if err := r.db.QueryRow(ctx, "SELECT sum(lost) FROM emojicast_offsets").Scan(&lost); err != nil || lost != trimmed {
		t.Fatalf("offsets record %d lost, %v; want %d", lost, err, trimmed)
	}
	// The seconds still in the stream are archived whole.
	secs, err := r.read.Seconds(ctx, streams[0], r.first, r.first+99)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := r.st.History(ctx, streams[0], r.first, r.first+99)
	last := h.Seconds[len(h.Seconds)-1]
	if got := secs[len(secs)-1]; !reflect.DeepEqual(got, last) {
		t.Fatalf("newest archived second %+v; want %+v", got, last)
	}
	// More writes after: nothing more lost.
	r.addSecond(t, r.first+100, streams[:1], "n")
	r.drainAll(t)
	if lost := testutil.ToFloat64(r.arch.lost); int64(lost) != trimmed {
		t.Fatalf("after a drain that kept up, lost %v points; want still %d", lost, trimmed)
	}
}

// TestTieredHistory: seconds older than the store keeps come from the
// archive, newer from the store, and the answer is the same as the store's
// when it still has both.
func TestTieredHistory(t *testing.T) {
	r := newRig(t, store.RedisOptions{}, Options{})
	for sec := r.first; sec < r.first+180; sec += 7 {
		r.addSecond(t, sec, streams[:1], "n")
		r.sealThrough(t, sec)
	}
	r.drainAll(t)
	r.clk.Set(time.Unix(r.first+180+2, 0))
	want, err := r.st.History(context.Background(), streams[0], r.first, r.first+179)
	if err != nil {
		t.Fatal(err)
	}
	// As if the store kept 3 minutes: the cut is one minute after r.first.
	tiered := &Tiered{Recent: r.st, Archive: r.read, Kept: 3 * time.Minute, Clock: r.clk}
	got, err := tiered.History(context.Background(), streams[0], r.first, r.first+179)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("tiered history\n%+v\nwant\n%+v", got, want)
	}
	// A range wholly older than the cut, with rows the store never had.
	if _, err := r.db.Exec(context.Background(), "UPDATE emojicast_seconds SET counts = '{}' WHERE second = $1", r.first); err != nil {
		t.Fatal(err)
	}
	got, err = tiered.History(context.Background(), streams[0], r.first, r.first+59)
	if err != nil {
		t.Fatal(err)
	}
	if got.Horizon != want.Horizon || len(got.Seconds) == 0 || got.Seconds[0].Second != r.first || len(got.Seconds[0].Counts) != 0 {
		t.Fatalf("old range %+v; want the archive's seconds (its first without counts) and the store's horizon %d", got, want.Horizon)
	}
}

// TestArchiveBatchThatFailsAtTheEndLeavesNothing: a batch whose rows were
// written but whose offset update failed (as a crash before the commit
// would) leaves no row, and the next drain archives its records once.
func TestArchiveBatchThatFailsAtTheEndLeavesNothing(t *testing.T) {
	r := newRig(t, store.RedisOptions{}, Options{BatchSize: 5})
	ctx := context.Background()
	for sec := r.first; sec < r.first+5; sec++ {
		r.addSecond(t, sec, streams, "n")
		r.sealThrough(t, sec)
	}
	// Every shard's offset row exists, then no offset may move.
	r.drainAll(t)
	for sec := r.first + 5; sec < r.first+10; sec++ {
		r.addSecond(t, sec, streams, "n")
		r.sealThrough(t, sec)
	}
	if _, err := r.db.Exec(ctx, "ALTER TABLE emojicast_offsets ADD CONSTRAINT frozen CHECK (accounted < 0) NOT VALID"); err != nil {
		t.Fatal(err)
	}
	for k := range store.RedisShards {
		if n, err := r.arch.Drain(ctx, k); err == nil && n > 0 {
			t.Fatalf("shard %d archived %d records with its offset frozen", k, n)
		}
	}
	var rows int
	if err := r.db.QueryRow(ctx, "SELECT count(*) FROM emojicast_seconds WHERE second >= $1", r.first+5).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d rows of the failed batches were kept (%v); want 0", rows, err)
	}
	if _, err := r.db.Exec(ctx, "ALTER TABLE emojicast_offsets DROP CONSTRAINT frozen"); err != nil {
		t.Fatal(err)
	}
	r.drainAll(t)
	r.assertEqualsHistory(t, streams, r.first, r.first+59)
}

// TestArchiveWorkersFillingThePool: as many workers as the pool has
// connections, all meeting a new day at once, finish: the worker that
// makes the day's partition must not wait for a connection the others
// hold while they wait for it.
func TestArchiveWorkersFillingThePool(t *testing.T) {
	r := newRig(t, store.RedisOptions{}, Options{})
	cfg := r.db.Config()
	cfg.MaxConns = 2
	small, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	arch, err := New(Options{Redis: r.rdb, DB: small, Workers: 2, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	var many []string
	for i := range 200 {
		many = append(many, fmt.Sprintf("s%d", i))
	}
	r.addSecond(t, r.first, many, "n")
	r.sealThrough(t, r.first)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for k := w; k < store.RedisShards; k += 2 {
				if _, err := arch.Drain(ctx, k); err != nil {
					t.Errorf("shard %d: %v", k, err)
					return
				}
			}
		})
	}
	wg.Wait()
	r.assertEqualsHistory(t, many[:3], r.first, r.first+59)
	if _, err := New(Options{Redis: r.rdb, DB: small, Workers: 3}); err == nil {
		t.Fatal("New took 3 workers on a pool of 2 connections")
	}
}

// TestArchiveWaitsForReplicas: with MinReplicas, records only the master
// has (its replica stopped: what a failover would lose, and push nodes
// would write again) are not archived; once the replica has them, they
// are, once.
func TestArchiveWaitsForReplicas(t *testing.T) {
	srv := redistest.Start(t)
	replica := redistest.StartReplica(t, srv)
	r := newRigOn(t, srv, store.RedisOptions{}, Options{MinReplicas: 1})
	for sec := r.first; sec < r.first+3; sec++ {
		r.addSecond(t, sec, streams, "n")
		r.sealThrough(t, sec)
	}
	r.drainAll(t)
	replica.Pause()
	for sec := r.first + 3; sec < r.first+6; sec++ {
		r.addSecond(t, sec, streams, "n")
		r.sealThrough(t, sec)
	}
	failed := 0
	for k := range store.RedisShards {
		if _, err := r.arch.Drain(context.Background(), k); err != nil {
			failed++
		}
	}
	replica.Resume()
	var rows int
	if err := r.db.QueryRow(context.Background(), "SELECT count(*) FROM emojicast_seconds WHERE second >= $1", r.first+3).Scan(&rows); err != nil || rows != 0 || failed == 0 {
		t.Fatalf("with the replica stopped: %d rows of its seconds archived (%v), %d shards failed; want none archived, some failed", rows, err, failed)
	}
	tu.Eventually(t, 10*time.Second, "the replica catches up", func() bool {
		n, err := r.rdb.Do(context.Background(), "WAIT", 1, 100).Int64()
		return err == nil && n == 1
	})
	r.drainAll(t)
	r.assertEqualsHistory(t, streams, r.first, r.first+59)
}

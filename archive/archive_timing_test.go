package archive

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/internal/pgtest"
	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/store"
)

// busyEmojis are the 8 emojis of the default set, each counted every
// second of a busy stream.
var busyEmojis = []string{"like", "love", "haha", "wow", "sad", "angry", "clap", "fire"}

// BenchmarkArchiveStreamHour archives an hour of one busy stream, written
// as store.BenchmarkRedisHistoryMemory writes it (a batch a second: 8
// emoji counts, and 0 or 30 comments of 30 characters), and reports the
// bytes its rows take in PostgreSQL, indexes and TOAST included (the
// figure to set against Redis's 373 KB and 12.9 MB). Run with
// -benchtime=1x.
func BenchmarkArchiveStreamHour(b *testing.B) {
	for _, comments := range []int{0, store.DefaultMaxComments} {
		b.Run(fmt.Sprintf("comments=%d", comments), func(b *testing.B) {
			for b.Loop() {
				r := newBenchRig(b, store.RedisOptions{PointsMaxLen: 200_000})
				fillHour(b, r, "busy", comments)
				r.drainAll(b)
				var total int64
				err := r.db.QueryRow(context.Background(), `SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('emojicast_seconds')`).Scan(&total)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(total), "B/stream-hour")
				b.ReportMetric(float64(total)/3600, "B/second")
			}
		})
	}
}

// fillHour writes an hour of a busy stream. Comments are 30 random
// letters: PostgreSQL compresses a large row, and real comments compress
// less than store.BenchmarkRedisHistoryMemory's "xxx...", which Redis
// stores as they are.
func fillHour(b *testing.B, r *rig, stream string, comments int) {
	rng := rand.New(rand.NewPCG(1, 2))
	letters := "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	buf := make([]byte, 30)
	for i := range int64(3600) {
		sec := r.first + i
		r.clk.Set(time.Unix(sec, 100e6))
		bt := store.Batch{ID: fmt.Sprintf("%s-%d", stream, i)}
		for j, e := range busyEmojis {
			bt.Deltas = append(bt.Deltas, store.Delta{Stream: stream, Second: sec, Emoji: e, Count: 1000 + int64(j)*37 + i%100})
		}
		for j := range comments {
			bt.Comments = append(bt.Comments, store.CommentAt{Stream: stream, Second: sec,
				Comment: store.Comment{User: fmt.Sprintf("viewer-%04d", j), Text: randomText(rng, letters, buf)}})
		}
		if err := r.st.Add(context.Background(), bt); err != nil {
			b.Fatal(err)
		}
	}
}

func randomText(rng *rand.Rand, letters string, buf []byte) string {
	for i := range buf {
		buf[i] = letters[rng.IntN(len(letters))]
	}
	return string(buf)
}

// newBenchRig is newRig on a durable PostgreSQL (fsync on), as a
// deployment runs it.
func newBenchRig(b *testing.B, opts store.RedisOptions) *rig {
	b.Helper()
	srv := redistest.Start(b)
	pg := pgtest.StartDurable(b)
	rdb, err := store.NewRedisClient(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	clk := clock.NewManual(t0.Add(100 * time.Millisecond))
	opts.Client, opts.Clock = rdb, clk
	st, err := store.NewRedis(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	db, err := Open(context.Background(), pg.DSN())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	arch, err := New(Options{Redis: rdb, DB: db, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	return &rig{st: st, rdb: rdb, clk: clk, db: db, pg: pg, read: NewReader(db), arch: arch, first: t0.Unix()}
}

// planStreams scales the capacity plan (1,000 streams, docs/capacity.md)
// down tenfold: a "fleet second" of it is planStreams streams, each with
// 8 emojis counted in 4 flushes and 30 comments.
const planStreams = 100

// backlogSeconds is how many fleet seconds BenchmarkArchiver drains at
// once: an archiver that falls behind takes bigger batches, and its
// throughput then is what decides whether it keeps up.
const backlogSeconds = 10

// BenchmarkArchiver measures the data points per second one archiver (4
// workers, batches of 5,000) drains from Redis into one PostgreSQL
// (durable: fsync on), both on this machine. Each op drains 10 seconds of
// a tenth of the plan's fleet: 100 streams × (8 emojis × 4 flushes + 30
// comments) = 6,200 records a second in Redis, put there untimed, in the
// fields the add script writes.
func BenchmarkArchiver(b *testing.B) {
	r := newBenchRig(b, store.RedisOptions{})
	ctx := context.Background()
	text := strings.Repeat("x", 30)
	var records int64
	start := r.first
	fill := func(sec int64) {
		pipe := r.rdb.Pipeline()
		for s := range planStreams {
			stream := fmt.Sprintf("plan-%03d", s)
			key := store.PointsKey("emojicast", store.ShardOf(stream))
			for range 4 {
				for j, e := range busyEmojis {
					pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{"stream", stream, "second", sec, "emoji", e, "count", 20 + j}})
				}
			}
			for j := range 30 {
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{"stream", stream, "second", sec,
					"comment", fmt.Sprintf("=c%d-%d:viewer-%04d:%s", sec, j, j, text), "at", sec, "i", j}})
			}
			records += 4*int64(len(busyEmojis)) + 30
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var archived time.Duration
	for b.Loop() {
		b.StopTimer()
		for range backlogSeconds {
			fill(start)
			start++
		}
		b.StartTimer()
		t := time.Now()
		r.drainParallel(b, 4)
		archived += time.Since(t)
	}
	b.ReportMetric(float64(records)/archived.Seconds(), "points/s")
}

// drainParallel drains every shard with n workers, as Run does.
func (r *rig) drainParallel(b *testing.B, n int) {
	done := make(chan error, n)
	for w := range n {
		go func() {
			for k := w; k < store.RedisShards; k += n {
				if _, err := r.arch.Drain(context.Background(), k); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range n {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

package store

import (
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/internal/redistest"
)

// busyEmojis are the emojis a busy stream gets every second: the default set.
var busyEmojis = []string{"like", "love", "haha", "wow", "sad", "angry", "clap", "fire"}

// fillBusyHour adds an hour of a busy stream: every second, a count for
// each of the 8 emojis and comments comments of 40 bytes, as one batch per
// second, and seals it.
func fillBusyHour(tb testing.TB, s Store, clk *clock.Manual, stream string, comments int) {
	t0 := contractT0.Unix()
	text := strings.Repeat("x", 30)
	for i := range int64(3600) {
		sec := t0 + i
		clk.Set(time.Unix(sec, 100e6))
		b := Batch{ID: fmt.Sprintf("%s-%d", stream, i)}
		for j, e := range busyEmojis {
			b.Deltas = append(b.Deltas, Delta{stream, sec, e, 1000 + int64(j)*37 + i%100})
		}
		for j := range comments {
			b.Comments = append(b.Comments, CommentAt{stream, sec, Comment{User: fmt.Sprintf("viewer-%04d", j), Text: text}})
		}
		if err := s.Add(ctx, b); err != nil {
			tb.Fatal(err)
		}
	}
	sealThrough(clk, t0+3600)
}

// BenchmarkRedisHistoryMemory fills an hour of one busy stream and reports
// the Redis memory its history takes (MEMORY USAGE of its 60 hashes, every
// field counted), with and without a full 30 comments every second.
// Run with -benchtime=1x.
func BenchmarkRedisHistoryMemory(b *testing.B) {
	srv := redistest.Start(b)
	for _, comments := range []int{0, DefaultMaxComments} {
		b.Run(fmt.Sprintf("comments=%d", comments), func(b *testing.B) {
			client, err := NewRedisClient(srv.URL())
			if err != nil {
				b.Fatal(err)
			}
			clk := clock.NewManual(contractT0)
			r, err := NewRedis(RedisOptions{Client: client, Clock: clk, Prefix: fmt.Sprintf("mem%d", comments), PointsMaxLen: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			for b.Loop() {
				fillBusyHour(b, r, clk, "busy", comments)
			}
			var total int64
			encodings := map[string]int{}
			for m := contractT0.Unix() / 60; m <= (contractT0.Unix()+3599)/60; m++ {
				key := r.historyKey("busy", m)
				n, err := client.MemoryUsage(ctx, key, 0).Result()
				if err != nil {
					b.Fatal(err)
				}
				total += n
				enc, _ := client.ObjectEncoding(ctx, key).Result()
				encodings[enc]++
			}
			b.ReportMetric(float64(total), "B/stream-hour")
			b.ReportMetric(float64(total)/3600, "B/second")
			b.Logf("history hashes by encoding: %v", encodings)
		})
	}
}

// BenchmarkMemoryHistoryMemory is the same on the in-memory store: the
// heap the history holds after a GC, and the store's own estimate that its
// budget (--history-memory-mb) counts.
func BenchmarkMemoryHistoryMemory(b *testing.B) {
	for _, comments := range []int{0, DefaultMaxComments} {
		b.Run(fmt.Sprintf("comments=%d", comments), func(b *testing.B) {
			var heap, estimate int64
			for b.Loop() {
				clk := clock.NewManual(contractT0)
				m := NewMemory(MemoryOptions{Clock: clk, Retention: 2})
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				fillBusyHour(b, m, clk, "busy", comments)
				if _, err := m.History(ctx, "busy", contractT0.Unix(), contractT0.Unix()+3599); err != nil {
					b.Fatal(err)
				}
				m.batches = map[string]time.Time{} // dedupe markers are not history
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = int64(after.HeapAlloc) - int64(before.HeapAlloc)
				estimate = m.history.bytes
				runtime.KeepAlive(m)
			}
			b.ReportMetric(float64(heap), "heapB/stream-hour")
			b.ReportMetric(float64(estimate), "estB/stream-hour")
		})
	}
}

// BenchmarkRedisHistoryRead is one History call for a whole hour of a busy
// stream: what a history request that no cache answers costs.
func BenchmarkRedisHistoryRead(b *testing.B) {
	r, clk := benchRedis(b)
	fillBusyHour(b, r, clk, "busy", 5)
	b.ReportAllocs()
	for b.Loop() {
		h, err := r.History(ctx, "busy", contractT0.Unix(), contractT0.Unix()+3599)
		if err != nil || len(h.Seconds) != 3600 {
			b.Fatalf("History: %d seconds, %v", len(h.Seconds), err)
		}
	}
}

// BenchmarkRedisAddHistory is BenchmarkRedisAdd's flush (100 streams x 4
// emojis) with history kept and without: what writing history costs a
// push flush.
func BenchmarkRedisAddHistory(b *testing.B) {
	srv := redistest.Start(b)
	var deltas []Delta
	for s := range 100 {
		for _, e := range []string{"like", "love", "fire", "wow"} {
			deltas = append(deltas, Delta{fmt.Sprintf("stream-%d", s), contractT0.Unix(), e, 3})
		}
	}
	for _, tc := range []struct {
		name    string
		history time.Duration
	}{{"history=off", -1}, {"history=on", DefaultHistory}} {
		b.Run(tc.name, func(b *testing.B) {
			client, err := NewRedisClient(srv.URL())
			if err != nil {
				b.Fatal(err)
			}
			clk := clock.NewManual(contractT0.Add(100 * time.Millisecond))
			r, err := NewRedis(RedisOptions{Client: client, Clock: clk, History: tc.history, Prefix: fmt.Sprintf("%s-%d", tc.name, prefixSeq.Add(1))})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			client.ConfigResetStat(ctx)
			b.ReportAllocs()
			n := 0
			for i := 0; b.Loop(); i++ {
				if err := r.Add(ctx, Batch{ID: fmt.Sprintf("bench-%d", i), Deltas: deltas}); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(commandsRun(b, client))/float64(n), "cmds/op")
		})
	}
}

// commandsRun sums the calls of every command Redis ran since its stats
// were reset, those inside scripts included, the script calls themselves
// and the stats reads not.
func commandsRun(b *testing.B, client redis.UniversalClient) int64 {
	info, err := client.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, m := range regexp.MustCompile(`cmdstat_(\w+):calls=(\d+)`).FindAllStringSubmatch(info, -1) {
		if m[1] == "evalsha" || m[1] == "eval" || m[1] == "info" || m[1] == "config|resetstat" {
			continue
		}
		n, _ := strconv.ParseInt(m[2], 10, 64)
		total += n
	}
	return total
}

package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/internal/redistest"
)

// benchRedis returns a Redis store on a fresh server, with a clock a test
// moves, and the testing.T-free cleanup a benchmark needs.
func benchRedis(b *testing.B) (*Redis, *clock.Manual) {
	b.Helper()
	srv := redistest.Start(b)
	client, err := NewRedisClient(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	clk := clock.NewManual(contractT0.Add(100 * time.Millisecond))
	r, err := NewRedis(RedisOptions{Client: client, Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	return r, clk
}

// BenchmarkRedisAdd is one push flush: 100 streams x 4 emojis.
func BenchmarkRedisAdd(b *testing.B) {
	r, _ := benchRedis(b)
	var deltas []Delta
	for s := range 100 {
		for _, e := range []string{"like", "love", "fire", "wow"} {
			deltas = append(deltas, Delta{fmt.Sprintf("stream-%d", s), contractT0.Unix(), e, 3})
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := r.Add(ctx, Batch{ID: fmt.Sprintf("bench-%d", i), Deltas: deltas}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(deltas)), "deltas/op")
}

// BenchmarkRedisAddComments is a push flush of 100 streams x 3 comments,
// ten flushes a second, so each second fills to the default budget and no
// comment spills: the steady cost of the comment budget in the store.
func BenchmarkRedisAddComments(b *testing.B) {
	r, clk := benchRedis(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%10 == 0 {
			clk.Add(time.Second)
		}
		sec := clk.Now().Unix()
		var cs []CommentAt
		for s := range 100 {
			cs = append(cs, numbered(fmt.Sprintf("stream-%d", s), sec, "what a goal", 3)...)
		}
		if err := r.Add(ctx, Batch{ID: fmt.Sprintf("bench-%d", i), Comments: cs}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedisAddCommentBacklog is a push node's backlog after a 30 s
// outage, written at once: 10 streams with a full budget of comments in
// each of 30 sealed seconds, which spill over the 30 seconds from the
// open one.
func BenchmarkRedisAddCommentBacklog(b *testing.B) {
	r, clk := benchRedis(b)
	sealThrough(clk, contractT0.Unix()+30)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var cs []CommentAt
		for s := range 10 {
			for sec := range int64(30) {
				cs = append(cs, numbered(fmt.Sprintf("stream-%d-%d", i, s), contractT0.Unix()+sec, "late", DefaultMaxComments)...)
			}
		}
		if err := r.Add(ctx, Batch{ID: fmt.Sprintf("bench-%d", i), Comments: cs}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedisCollect is one pull sync of a node serving 10,000 streams,
// 100 of which had reactions in the last second, against the same sync
// with none: the difference is the cost of the streams with reactions.
func BenchmarkRedisCollect(b *testing.B) {
	for _, active := range []int{0, 100} {
		b.Run(fmt.Sprintf("served=10000/active=%d", active), func(b *testing.B) {
			r, clk := benchRedis(b)
			t0 := contractT0.Unix()
			var deltas []Delta
			for s := range active {
				deltas = append(deltas, Delta{fmt.Sprintf("served-%d", s*100), t0, "love", 5})
			}
			if active > 0 {
				if err := r.Add(ctx, Batch{ID: "b", Deltas: deltas}); err != nil {
					b.Fatal(err)
				}
			}
			sealThrough(clk, t0)
			cursors := make([]Cursor, 10_000)
			for s := range cursors {
				cursors[s] = Cursor{fmt.Sprintf("served-%d", s), t0 - 1}
			}
			b.ReportAllocs()
			for b.Loop() {
				c, err := r.Collect(ctx, cursors)
				if err != nil || len(c.Seconds) != active {
					b.Fatalf("Collect: %d seconds, %v; want %d", len(c.Seconds), err, active)
				}
			}
		})
	}
}

// BenchmarkRedisMinReplicas is one push flush (100 streams x 4 emojis) on a
// master with one replica, without and with MinReplicas 1, interleaved
// flush by flush so that both see the same machine: it reports the median
// latency of each and their ratio.
func BenchmarkRedisMinReplicas(b *testing.B) {
	master := redistest.Start(b)
	redistest.StartReplica(b, master)
	stores := make([]*Redis, 2)
	for n := range stores {
		client, err := NewRedisClient(master.URL())
		if err != nil {
			b.Fatal(err)
		}
		clk := clock.NewManual(contractT0.Add(100 * time.Millisecond))
		r, err := NewRedis(RedisOptions{Client: client, Clock: clk, Prefix: fmt.Sprintf("n%d", n), MinReplicas: n})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = r.Close() })
		stores[n] = r
	}
	var deltas []Delta
	for s := range 100 {
		for _, e := range []string{"like", "love", "fire", "wow"} {
			deltas = append(deltas, Delta{fmt.Sprintf("stream-%d", s), contractT0.Unix(), e, 3})
		}
	}
	var took [2][]time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for n, r := range stores {
			start := time.Now()
			// A write the replica did not confirm in time is written
			// again, as a push node does; its time counts.
			batch := Batch{ID: fmt.Sprintf("bench-%d", i), Deltas: deltas}
			err := r.Add(ctx, batch)
			for try := 1; errors.Is(err, ErrNotReplicated) && try < 5; try++ {
				err = r.Add(ctx, batch)
			}
			if err != nil {
				b.Fatal(err)
			}
			took[n] = append(took[n], time.Since(start))
		}
	}
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	m0, m1 := med(took[0]), med(took[1])
	b.ReportMetric(m0, "ms-median-N=0")
	b.ReportMetric(m1, "ms-median-N=1")
	b.ReportMetric(m1/m0, "ratio")
}

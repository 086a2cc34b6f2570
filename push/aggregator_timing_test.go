package push

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emojicast/emojicast/emoji"
)

// mutexAggregator is the naive baseline: one map of per-stream sums behind
// one mutex.
type mutexAggregator struct {
	mu sync.Mutex
	m  map[string]*mutexSums
}

type mutexSums struct {
	second int64
	counts [emoji.Max]int64
}

func (a *mutexAggregator) add(stream []byte, sec int64, e int, n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.m[string(stream)]
	if s == nil {
		s = &mutexSums{second: sec}
		a.m[string(stream)] = s
	}
	s.counts[e] += n
}

// aggStreams are the stream sets the aggregator benchmarks spread adds over:
// one viral stream, where every tapper contends, and many streams.
var aggStreams = []struct {
	name    string
	streams int
}{{"oneStream", 1}, {"1000Streams", 1000}}

func streamIDs(n int) [][]byte {
	ids := make([][]byte, n)
	for i := range ids {
		ids[i] = []byte("stream-" + strconv.Itoa(i))
	}
	return ids
}

// runAdds calls add from parallel goroutines (8 per CPU, as a server has
// many handler goroutines), each walking the streams from its own start.
func runAdds(b *testing.B, streams int, add func(stream []byte, sec int64, e int)) {
	ids := streamIDs(streams)
	sec := time.Now().Unix()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7))
		for pb.Next() {
			i++
			add(ids[i%len(ids)], sec, i%emoji.Max)
		}
	})
}

// BenchmarkAggregatorAdd measures adding taps from parallel tappers: a read
// lock on one of 64 shards and an atomic add.
func BenchmarkAggregatorAdd(b *testing.B) {
	for _, bc := range aggStreams {
		b.Run(bc.name, func(b *testing.B) {
			a := newAggregator(10_000)
			runAdds(b, bc.streams, func(stream []byte, sec int64, e int) {
				if err := a.add(stream, sec, e, 1, 0); err != nil {
					b.Error(err)
				}
			})
		})
	}
}

// BenchmarkAggregatorAddNaiveMutexMap is the same load on one mutex and a map.
func BenchmarkAggregatorAddNaiveMutexMap(b *testing.B) {
	for _, bc := range aggStreams {
		b.Run(bc.name, func(b *testing.B) {
			a := &mutexAggregator{m: make(map[string]*mutexSums)}
			runAdds(b, bc.streams, func(stream []byte, sec int64, e int) { a.add(stream, sec, e, 1) })
		})
	}
}

package compress

import (
	"strings"
	"testing"
)

// busyBody is a poll body of a busy stream: five seconds of most emojis.
var busyBody = []byte(`{"now":1763700123,"next_ms":1000,"sample":0.05,"viewers":120000,"buckets":[` +
	strings.TrimSuffix(strings.Repeat(`{"t":1763700121,"c":{"like":900,"love":1200,"haha":40,"wow":77,"clap":310,"fire":2020},"burst":["like","love","haha","wow","clap","fire"]},`, 5), ",") + `]}`)

func BenchmarkAppendGzip(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(busyBody)))
	dst := make([]byte, 0, len(busyBody))
	for b.Loop() {
		dst = AppendGzip(dst[:0], busyBody)
	}
	b.ReportMetric(float64(len(dst)), "gzip-bytes")
}

func BenchmarkNewBody(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(busyBody)))
	for b.Loop() {
		_ = NewBody(busyBody)
	}
}

func BenchmarkCacheGetParallel(b *testing.B) {
	b.ReportAllocs()
	c := NewCache(62)
	c.Put(5, 3, NewBody(busyBody))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if c.Get(5, 3) == nil {
				b.Error("cache miss")
			}
		}
	})
}

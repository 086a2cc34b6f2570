package ringbuffer

import (
	"sync"
	"testing"
)

// BenchmarkPublish includes allocating the bucket, as the syncer does.
func BenchmarkPublish(b *testing.B) {
	b.ReportAllocs()
	var r Ring[payload]
	sec := int64(0)
	for b.Loop() {
		sec++
		if err := r.Publish(sec, &Bucket[payload]{Second: sec}); err != nil {
			b.Fatal(err)
		}
	}
}

// fullRing returns a ring whose whole window holds buckets, the worst case
// for a reader.
func fullRing() *Ring[payload] {
	r := new(Ring[payload])
	for s := int64(1); s <= 10*Size; s++ {
		_ = r.Publish(s, &Bucket[payload]{Second: s, Value: payloadOf(s)})
	}
	return r
}

// BenchmarkSince reads the last 5 seconds (a client polling every few seconds)
// and the whole window (a client back from a network outage), from parallel
// readers.
func BenchmarkSince(b *testing.B) {
	for _, bc := range []struct {
		name string
		back int64
	}{{"last5s", 5}, {"window60s", Size}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			r := fullRing()
			since := r.Tail() - bc.back
			b.RunParallel(func(pb *testing.PB) {
				dst := make([]*Bucket[payload], 0, Size)
				for pb.Next() {
					dst, _, _ = r.Since(dst[:0], since)
				}
			})
		})
	}
}

// mutexRing is the naive baseline: a map of seconds behind a RWMutex.
type mutexRing struct {
	mu      sync.RWMutex
	tail    int64
	buckets map[int64]*Bucket[payload]
}

func (m *mutexRing) publish(b *Bucket[payload]) {
	m.mu.Lock()
	m.buckets[b.Second] = b
	delete(m.buckets, b.Second-Size)
	m.tail = b.Second
	m.mu.Unlock()
}

func (m *mutexRing) since(dst []*Bucket[payload], since int64) []*Bucket[payload] {
	m.mu.RLock()
	for s := max(since+1, m.tail-Size+1); s <= m.tail; s++ {
		if b, ok := m.buckets[s]; ok {
			dst = append(dst, b)
		}
	}
	m.mu.RUnlock()
	return dst
}

func BenchmarkSinceNaiveMutexMap(b *testing.B) {
	for _, bc := range []struct {
		name string
		back int64
	}{{"last5s", 5}, {"window60s", Size}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			m := &mutexRing{buckets: make(map[int64]*Bucket[payload])}
			for s := int64(1); s <= 10*Size; s++ {
				m.publish(&Bucket[payload]{Second: s, Value: payloadOf(s)})
			}
			since := m.tail - bc.back
			b.RunParallel(func(pb *testing.PB) {
				dst := make([]*Bucket[payload], 0, Size)
				for pb.Next() {
					dst = m.since(dst[:0], since)
				}
			})
		})
	}
}

// BenchmarkSinceWhileWriting measures readers while a writer publishes a new
// second as fast as it can: readers must not slow down under writes.
func BenchmarkSinceWhileWriting(b *testing.B) {
	b.ReportAllocs()
	r := fullRing()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for s := r.Tail() + 1; ; s++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = r.Publish(s, &Bucket[payload]{Second: s, Value: payloadOf(s)})
		}
	})
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]*Bucket[payload], 0, Size)
		for pb.Next() {
			dst, _, _ = r.Since(dst[:0], r.Tail()-5)
		}
	})
	close(stop)
	wg.Wait()
}

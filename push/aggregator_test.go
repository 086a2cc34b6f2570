package push

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emojicast/emojicast/emoji"
	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/store"
)

type key struct {
	stream string
	second int64
	emoji  string
}

func sumDeltas(into map[key]int64, deltas []store.Delta) {
	for _, d := range deltas {
		into[key{d.Stream, d.Second, d.Emoji}] += d.Count
	}
}

// TestAggregatorCountsExactlyUnderConcurrentFlushes has tappers add through
// several seconds while a flusher drains and evicts as aggressively as it
// can; every tap must come out exactly once, in its second.
func TestAggregatorCountsExactlyUnderConcurrentFlushes(t *testing.T) {
	const (
		tappers = 8
		secs    = 40
		perSec  = 300
	)
	emojis := emoji.Default()
	a := newAggregator(1000)
	got := make(map[key]int64)
	var stop atomic.Bool
	var flusher sync.WaitGroup
	flusher.Go(func() {
		for !stop.Load() {
			// idleBefore far in the future: every stream that drains empty
			// is evicted, racing with tappers.
			sumDeltas(got, a.drain(nil, emojis, 1<<62))
		}
	})
	start := make([]chan struct{}, secs)
	for i := range start {
		start[i] = make(chan struct{})
	}
	var tap sync.WaitGroup
	var secDone sync.WaitGroup
	secDone.Add(tappers)
	for w := range tappers {
		tap.Go(func() {
			for s := range secs {
				<-start[s]
				for i := range perSec {
					stream := fmt.Appendf(nil, "s%d", (w+i)%3)
					if err := a.add(stream, int64(1000+s), i%emojis.Len(), 1, 0); err != nil {
						t.Error(err)
					}
				}
				secDone.Done()
			}
		})
	}
	for s := range secs {
		if s > 0 {
			secDone.Add(tappers)
		}
		close(start[s])
		secDone.Wait()
	}
	tap.Wait()
	stop.Store(true)
	flusher.Wait()
	sumDeltas(got, a.drain(nil, emojis, 1<<62))

	want := make(map[key]int64)
	for w := range tappers {
		for s := range secs {
			for i := range perSec {
				want[key{fmt.Sprintf("s%d", (w+i)%3), int64(1000 + s), emojis.At(i % emojis.Len()).ID}]++
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d (stream, second, emoji) sums; want %d", len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("%+v = %d; want %d", k, got[k], n)
		}
	}
}

func TestAggregatorStreamBound(t *testing.T) {
	a := newAggregator(2)
	for _, s := range []string{"a", "b"} {
		if err := a.add([]byte(s), 1, 0, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.add([]byte("c"), 1, 0, 1, 0); err != errTooManyStreams {
		t.Fatalf("third stream: %v; want errTooManyStreams", err)
	}
	if err := a.add([]byte("a"), 1, 0, 1, 0); err != nil {
		t.Fatalf("known stream refused at the bound: %v", err)
	}
	// Idle streams go away and make room.
	a.drain(nil, emoji.Default(), 5)
	a.drain(nil, emoji.Default(), 5)
	if err := a.add([]byte("c"), 6, 0, 1, 0); err != nil {
		t.Fatalf("new stream refused after idle ones were evicted: %v", err)
	}
}

// TestAggregatorConcurrentDrainsEvictOnce: two drains that both find the
// same idle streams evict each once. Evicting twice sealed a second twice,
// and the second seal waited forever; it also counted the stream out twice.
func TestAggregatorConcurrentDrainsEvictOnce(t *testing.T) {
	emojis := emoji.Default()
	for round := range 50 {
		a := newAggregator(1000)
		for i := range 200 {
			if err := a.add(fmt.Appendf(nil, "s%d", i), 1, 0, 1, 0); err != nil {
				t.Fatal(err)
			}
		}
		a.drain(nil, emojis, 1<<62) // drains the sums; the next drains evict
		var drains sync.WaitGroup
		for range 2 {
			drains.Go(func() { a.drain(nil, emojis, 1<<62) })
		}
		done := make(chan struct{})
		go func() { drains.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: concurrent drains did not return", round)
		}
		if a.len() != 0 {
			t.Fatalf("round %d: %d streams counted after evicting all; want 0", round, a.len())
		}
	}
}

func TestAggregatorAddDoesNotAllocate(t *testing.T) {
	a := newAggregator(10)
	stream := []byte("launch-2026")
	if err := a.add(stream, 7, 1, 1, 0); err != nil {
		t.Fatal(err)
	}
	testutil.NoAllocs(t, "aggregator.add", func() { _ = a.add(stream, 7, 1, 1, 0) })
}

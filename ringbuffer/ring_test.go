package ringbuffer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// payload is redundant on purpose: a torn or misplaced bucket shows up as
// fields that disagree with each other or with the bucket's second.
type payload struct {
	second int64
	inv    int64
	label  string
}

func payloadOf(sec int64) payload {
	return payload{second: sec, inv: ^sec, label: labelOf(sec)}
}

func labelOf(sec int64) string {
	return string(rune('a' + sec%26))
}

func (p payload) check(sec int64) bool {
	return p.second == sec && p.inv == ^sec && p.label == labelOf(sec)
}

func publish(t *testing.T, r *Ring[payload], sec int64) {
	t.Helper()
	if err := r.Publish(sec, &Bucket[payload]{Second: sec, Value: payloadOf(sec)}); err != nil {
		t.Fatalf("Publish(%d): %v", sec, err)
	}
}

func seconds(bs []*Bucket[payload]) []int64 {
	out := make([]int64, len(bs))
	for i, b := range bs {
		out[i] = b.Second
	}
	return out
}

func equalSeconds(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEmptyRing(t *testing.T) {
	var r Ring[payload]
	got, now, lost := r.Since(nil, 0)
	if len(got) != 0 || now != 0 || lost {
		t.Fatalf("Since on empty ring = %v, %d, %v; want none, 0, false", seconds(got), now, lost)
	}
}

func TestSinceReturnsWindowOldestFirst(t *testing.T) {
	const base = 1_763_700_000
	cases := []struct {
		name      string
		published []int64
		tail      int64
		since     int64
		want      []int64
		wantLost  bool
	}{
		{"all after cursor", []int64{base + 1, base + 2, base + 3}, base + 3, base, []int64{base + 1, base + 2, base + 3}, false},
		{"cursor excludes its own second", []int64{base + 1, base + 2, base + 3}, base + 3, base + 1, []int64{base + 2, base + 3}, false},
		{"empty seconds left out", []int64{base + 1, base + 4}, base + 6, base, []int64{base + 1, base + 4}, false},
		{"cursor at tail", []int64{base + 1}, base + 1, base + 1, nil, false},
		{"cursor after tail", []int64{base + 1}, base + 1, base + 5, nil, false},
		{"cursor exactly one window back", []int64{base + 1, base + 60}, base + 60, base, []int64{base + 1, base + 60}, false},
		{"cursor older than window", []int64{base + 1, base + 2, base + 61}, base + 61, base, []int64{base + 2, base + 61}, true},
		{"tail advanced past data", []int64{base + 1}, base + 100, base + 50, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r Ring[payload]
			for _, s := range tc.published {
				publish(t, &r, s)
			}
			_ = r.Publish(tc.tail)
			got, now, lost := r.Since(nil, tc.since)
			if now != tc.tail {
				t.Errorf("now = %d; want %d", now, tc.tail)
			}
			if !equalSeconds(seconds(got), tc.want) {
				t.Errorf("seconds = %v; want %v", seconds(got), tc.want)
			}
			if lost != tc.wantLost {
				t.Errorf("lost = %v; want %v", lost, tc.wantLost)
			}
		})
	}
}

func TestPublishRejectsOldSeconds(t *testing.T) {
	var r Ring[payload]
	publish(t, &r, 10)
	for _, sec := range []int64{10, 9, -5} {
		if err := r.Publish(sec, &Bucket[payload]{Second: sec}); !errors.Is(err, ErrNotNewer) {
			t.Errorf("Publish(%d) = %v; want ErrNotNewer", sec, err)
		}
	}
	_ = r.Publish(5)
	if r.Tail() != 10 {
		t.Errorf("moving the tail backwards moved it to %d; want 10", r.Tail())
	}
	// A bucket out of order, or after the new tail, stores nothing.
	for _, bad := range [][]int64{{12, 11}, {12, 30}} {
		if err := r.Publish(20, &Bucket[payload]{Second: bad[0]}, &Bucket[payload]{Second: bad[1]}); !errors.Is(err, ErrNotNewer) {
			t.Errorf("Publish(20, %v) = %v; want ErrNotNewer", bad, err)
		}
		if r.Tail() != 10 || r.slots[slotOf(bad[0])].Load() != nil {
			t.Errorf("a refused Publish changed the ring")
		}
	}
}

// TestCatchUpTellsLost: a writer that stalled past the window catches up
// with buckets that start 30 s after its tail. The tail moves once, to the
// end of the catch-up, so a reader at the old tail is told lost: it never
// sees the 30 seconds the writer never had as empty ones.
func TestCatchUpTellsLost(t *testing.T) {
	var r Ring[payload]
	const tail = 1000
	for s := int64(tail - 59); s <= tail; s++ {
		publish(t, &r, s)
	}
	if err := r.Publish(tail+90, &Bucket[payload]{Second: tail + 31, Value: payloadOf(tail + 31)}, &Bucket[payload]{Second: tail + 60, Value: payloadOf(tail + 60)}); err != nil {
		t.Fatal(err)
	}
	if b, now, lost := r.Since(nil, tail); !lost || now != tail+90 {
		t.Fatalf("since %d after the catch-up: now %d, %v, lost %v; want lost", tail, now, seconds(b), lost)
	}
	if b, _, lost := r.Since(nil, tail+30); lost || !equalSeconds(seconds(b), []int64{tail + 31, tail + 60}) {
		t.Fatalf("since %d (the window's start): %v, lost %v; want both buckets", tail+30, seconds(b), lost)
	}
}

func TestRangeDetectsOverwrittenSlot(t *testing.T) {
	var r Ring[payload]
	publish(t, &r, 100)
	publish(t, &r, 101)
	upTo := r.Tail()
	// The writer laps the ring after the reader read the tail.
	publish(t, &r, 160)
	got, lost := r.Range(nil, 99, upTo)
	if !lost {
		t.Errorf("lost = false; want true for a slot overwritten by second 160")
	}
	if !equalSeconds(seconds(got), []int64{101}) {
		t.Errorf("seconds = %v; want [101]", seconds(got))
	}
}

func TestNegativeCursorOnFreshRing(t *testing.T) {
	var r Ring[payload]
	got, now, lost := r.Since(nil, -100)
	if len(got) != 0 || now != 0 || !lost {
		t.Fatalf("Since(-100) on a fresh ring = %v, %d, %v; want none, 0, true", seconds(got), now, lost)
	}
}

func TestSinceDoesNotAllocate(t *testing.T) {
	var r Ring[payload]
	for s := int64(1); s <= 200; s++ {
		publish(t, &r, s)
	}
	dst := make([]*Bucket[payload], 0, Size)
	allocs := testing.AllocsPerRun(1000, func() {
		dst, _, _ = r.Since(dst[:0], 150)
	})
	if allocs != 0 {
		t.Fatalf("Since allocates %.1f times per call; want 0", allocs)
	}
}

// stressStart is the tail the stress writer starts from.
const stressStart = 1_000

// published reports whether the stress writer publishes second s; the others
// are empty seconds, so readers also check that none is skipped or invented.
func published(s int64) bool { return s > stressStart && s%3 != 0 && s%7 != 0 }

// TestConcurrentReadersSeeConsistentWindows runs one writer through thousands
// of simulated seconds while readers check every answer they get: strictly
// ordered, inside (since, now] and the 60 s window, untorn, and complete
// unless the ring said seconds were lost.
func TestConcurrentReadersSeeConsistentWindows(t *testing.T) {
	const (
		start   = stressStart
		seconds = 20_000
		readers = 8
	)
	var r Ring[payload]
	_ = r.Publish(start)
	var done atomic.Bool
	var reads, lostReads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, readers)
	for i := range readers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			dst := make([]*Bucket[payload], 0, Size)
			for !done.Load() {
				tail := r.Tail()
				since := tail - 70 + rng.Int64N(75)
				var now int64
				var lost bool
				dst, now, lost = r.Since(dst[:0], since)
				if msg := checkWindow(dst, since, now, lost); msg != "" {
					errs <- msg
					return
				}
				reads.Add(1)
				if lost {
					lostReads.Add(1)
				}
			}
		})
	}
	for s := int64(start + 1); s <= start+seconds; s++ {
		if published(s) {
			publish(t, &r, s)
		} else {
			_ = r.Publish(s)
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	if reads.Load() == 0 {
		t.Fatal("readers made no reads")
	}
	t.Logf("%d reads, %d reported lost seconds", reads.Load(), lostReads.Load())
}

func checkWindow(bs []*Bucket[payload], since, now int64, lost bool) string {
	prev := since
	for _, b := range bs {
		switch {
		case b.Second <= prev:
			return "bucket out of order or at/before the cursor"
		case b.Second > now:
			return "bucket newer than now"
		case b.Second <= now-Size:
			return "bucket outside the 60 s window"
		case !b.Value.check(b.Second):
			return "torn bucket: payload disagrees with its second"
		case !published(b.Second):
			return "bucket for a second that was never published"
		}
		prev = b.Second
	}
	if lost {
		return ""
	}
	// Without loss the answer must hold every published second in range.
	want := 0
	for s := max(since+1, now-Size+1); s <= now; s++ {
		if published(s) {
			want++
		}
	}
	if len(bs) != want {
		return fmt.Sprintf("incomplete answer without a lost report: since %d now %d got %v want %d", since, now, seconds(bs), want)
	}
	return ""
}

package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

const sec = int64(time.Second)

func TestBurstThenSteadyRate(t *testing.T) {
	l := New(10, 20, 1000)
	key := []byte("u1")
	now := 100 * sec
	for i := range 20 {
		if w := l.Allow(key, 1, now); w != 0 {
			t.Fatalf("tap %d of the burst refused, wait %v", i+1, w)
		}
	}
	w := l.Allow(key, 1, now)
	if w != 100*time.Millisecond {
		t.Fatalf("tap 21 wait = %v; want 100ms", w)
	}
	// After a second, exactly 10 more taps fit.
	now += sec
	for i := range 10 {
		if w := l.Allow(key, 1, now); w != 0 {
			t.Fatalf("tap %d after 1 s refused, wait %v", i+1, w)
		}
	}
	if w := l.Allow(key, 1, now); w == 0 {
		t.Fatal("11th tap after 1 s allowed; want refused")
	}
}

func TestCountTakesThatManyTokens(t *testing.T) {
	l := New(10, 20, 1000)
	key := []byte("u1")
	now := 100 * sec
	if w := l.Allow(key, 15, now); w != 0 {
		t.Fatalf("count 15 refused: %v", w)
	}
	if w := l.Allow(key, 6, now); w != 100*time.Millisecond {
		t.Fatalf("count 6 with 5 left: wait %v; want 100ms", w)
	}
	if w := l.Allow(key, 5, now); w != 0 {
		t.Fatalf("count 5 with 5 left refused: %v", w)
	}
	if w := l.Allow([]byte("u2"), 21, now); w == 0 {
		t.Fatal("a count above the burst was allowed")
	}
}

func TestRefusedEventsDoNotConsume(t *testing.T) {
	l := New(1, 1, 1000)
	key := []byte("k")
	now := 10 * sec
	l.Allow(key, 1, now)
	for range 100 {
		l.Allow(key, 1, now+sec/2)
	}
	if w := l.Allow(key, 1, now+sec); w != 0 {
		t.Fatalf("refused attempts consumed tokens: wait %v", w)
	}
}

func TestKeysAreIndependent(t *testing.T) {
	l := New(1, 1, 1000)
	now := 10 * sec
	if l.Allow([]byte("a"), 1, now) != 0 || l.Allow([]byte("b"), 1, now) != 0 {
		t.Fatal("first event of a fresh key refused")
	}
	if l.Allow([]byte("a"), 1, now) == 0 {
		t.Fatal("second event of a within its interval allowed")
	}
}

func TestFloodOfKeysStaysBounded(t *testing.T) {
	const bound = 6400
	l := New(10, 20, bound)
	now := 10 * sec
	for i := range 200_000 {
		if w := l.Allow(fmt.Appendf(nil, "user-%d", i), 1, now); w != 0 {
			t.Fatalf("fresh key %d refused", i)
		}
	}
	if n := l.Len(); n > l.MaxKeys() || l.MaxKeys() > bound {
		t.Fatalf("limiter holds %d keys, bound %d (asked %d)", n, l.MaxKeys(), bound)
	}
	if l.Evicted() == 0 {
		t.Fatal("flood of active keys evicted nothing")
	}
}

func TestExpiredKeysAreForgottenFirst(t *testing.T) {
	l := New(10, 20, 64*64)
	now := 10 * sec
	active := []byte("active")
	for range 20 {
		l.Allow(active, 1, now)
	}
	// Many keys that refill within a second, then a flood long after.
	for i := range 20_000 {
		l.Allow(fmt.Appendf(nil, "old-%d", i), 1, now)
	}
	later := now + 5*sec
	before := l.Evicted()
	for i := range 100 {
		l.Allow(fmt.Appendf(nil, "new-%d", i), 1, later)
	}
	if l.Evicted() != before {
		t.Fatalf("evicted %d refilling keys while full ones could be forgotten", l.Evicted()-before)
	}
}

func TestConcurrentAllow(t *testing.T) {
	l := New(10, 20, 1000)
	now := 10 * sec
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if l.Allow([]byte("shared"), 1, now) == 0 {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 20 {
		t.Fatalf("%d concurrent events allowed; want exactly the burst, 20", allowed)
	}
}

func TestAllowForKnownKeysDoesNotAllocate(t *testing.T) {
	l := New(1e9, 1e9, 1000)
	key := []byte("u1")
	l.Allow(key, 1, 1)
	testutil.NoAllocs(t, "Allow for a known key", func() { l.Allow(key, 1, 2) })
}

// A lump heavier than the burst passes when nothing is owed, and the key
// then waits it out; over a window the key gets at most rate*T plus
// max(burst, 2n).
func TestAllowDebtLetsHeavyLumpsThroughAndBoundsThem(t *testing.T) {
	l := New(10, 20, 1000)
	key := []byte("fan")
	now := 100 * sec
	if w := l.AllowDebt(key, 100, now); w != 0 {
		t.Fatalf("a lump of 100 with a full bucket refused: %v", w)
	}
	if w := l.AllowDebt(key, 100, now+sec); w != 0 {
		t.Fatalf("a second lump owing 90: refused %v; a key may owe up to one lump", w)
	}
	if w := l.AllowDebt(key, 100, now+2*sec); w == 0 {
		t.Fatal("a third lump owing 180 allowed")
	}
	// A key sending a lump of 10 every 100 ms for 30 s gets at most
	// 10/s * 30 s + max(20, 2*10).
	l2 := New(10, 20, 1000)
	var got int64
	for ts := now; ts < now+30*sec; ts += sec / 10 {
		if l2.AllowDebt(key, 10, ts) == 0 {
			got += 10
		}
	}
	if got > 10*30+20 {
		t.Fatalf("got %d in 30 s; want at most 320", got)
	}
}

// A shared limiter reports what each key near its limit used since the
// last report, and takes the fleet's TAT back: what other processes
// allowed counts here.
func TestSharedLimiterUsageAndMerge(t *testing.T) {
	l := NewShared(10, 20, 1000)
	now := 100 * sec
	l.Allow([]byte("a"), 6, now)
	l.AllowDebt([]byte("b"), 30, now)
	used := map[string]int64{}
	l.Usage(now, func(k string, u Use) { used[k] = u.Used })
	const interval = sec / 10
	if want := map[string]int64{"a": 6 * interval, "b": 30 * interval}; fmt.Sprint(used) != fmt.Sprint(want) {
		t.Fatalf("usage %v; want %v", used, want)
	}
	l.Usage(now, func(k string, u Use) { t.Errorf("usage reported twice: %s %+v", k, u) })
	// Another process let "a" use the whole burst: this one refuses now.
	l.Merge("a", now+2*sec, now)
	if w := l.Allow([]byte("a"), 1, now); w == 0 {
		t.Fatal("a key the fleet exhausted was allowed")
	}
	l.Merge("c", now-sec, now) // a full bucket: nothing to remember
	if l.Len() != 2 {
		t.Fatalf("%d keys remembered; want 2", l.Len())
	}
}

// TestSharedLimiterKeepsQuietKeys: a key tapping at a fifth of its limit
// never reaches Usage, however long it taps; a key that crosses its kept
// share is handed over with all it used since it was last handed over,
// across rounds; a key the fleet put in debt is handed over at its next
// event, so it keeps hearing the fleet's TAT.
func TestSharedLimiterKeepsQuietKeys(t *testing.T) {
	const interval = sec / 10
	const round = sec / 4
	l := NewShared(10, 20, 1000) // tolerance 2 s: a node keeps 5 taps' worth
	now := 100 * sec
	got := map[string]int64{}
	var since int64
	usage := func() {
		clear(got)
		l.Usage(now, func(k string, u Use) { got[k], since = u.Used, u.Since })
	}
	// Two taps a second for a minute, one send each: 20% of the limit.
	for i := range 60 * 4 {
		if i%4 == 0 && l.Allow([]byte("quiet"), 2, now) != 0 {
			t.Fatalf("quiet send %d refused", i/4)
		}
		usage()
		if len(got) != 0 {
			t.Fatalf("round %d: usage %v; want the quiet key kept", i, got)
		}
		now += round
	}
	// One tap a round (40% of the limit): kept for five rounds, then the
	// sixth crosses the share and all six are handed over.
	busyFrom := now
	for i := range 6 {
		if l.Allow([]byte("busy"), 1, now) != 0 {
			t.Fatalf("busy tap %d refused", i)
		}
		usage()
		if i < 5 && len(got) != 0 {
			t.Fatalf("round %d: usage %v; want busy kept until it crosses 5 taps", i, got)
		}
		now += round
	}
	if got["busy"] != 6*interval || len(got) != 1 || since != busyFrom {
		t.Fatalf("usage %v since %d; want busy's 6 taps (%d ns), all it kept, since %d", got, since, 6*interval, busyFrom)
	}
	// The fleet says busy owes 1.5 s: its next tap is handed over at once.
	l.Merge("busy", now+3*sec/2, now)
	if l.Allow([]byte("busy"), 1, now) != 0 {
		t.Fatal("busy tap with 1.5 s of debt refused; the burst is 2 s")
	}
	usage()
	if got["busy"] != interval {
		t.Fatalf("usage %v; want busy's one tap handed over, its debt near the limit", got)
	}
}

// TestAllowPerWindow: n events per window at once, then one every
// window/n; a key that keeps to one event per window is never refused.
func TestAllowPerWindow(t *testing.T) {
	l := New(1, 1, 1000)
	flood, steady := []byte("flood"), []byte("steady")
	now := 100 * sec
	allowed := 0
	for range 1000 {
		if l.AllowPer(flood, 4, 2*time.Second, now) {
			allowed++
		}
	}
	if allowed != 4 {
		t.Fatalf("a flood in one instant got %d events; want 4", allowed)
	}
	now += sec / 2
	if !l.AllowPer(flood, 4, 2*time.Second, now) || l.AllowPer(flood, 4, 2*time.Second, now) {
		t.Fatal("after a quarter window, want exactly one more event")
	}
	for i := range 100 {
		if !l.AllowPer(steady, 4, 2*time.Second, now+int64(i)*2*sec) {
			t.Fatalf("event %d one window after the last was refused", i)
		}
	}
}

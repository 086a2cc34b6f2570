package store

import (
	"context"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/redistest"
)

// Two processes' uses of a key add up in Redis, on one server and across a
// cluster's slots, and a key whose bucket refilled starts again from now.
func TestShareLimitsAddsUpTheFleet(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		srv := redistest.Start(t)
		testShareLimits(t, newRedis(t, srv.URL(), RedisOptions{}))
	})
	t.Run("cluster", func(t *testing.T) {
		c := redistest.StartCluster(t, 3)
		testShareLimits(t, newRedis(t, c.Addrs(), RedisOptions{}))
	})
}

func testShareLimits(t *testing.T, r *Redis) {
	ctx := context.Background()
	now := time.Now()
	keys := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	used := []int64{1e9, 2e9, 3e9, 4e9, 5e9, 6e9}
	first, err := r.ShareLimits(ctx, "u", now, keys, usedAt(now, used...))
	if err != nil {
		t.Fatal(err)
	}
	for i, tat := range first {
		if debt := time.Duration(tat - now.UnixNano()); !near(debt, time.Duration(used[i])) {
			t.Errorf("%s after one node's use: TAT now + %v; want now + %v", keys[i], debt, time.Duration(used[i]))
		}
	}
	// Another node used half a second of alice's: it adds up, in that
	// node's own clock.
	then := time.Now()
	second, err := r.ShareLimits(ctx, "u", then, keys[:1], usedAt(then, 5e8))
	if err != nil {
		t.Fatal(err)
	}
	// Redis's clock moved between the two calls by at most what the
	// caller's did (the first call's own time, which a busy machine
	// stretches, is in the caller's and not in Redis's).
	if debt := time.Duration(second[0] - then.UnixNano()); debt < 1500*time.Millisecond-then.Sub(now)-50*time.Millisecond || debt > 1550*time.Millisecond {
		t.Errorf("alice after two nodes: TAT then + %v; want then + 1.5 s less at most %v", debt, then.Sub(now))
	}
	// Another kind is another limit; a refilled bucket starts from now.
	if _, err := r.ShareLimits(ctx, "ip", now, keys[:1], usedAt(now, 1e6)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	later := time.Now()
	third, err := r.ShareLimits(ctx, "ip", later, keys[:1], usedAt(later, 1e9))
	if err != nil {
		t.Fatal(err)
	}
	if debt := time.Duration(third[0] - later.UnixNano()); !near(debt, time.Second) {
		t.Errorf("alice under another kind: TAT later + %v; want later + 1 s", debt)
	}
}

// usedAt is uses taken from now: charged as if taken at once.
func usedAt(now time.Time, used ...int64) []LimitUse {
	uses := make([]LimitUse, len(used))
	for i, u := range used {
		uses[i] = LimitUse{Used: u, Since: now.UnixNano()}
	}
	return uses
}

// A node that kept a key's use for a while (ratelimit.KeptShare) has it
// charged from when it began counting, so the key owes what it took less
// the time since; and the use other nodes counted over the same time
// stacks on it, though the first node's alone is paid back.
func TestShareLimitsChargesUseFromWhenTaken(t *testing.T) {
	r := newRedis(t, redistest.Start(t).URL(), RedisOptions{})
	ctx := context.Background()
	now := time.Now()
	tats, err := r.ShareLimits(ctx, "u", now, []string{"kept"}, []LimitUse{{Used: 1e9, Since: now.Add(-600 * time.Millisecond).UnixNano()}})
	if err != nil {
		t.Fatal(err)
	}
	if debt := time.Duration(tats[0] - now.UnixNano()); !near(debt, 400*time.Millisecond) {
		t.Errorf("1 s used since 600 ms ago: debt %v; want 400 ms", debt)
	}
	now = time.Now()
	tats, err = r.ShareLimits(ctx, "u", now, []string{"spread"}, []LimitUse{{Used: 5e8, Since: now.Add(-time.Second).UnixNano()}})
	if err != nil {
		t.Fatal(err)
	}
	if tats[0] != now.UnixNano() {
		t.Errorf("500 ms used over the last second: debt %v; want none", time.Duration(tats[0]-now.UnixNano()))
	}
	now = time.Now()
	tats, err = r.ShareLimits(ctx, "u", now, []string{"spread"}, []LimitUse{{Used: 1e9, Since: now.Add(-time.Second).UnixNano()}})
	if err != nil {
		t.Fatal(err)
	}
	if debt := time.Duration(tats[0] - now.UnixNano()); !near(debt, 500*time.Millisecond) {
		t.Errorf("another node's 1 s over the same second: debt %v; want 500 ms", debt)
	}
}

// near says whether d is within the few milliseconds between two calls to
// a local Redis of want.
func near(d, want time.Duration) bool {
	return d > want-50*time.Millisecond && d < want+50*time.Millisecond
}

// Push nodes whose clocks disagree share one limit: each hears the fleet's
// TAT in its own clock. A node 2 s ahead neither makes the others refuse
// for 2 s more nor has its own use forgotten by them.
func TestShareLimitsAcrossSkewedClocks(t *testing.T) {
	r := newRedis(t, redistest.Start(t).URL(), RedisOptions{})
	ctx := context.Background()
	const skew = 2 * time.Second
	ahead := time.Now().Add(skew)
	tats, err := r.ShareLimits(ctx, "u", ahead, []string{"ahead-first"}, usedAt(ahead, 1e9))
	if err != nil {
		t.Fatal(err)
	}
	if debt := time.Duration(tats[0] - ahead.UnixNano()); !near(debt, time.Second) {
		t.Fatalf("the node ahead hears a debt of %v; want 1 s", debt)
	}
	now := time.Now()
	tats, err = r.ShareLimits(ctx, "u", now, []string{"ahead-first"}, usedAt(now, 5e8))
	if err != nil {
		t.Fatal(err)
	}
	if debt := time.Duration(tats[0] - now.UnixNano()); !near(debt, 1500*time.Millisecond) {
		t.Errorf("after the node ahead used 1 s and this one 0.5 s, this one hears a debt of %v; want 1.5 s", debt)
	}

	now = time.Now()
	if _, err := r.ShareLimits(ctx, "u", now, []string{"behind-first"}, usedAt(now, 1e9)); err != nil {
		t.Fatal(err)
	}
	ahead = time.Now().Add(skew)
	tats, err = r.ShareLimits(ctx, "u", ahead, []string{"behind-first"}, usedAt(ahead, 5e8))
	if err != nil {
		t.Fatal(err)
	}
	if debt := time.Duration(tats[0] - ahead.UnixNano()); !near(debt, 1500*time.Millisecond) {
		t.Errorf("after a node behind used 1 s and the one ahead 0.5 s, the one ahead hears a debt of %v; want 1.5 s", debt)
	}
}

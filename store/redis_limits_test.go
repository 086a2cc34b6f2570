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
	now := time.Unix(1_800_000_000, 0)
	keys := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	used := []int64{1e9, 2e9, 3e9, 4e9, 5e9, 6e9}
	first, err := r.ShareLimits(ctx, "u", now, keys, used)
	if err != nil {
		t.Fatal(err)
	}
	for i, tat := range first {
		if want := now.UnixNano() + used[i]; tat != want {
			t.Errorf("%s after one node's use: TAT %d; want now + %d", keys[i], tat-now.UnixNano(), used[i])
		}
	}
	// Another node, 100 ms later, used half a second of alice's: it adds up.
	second, err := r.ShareLimits(ctx, "u", now.Add(100*time.Millisecond), keys[:1], []int64{5e8})
	if err != nil {
		t.Fatal(err)
	}
	if want := now.UnixNano() + 15e8; second[0] != want {
		t.Errorf("alice after two nodes: TAT now + %d; want now + 1.5 s", second[0]-now.UnixNano())
	}
	// Another kind is another limit; a refilled bucket starts from now.
	later := now.Add(10 * time.Second)
	third, err := r.ShareLimits(ctx, "ip", later, keys[:1], []int64{1e9})
	if err != nil {
		t.Fatal(err)
	}
	if want := later.UnixNano() + 1e9; third[0] != want {
		t.Errorf("alice under another kind: TAT later + %d; want later + 1 s", third[0]-later.UnixNano())
	}
}

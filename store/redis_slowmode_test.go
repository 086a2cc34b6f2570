package store

import (
	"context"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/redistest"
)

// A user's slow-mode turn is taken once per period across every caller
// (push node): a second take within the period is told how long to wait,
// other users and streams are apart, and the turn is free again once the
// period passed. On one server and across a cluster's slots.
func TestTakeSlowModeHoldsAcrossCallers(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		srv := redistest.Start(t)
		opts := RedisOptions{Prefix: "slow-single"}
		testTakeSlowMode(t, newRedis(t, srv.URL(), opts), newRedis(t, srv.URL(), opts))
	})
	t.Run("cluster", func(t *testing.T) {
		c := redistest.StartCluster(t, 3)
		opts := RedisOptions{Prefix: "slow-cluster"}
		testTakeSlowMode(t, newRedis(t, c.Addrs(), opts), newRedis(t, c.Addrs(), opts))
	})
}

func testTakeSlowMode(t *testing.T, node1, node2 *Redis) {
	ctx := context.Background()
	const period = 400 * time.Millisecond
	takes := []SlowModeTake{
		{"s1", "alice", period}, {"s1", "bob", period}, {"s2", "alice", 10 * time.Second},
		{"s3", "alice", period}, {"s4", "carol", period}, {"s5", "dave", period},
	}
	waits, err := node1.TakeSlowMode(ctx, takes)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range waits {
		if w != 0 {
			t.Errorf("first take of %+v: wait %v; want 0", takes[i], w)
		}
	}
	// The other node, at once: every turn is taken, for about the period.
	start := time.Now()
	waits, err = node2.TakeSlowMode(ctx, takes)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range waits {
		if w <= 0 || w > takes[i].Period {
			t.Errorf("second take of %+v on another node: wait %v; want within (0, %v]", takes[i], w, takes[i].Period)
		}
	}
	// A take of another user and a repeat in the same call.
	waits, err = node2.TakeSlowMode(ctx, []SlowModeTake{{"s1", "erin", period}, {"s1", "erin", period}})
	if err != nil {
		t.Fatal(err)
	}
	if waits[0] != 0 || waits[1] <= 0 {
		t.Errorf("erin's two takes in one call: waits %v; want 0 then a wait", waits)
	}
	// Once the period passed, the short turns are free again; the 10 s one is not.
	time.Sleep(time.Until(start.Add(period + 50*time.Millisecond)))
	waits, err = node1.TakeSlowMode(ctx, takes[:3])
	if err != nil {
		t.Fatal(err)
	}
	if waits[0] != 0 || waits[1] != 0 || waits[2] <= 9*time.Second {
		t.Errorf("takes after the period: waits %v; want 0, 0 and about 10 s", waits)
	}
}

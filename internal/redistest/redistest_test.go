package redistest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// TestReplicatedClusterReshardsAndFailsOver moves a slot with keys in it
// while a client writes to it, then kills its new master and promotes the
// replica: the client finds every key it wrote, and the killed master
// comes back as the replica.
func TestReplicatedClusterReshardsAndFailsOver(t *testing.T) {
	c := StartReplicatedCluster(t, 3, 20*time.Second)
	if got := len(c.Masters(t)); got != 3 {
		t.Fatalf("%d masters; want 3", got)
	}
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{c.Servers[0].Addr(), c.Servers[1].Addr()}})
	defer rc.Close()
	ctx := context.Background()
	slot := c.Slot(t, "{moved}")
	from := c.MasterOf(t, slot)
	var to *Server
	for _, m := range c.Masters(t) {
		if m != from {
			to = m
			break
		}
	}
	write := func(i int) {
		t.Helper()
		if err := rc.Set(ctx, fmt.Sprintf("{moved}:%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET during the move: %v", err)
		}
	}
	for i := range 50 {
		write(i)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.MoveSlot(t, slot, to, time.Second)
	}()
	n := 50
	for moving := true; moving; n++ {
		select {
		case <-done:
			moving = false
		default:
		}
		write(n)
		time.Sleep(5 * time.Millisecond)
	}
	if got := c.MasterOf(t, slot); got != to {
		t.Fatalf("slot %d is on %s after the move; want %s", slot, got.Addr(), to.Addr())
	}
	replica := c.ReplicaOf(t, to)
	if replica == nil {
		t.Fatalf("master %s has no replica", to.Addr())
	}
	// Every write on the replica before its master dies.
	if err := to.do("WAIT", 1, 5000).Err(); err != nil {
		t.Fatal(err)
	}
	to.Kill()
	c.Takeover(t, replica)
	if got := c.MasterOf(t, slot); got != replica {
		t.Fatalf("slot %d is on %s after the takeover; want %s", slot, got.Addr(), replica.Addr())
	}
	// A client learns of the failover when it reloads the cluster's state:
	// go-redis does after a dial it could not make only lazily, or when
	// its state is 10 s old. Asked to, it reloads at once.
	testutil.Eventually(t, 20*time.Second, "the client reads from the new master", func() bool {
		rc.ReloadState(ctx)
		return rc.Get(ctx, "{moved}:0").Err() == nil
	})
	for i := range n {
		got, err := rc.Get(ctx, fmt.Sprintf("{moved}:%d", i)).Int()
		if err != nil || got != i {
			t.Fatalf("key %d after the move and the failover: %d, %v", i, got, err)
		}
	}
	to.Restart()
	c.WaitHealthy(t)
	if got := c.ReplicaOf(t, replica); got != to {
		t.Fatalf("the old master did not come back as the replica of %s", replica.Addr())
	}
}

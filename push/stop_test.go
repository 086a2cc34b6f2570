package push

import (
	"context"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/store"
)

// TestStopCancelsHungStoreCalls: with the store frozen mid-write, Stop
// gives up within about the context it is given (plus one socket read
// timeout), not after the write's own minute-long FlushTimeout; and what
// was not written is still counted as unwritten.
func TestStopCancelsHungStoreCalls(t *testing.T) {
	srv := redistest.Start(t)
	client, err := store.NewRedisClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.NewRedis(store.RedisOptions{Client: client, Prefix: "stop"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := New(Options{Targets: []Target{{Name: "redis", Store: st}}, FlushTimeout: time.Minute, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	srv.Pause()
	defer srv.Resume()

	p.agg.add([]byte("s"), p.opts.Clock.Now().Unix(), 0, 3, 0)
	p.handOver()
	tg := p.targets[0]
	testutil.Eventually(t, 10*time.Second, "the target writes to the frozen store", func() bool {
		tg.mu.Lock()
		defer tg.mu.Unlock()
		return tg.inflight != nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	p.Stop(ctx)
	// Cancelling cannot interrupt a socket read go-redis is in: that ends
	// at its read timeout (3 s). Before Stop cancelled the node's calls it
	// waited out go-redis's retries, about 21 s.
	if took := time.Since(start); took > 12*time.Second {
		t.Errorf("Stop took %v with the store frozen; want about its context's 500ms plus a read timeout, not the minute-long FlushTimeout", took)
	}
	if n := p.Backlog(); n != 1 {
		t.Errorf("backlog after Stop %d; want the 1 unwritten count", n)
	}
}

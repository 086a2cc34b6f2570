package moderation

import (
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/store"
)

// TestStopCancelsAHungRefresh: with the store frozen mid-refresh, Stop
// returns when the read under way times out: the refresh's minute-long
// Timeout and go-redis's retries are not waited out.
func TestStopCancelsAHungRefresh(t *testing.T) {
	srv := redistest.Start(t)
	// 4 s reads: a refresh left to run reads, and times out, twice
	// (go-redis retries once) before it gives up, 8 s; a cancelled one ends
	// with the read under way, 4 s.
	client := redis.NewClient(&redis.Options{
		Addr: srv.Addr(), ContextTimeoutEnabled: true, ReadTimeout: 4 * time.Second,
	})
	st, err := store.NewRedis(store.RedisOptions{Client: client, Prefix: "stop"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := New(Options{Store: st, Interval: 20 * time.Millisecond, Timeout: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	srv.Pause()
	defer srv.Resume()
	testutil.Eventually(t, 10*time.Second, "a refresh waits on the frozen store", func() bool {
		s := client.PoolStats()
		return s.TotalConns > s.IdleConns
	})

	start := time.Now()
	r.Stop()
	// Cancelling cannot interrupt the socket read go-redis is in, but
	// go-redis retries no cancelled call.
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("Stop took %v with the store frozen; want about a read timeout, not the minute-long Timeout", took)
	}
}

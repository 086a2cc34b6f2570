package admin

import (
	"context"
	"sync"
	"time"

	"github.com/emojicast/emojicast/store"
)

// DefaultTopMaxAge is how long a process reuses the busiest streams it
// read: pull nodes report every 2 s, so a second more of age shows
// nothing new late, while the ops pages that poll GET /v1/admin/streams
// and a stream's stats every 2 s each cost the store at most one read a
// second per process, however many are open.
const DefaultTopMaxAge = time.Second

// topCache holds the deployment's busiest streams (up to MaxTop) as last
// read from the store. The store's answer merges every pull node's report
// of its 1000 busiest streams: one HGETALL of about 100 KB per pull node
// (benchmarks/README.md), too much to read per request.
type topCache struct {
	mu   sync.Mutex // held while reading the store, so concurrent calls read once
	at   time.Time  // when list was read; zero: never
	list []store.StreamStats
}

// top returns the busiest streams, at most MaxTop, read from the store at
// most once per TopMaxAge. The slice is shared: callers must not modify it.
func (a *Handler) top(ctx context.Context) ([]store.StreamStats, error) {
	c := &a.topCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < a.opts.TopMaxAge {
		return c.list, nil
	}
	list, err := a.opts.Store.Top(ctx, MaxTop)
	if err != nil {
		return nil, err
	}
	c.list, c.at = list, time.Now()
	return list, nil
}

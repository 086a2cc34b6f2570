package pull

import (
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/compress"
)

// emptyRange is what HandleHistory keeps for a sealed range with no
// counts: a fresh stream id string, as each request makes, and the body
// encoded as the handler does, with its gzip and ETags allocated as
// compress.NewBody does (every empty range's gzip is as long; compressing
// each would make the test take minutes under the race detector).
func emptyRange(i int64) (historyKey, *compress.Body) {
	from := 1_700_000_000 + i*60
	k := historyKey{stream: string([]byte("stream-" + strconv.FormatInt(i%500, 10))), from: from, to: from + 59}
	plain := (&Node{}).encodeHistory(k.from, k.to, nil)
	gzipOnce.Do(func() { emptyGzip = compress.NewBody(plain).Gzip })
	return k, &compress.Body{
		Plain:     plain,
		Gzip:      append(make([]byte, 0, len(plain)/2+32), emptyGzip...),
		PlainETag: compress.AppendETag(nil, uint64(i), compress.MarkPlain),
		GzipETag:  compress.AppendETag(nil, uint64(i), compress.MarkGzip),
	}
}

var (
	gzipOnce  sync.Once
	emptyGzip []byte
)

// heapInUse is the heap's live bytes after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestHistoryCacheHeapWithinLimit: the cache's byte limit is what it
// really holds: filled with many distinct empty ranges (the flood the
// review measured at ~6x the limit), the heap grows by at most the limit
// plus 10%.
func TestHistoryCacheHeapWithinLimit(t *testing.T) {
	const limit = 2 << 20
	c := newHistoryCache(limit, 1<<20, newMetrics(nil)) // the entry cap far away: bytes bind
	now := time.Unix(1_700_000_000, 0)
	before := heapInUse()
	const n = 40_000
	for i := range int64(n) {
		k, b := emptyRange(i)
		c.put(k, b, now)
	}
	grown := int64(heapInUse()) - int64(before)
	kept := c.len()
	runtime.KeepAlive(c)
	t.Logf("%d empty ranges put, %d kept: heap +%d bytes; limit %d", n, kept, grown, limit)
	if grown > limit+limit/10 {
		t.Fatalf("the heap grew by %d bytes holding %d ranges; limit %d (+10%%)", grown, kept, limit)
	}
	if kept < 1000 || kept == n {
		t.Fatalf("kept %d of %d ranges; want the cache full but bounded", kept, n)
	}
}

// TestHistoryCacheCapsEntries: however small the bodies, the cache holds
// at most its entry cap, the newest.
func TestHistoryCacheCapsEntries(t *testing.T) {
	c := newHistoryCache(64<<20, 100, newMetrics(nil))
	now := time.Unix(1_700_000_000, 0)
	var last historyKey
	for i := range int64(1000) {
		k, b := emptyRange(i)
		c.put(k, b, now)
		last = k
	}
	if c.len() != 100 {
		t.Fatalf("cache holds %d entries; cap 100", c.len())
	}
	if c.get(last, now) == nil {
		t.Fatal("the newest entry was dropped")
	}
	if k, _ := emptyRange(0); c.get(k, now) != nil {
		t.Fatal("the oldest entry was kept past the cap")
	}
}

// TestHistoryCacheDropsExpired: an entry is served until
// HistorySealedMaxAge has passed and then neither served nor kept: a get
// of it drops it, and a put drops every expired entry, asked or not.
func TestHistoryCacheDropsExpired(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	c := newHistoryCache(64<<20, 1000, newMetrics(nil))
	a, ab := emptyRange(1)
	b, bb := emptyRange(2)
	c.put(a, ab, clk.Now())
	c.put(b, bb, clk.Add(10*time.Second))
	if c.get(a, clk.Add(HistorySealedMaxAge-10*time.Second-time.Nanosecond)) == nil {
		t.Fatal("an entry younger than its max-age was not served")
	}
	if c.get(a, clk.Add(time.Nanosecond)) != nil {
		t.Fatal("an entry of max-age was served")
	}
	if c.len() != 1 {
		t.Fatalf("cache holds %d entries after its expired one was asked for; want 1", c.len())
	}
	d, db := emptyRange(3)
	clk.Add(HistorySealedMaxAge)
	c.put(d, db, clk.Now())
	if c.len() != 1 || c.get(d, clk.Now()) == nil {
		t.Fatalf("cache holds %d entries after a put past every other entry's expiry; want only the new one", c.len())
	}
	if want := c.cost(d, db) + c.slots*mapSlotBytes; c.bytes != want {
		t.Fatalf("cache counts %d bytes for one entry costing %d (map included)", c.bytes, want)
	}
}

// TestHistoryCacheCountsDrops: what the cache drops is counted, by reason.
func TestHistoryCacheCountsDrops(t *testing.T) {
	c := newHistoryCache(64<<20, 10, newMetrics(nil))
	expiredBefore, fullBefore := counter(t, c.expired), counter(t, c.full)
	now := time.Unix(1_700_000_000, 0)
	for i := range int64(15) {
		k, b := emptyRange(i)
		c.put(k, b, now)
	}
	k, b := emptyRange(100)
	c.put(k, b, now.Add(HistorySealedMaxAge))
	if got := counter(t, c.full) - fullBefore; got != 5 {
		t.Fatalf("dropped full: %v; want 5", got)
	}
	if got := counter(t, c.expired) - expiredBefore; got != 10 {
		t.Fatalf("dropped expired: %v; want 10", got)
	}
}

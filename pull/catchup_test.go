package pull

import (
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCatchUpNeverHidesUnsyncedSeconds: a node whose syncs stalled for 90 s
// catches up with the store's window, which starts 30 s after its ring's
// tail. A viewer polling from the old tail while it catches up must be
// told gap, never handed those 30 unknown seconds as empty. Every second of
// the stream has likes, so an answer without gap must hold a bucket for
// every second it covers.
func TestCatchUpNeverHidesUnsyncedSeconds(t *testing.T) {
	var bad atomic.Int64
	var example atomic.Value
	for range 30 {
		f := newFixture(t)
		f.poll("s", "")
		for range 5 {
			f.add("s", "like", 1)
			f.step()
		}
		var first struct{ Now int64 }
		if err := json.Unmarshal(f.poll("s", "").Response.Body(), &first); err != nil {
			t.Fatal(err)
		}
		tail := first.Now
		for range 90 { // the stall: the store moves on, the node does not sync
			f.add("s", "like", 1)
			f.clk.Add(time.Second)
			f.poll("s", "?since="+strconv.FormatInt(tail, 10)) // the viewer waits
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			query := "?since=" + strconv.FormatInt(tail, 10)
			for {
				select {
				case <-stop:
					return
				default:
				}
				var b struct {
					Now     int64
					Gap     bool
					Buckets []json.RawMessage
				}
				ctx := f.poll("s", query)
				if err := json.Unmarshal(ctx.Response.Body(), &b); err != nil {
					t.Errorf("%v: %s", err, ctx.Response.Body())
					return
				}
				if !b.Gap && int64(len(b.Buckets)) != b.Now-tail {
					bad.Add(1)
					example.Store(string(ctx.Response.Body()))
				}
			}
		})
		f.sync()
		time.Sleep(time.Millisecond)
		close(stop)
		wg.Wait()
		var after struct{ Gap bool }
		if err := json.Unmarshal(f.poll("s", "?since="+strconv.FormatInt(tail, 10)).Response.Body(), &after); err != nil || !after.Gap {
			t.Fatalf("after the catch-up, a poll from %d is not told gap: %v", tail, err)
		}
	}
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d polls during catch-ups got unsynced seconds as empty, without gap, e.g. %s", n, example.Load())
	}
}

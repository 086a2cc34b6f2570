package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestReplayAgainstNode taps and comments on a real node over a few
// seconds, then replays the stream from before the first tap: every second
// comes once and in order, and together they hold every tap and comment.
func TestReplayAgainstNode(t *testing.T) {
	url := startNode(t)
	ctx := context.Background()
	c := newTestClient(t, url, func(o *Options) { o.User = "replayer" })
	s, err := c.Watch(ctx, "replay-me")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Now().Unix() - 2
	for i := range 3 {
		if err := s.Send(ctx, "love", 5); err != nil {
			t.Fatal(err)
		}
		if kept, err := s.Comment(ctx, "moment "+string(rune('a'+i))); err != nil || !kept {
			t.Fatalf("comment: kept %v, %v", kept, err)
		}
		time.Sleep(time.Second)
	}
	last := time.Now().Unix()
	testutil.Eventually(t, 10*time.Second, "the taps' seconds to seal", func() bool {
		h, err := c.History(ctx, "replay-me", from, last)
		return err == nil && h.To >= last
	})

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var nows []int64
	love, comments := int64(0), 0
	err = c.Replay(runCtx, "replay-me", from, 50, func(u Update) {
		nows = append(nows, u.Now)
		for _, b := range u.Buckets {
			if b.T != u.Now {
				t.Errorf("the update of second %d holds the bucket of %d", u.Now, b.T)
			}
			love += b.Counts["love"]
			comments += len(b.Comments)
		}
		if u.Now >= last {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Replay returned %v; want it to run until cancelled", err)
	}
	for i, n := range nows {
		if n != from+int64(i) {
			t.Fatalf("replay played seconds %v; want every second from %d once, in order", nows, from)
		}
	}
	if love != 15 || comments != 3 {
		t.Fatalf("replay showed %d love and %d comments; 15 and 3 were sent", love, comments)
	}

	if _, err := c.History(ctx, "replay-me", from, from+MaxHistory); err == nil {
		t.Fatal("History over more than an hour succeeded; want an error")
	}
}

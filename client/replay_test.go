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

	// Once the replay has caught up with what is sealed, a new tap comes
	// in: the replay, waiting at the present, plays it too.
	runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var nows []int64
	love, comments, fire := int64(0), 0, int64(0)
	sent := make(chan error, 1)
	err = c.Replay(runCtx, "replay-me", from, 50, func(u Update) {
		nows = append(nows, u.Now)
		for _, b := range u.Buckets {
			if b.T != u.Now {
				t.Errorf("the update of second %d holds the bucket of %d", u.Now, b.T)
			}
			love += b.Counts["love"]
			fire += b.Counts["fire"]
			comments += len(b.Comments)
		}
		if u.Now == last {
			go func() { sent <- s.Send(ctx, "fire", 2) }()
		}
		if fire > 0 {
			cancel()
		}
	})
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Replay returned %v; want it to run until cancelled", err)
	}
	for i, n := range nows {
		if n != from+int64(i) {
			t.Fatalf("replay played seconds %v; want every second from %d once, in order", nows, from)
		}
	}
	if love != 15 || comments != 3 || fire != 2 {
		t.Fatalf("replay showed %d love, %d fire and %d comments; 15, 2 and 3 were sent", love, fire, comments)
	}

	if _, err := c.History(ctx, "replay-me", from, from+MaxHistory); err == nil {
		t.Fatal("History over more than an hour succeeded; want an error")
	}
}

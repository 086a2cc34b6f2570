package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

var fleetEmojis = []string{"like", "love", "fire", "wow"}

// sendFor sends taps to the push nodes, spread over streams, emojis and
// users, from several goroutines, for d, and records the 202s in ta.
func sendFor(t *testing.T, ta *tally, pushes []*proc, streams []string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; time.Now().Before(deadline); i++ {
				// Stay clear of second boundaries, so most taps have a
				// definite second.
				if frac := time.Now().Nanosecond(); frac < 50e6 || frac > 850e6 {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				p := pushes[(g+i)%len(pushes)]
				stream, emoji := streams[rng.IntN(len(streams))], fleetEmojis[rng.IntN(len(fleetEmojis))]
				n := int64(1 + rng.IntN(10))
				sendOne(client, ta, p, stream, emoji, n, fmt.Sprintf("u%d-%d", g, i%50))
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	wg.Wait()
}

// sendOne posts one send and records it in ta, if any, when it was
// accepted.
func sendOne(client *http.Client, ta *tally, p *proc, stream, emoji string, n int64, user string) {
	body := fmt.Sprintf(`{"emoji":%q,"count":%d,"user":%q}`, emoji, n, user)
	start := time.Now()
	resp, err := client.Post(p.url+"/v1/streams/"+stream+"/reactions", "application/json", strings.NewReader(body))
	end := time.Now()
	accepted := err == nil && resp.StatusCode == http.StatusAccepted
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if ta == nil {
		return
	}
	if accepted {
		ta.record(stream, emoji, n, start, end)
		return
	}
	ta.mu.Lock()
	ta.refused++
	ta.mu.Unlock()
}

// busyTaps taps every emoji of the default set each second, some past the
// burst threshold, from many users, until ctx is done.
func busyTaps(ctx context.Context, base, stream string) {
	emojis := []string{"like", "love", "haha", "wow", "sad", "angry", "clap", "fire"}
	for i := 0; ctx.Err() == nil; i++ {
		body := fmt.Sprintf(`{"emoji":%q,"count":%d,"user":"fan-%d"}`, emojis[i%len(emojis)], 1+(i*7)%20, i%64)
		if resp, err := fleetClient.Post(base+"/v1/streams/"+stream+"/reactions", "application/json", strings.NewReader(body)); err == nil {
			resp.Body.Close()
		}
		_ = sleep(ctx, 25*time.Millisecond)
	}
}

// postTaps sends count taps of emoji as user and fails unless accepted.
func postTaps(t *testing.T, base, stream, user, emoji string, count int) {
	t.Helper()
	body := fmt.Sprintf(`{"emoji":%q,"count":%d,"user":%q}`, emoji, count, user)
	resp, err := fleetClient.Post(base+"/v1/streams/"+stream+"/reactions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("send %s: status %d", body, resp.StatusCode)
	}
}

// tapSteadily sends taps straight to an origin, ten sends a second, until
// ctx is done, and records the accepted ones in ta.
func tapSteadily(ctx context.Context, ta *tally, p *proc, stream string) {
	for i := 0; ctx.Err() == nil; i++ {
		// Clear of second boundaries, so each tap has a definite second.
		if frac := time.Now().Nanosecond(); frac < 50e6 || frac > 850e6 {
			_ = sleep(ctx, 20*time.Millisecond)
			continue
		}
		sendOne(fleetClient, ta, p, stream, fleetEmojis[i%len(fleetEmojis)], int64(1+i%5), fmt.Sprintf("tapper-%d", i%30))
		_ = sleep(ctx, 100*time.Millisecond)
	}
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

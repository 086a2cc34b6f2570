package e2e

import (
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

// sendOne posts one send and records it if it was accepted.
func sendOne(client *http.Client, ta *tally, p *proc, stream, emoji string, n int64, user string) {
	body := fmt.Sprintf(`{"emoji":%q,"count":%d,"user":%q}`, emoji, n, user)
	start := time.Now()
	resp, err := client.Post(p.url+"/v1/streams/"+stream+"/reactions", "application/json", strings.NewReader(body))
	end := time.Now()
	if err != nil {
		ta.mu.Lock()
		ta.refused++
		ta.mu.Unlock()
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted {
		ta.record(stream, emoji, n, start, end)
		return
	}
	ta.mu.Lock()
	ta.refused++
	ta.mu.Unlock()
}

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/pull"
)

// TestEdgeFeedCountsTrueAudience has 1,000 viewers (four per client
// address) poll one stream through
// the edge, which answers almost all of them from its cache; the edge's log
// feed lets the pull node count them all, and the polls that reach it from
// the edge are not counted twice.
func TestEdgeFeedCountsTrueAudience(t *testing.T) {
	t.Parallel()
	const audience = 1000
	srv := redistest.Start(t)
	feed := fmt.Sprintf("127.0.0.1:%d", testutil.FreeUDPPort(t))
	pl := startProc(t, "pull", "pull", "--redis", srv.URL(), "--log-level", "warn",
		"--edge-log-listen", feed, "--edge-log-secret", edgeLogSecret, "--trusted-proxies", "127.0.0.1",
		// Viewers come back every 2 s, so the count settles in seconds.
		"--quiet-next-ms", "2000", "--quiet-max-next-ms", "2000", "--busy-next-ms", "2000",
		// The test reads viewers back-to-back from loopback.
		"--ip-poll-rate", "1000000", "--ip-poll-burst", "1000000")
	pl.waitReady()
	addr := strings.TrimPrefix(pl.url, "http://")
	e := startEdgeFeed(t, []string{addr}, []string{addr}, []string{feed})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var polls, failed atomic.Int64
	for i := range audience {
		wg.Go(func() {
			// One keep-alive connection per viewer, like a browser; four
			// viewers per client address, the most --ip-viewers counts
			// of one address.
			group := i / pull.DefaultViewersPerAddress
			local := &net.TCPAddr{IP: net.IPv4(127, 1, byte(group/250), byte(group%250+1))}
			dialer := &net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DialContext: dialer.DialContext}}
			defer client.CloseIdleConnections()
			wait := time.Duration(i) * time.Second / audience
			var cursor int64
			for {
				select {
				case <-stop:
					return
				case <-time.After(wait):
				}
				url := e.url + "/v1/streams/crowd/reactions"
				if cursor > 0 {
					url += fmt.Sprintf("?since=%d", cursor)
				}
				wait = time.Second
				resp, err := client.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				var pb pollAnswer
				if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&pb) == nil {
					polls.Add(1)
					cursor = max(cursor, pb.Now)
					wait = time.Duration(pb.NextMS) * time.Millisecond
				} else {
					failed.Add(1)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	})

	// The pull node's own answer: its poll comes from a trusted address,
	// so it does not count itself.
	var viewers int64
	readViewers := func() int64 {
		var pb pollAnswer
		getJSON(t, pl.url+"/v1/streams/crowd/reactions", &pb)
		return pb.Viewers
	}
	start := time.Now()
	var since time.Time // when viewers came within range and stayed
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("viewers within 10%% of %d for 3 s", audience), func() bool {
		viewers = readViewers()
		if math.Abs(float64(viewers-audience)) > audience/10 {
			since = time.Time{}
			return false
		}
		if since.IsZero() {
			since = time.Now()
		}
		return time.Since(since) >= 3*time.Second
	})
	settled := since.Sub(start)
	close(stop)
	wg.Wait()
	hits := 0
	log := e.accessLog()
	for _, h := range log {
		if h.cache == "HIT" {
			hits++
		}
	}
	t.Logf("%d viewers polling through the edge: viewers = %d, within 10%% from %.1f s on; %d polls answered, %d failed; %d of %d edge answers were cache hits; %v polls counted from the feed",
		audience, viewers, settled.Seconds(), polls.Load(), failed.Load(), hits, len(log), pl.metric("emojicast_pull_edge_polls_total"))
	if hits < len(log)/2 {
		t.Errorf("only %d of %d polls were cache hits: the test does not show an audience hidden by the cache", hits, len(log))
	}
}

// TestEdgeFeedBoundsOneClient: one client polling through the edge as fast
// as it can, on two keep-alive connections, counts as at most --ip-viewers
// viewers: the feed's lines name the client. (Before, review finding 6:
// viewers 4,006 with --ip-viewers 4.)
func TestEdgeFeedBoundsOneClient(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	feed := fmt.Sprintf("127.0.0.1:%d", testutil.FreeUDPPort(t))
	pl := startProc(t, "pull", "pull", "--redis", srv.URL(), "--log-level", "warn",
		"--edge-log-listen", feed, "--edge-log-secret", edgeLogSecret, "--trusted-proxies", "127.0.0.1",
		"--ip-poll-rate", "1000000", "--ip-poll-burst", "1000000")
	pl.waitReady()
	addr := strings.TrimPrefix(pl.url, "http://")
	e := startEdgeFeed(t, []string{addr}, []string{addr}, []string{feed})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			local := &net.TCPAddr{IP: net.IPv4(127, 2, 0, 1)}
			dialer := &net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DialContext: dialer.DialContext}}
			defer client.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(e.url + "/v1/streams/flood/reactions")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	readViewers := func() int64 {
		var pb pollAnswer
		getJSON(t, pl.url+"/v1/streams/flood/reactions", &pb)
		return pb.Viewers
	}
	// Wait until the feed has counted a few hundred polls, then a few
	// control steps, so that the count had every chance to run away.
	testutil.Eventually(t, 30*time.Second, "the feed counted 500 polls", func() bool {
		return pl.metric("emojicast_pull_edge_polls_total") >= 500
	})
	var most int64
	for range 6 {
		most = max(most, readViewers())
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("one client flooding the edge: %v polls reported, viewers at most %d", pl.metric("emojicast_pull_edge_polls_total"), most)
	// A client counts at most --ip-viewers arrivals per poll interval; while
	// a quiet stream's interval grows, arrivals counted under the shorter
	// one are still present when the longer one admits its first: one
	// more for a moment, as for polls that reach the node.
	if most > pull.DefaultViewersPerAddress+1 {
		t.Errorf("viewers = %d; want at most --ip-viewers, %d (one more while next_ms grows)", most, pull.DefaultViewersPerAddress)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/internal/testutil"
)

// The affinity tests run pull processes behind deploy/nginx.conf, whose pull
// upstream hashes on the stream id: each stream is synced by one pull node,
// so the store's load follows the streams, not the fleet size.

// redisCommands returns total_commands_processed of the server at addr.
func redisCommands(t *testing.T, addr string) int64 {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no total_commands_processed in INFO stats:\n%s", info)
	return 0
}

// pollCrowd polls each stream through the edge once a second, following
// the cursor, until stop closes; it counts answers that were not 200.
func pollCrowd(t *testing.T, base string, streams []string, stop chan struct{}) (wait func() (ok, failed int64)) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: len(streams)}}
	var mu sync.Mutex
	var ok, failed int64
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Go(func() {
			// Spread the crowd over the second.
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(i) * time.Second / time.Duration(len(streams))):
			}
			var cursor int64
			for {
				url := fmt.Sprintf("%s/v1/streams/%s/reactions", base, s)
				if cursor > 0 {
					url += "?since=" + strconv.FormatInt(cursor, 10)
				}
				good := false
				resp, err := client.Get(url)
				if err == nil {
					if resp.StatusCode != http.StatusOK {
						b, _ := io.ReadAll(resp.Body)
						t.Logf("poll %s: %d %s", url, resp.StatusCode, b)
					}
					var pb fleetPoll
					if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&pb) == nil {
						good = true
						cursor = max(cursor, pb.Now)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				if good {
					ok++
				} else {
					failed++
				}
				mu.Unlock()
				select {
				case <-stop:
					return
				case <-time.After(time.Second):
				}
			}
		})
	}
	return func() (int64, int64) {
		wg.Wait()
		client.CloseIdleConnections()
		return ok, failed
	}
}

// TestEdgeAffinityStoreCost serves 200 streams through the edge from 1, 2
// and 4 pull processes on one Redis and checks that the store's commands
// per second barely grow with the fleet: each stream is synced by one node.
// Round-robin would have every node sync every stream.
func TestEdgeAffinityStoreCost(t *testing.T) {
	srv := redistest.Start(t)
	streams := make([]string, 200)
	for i := range streams {
		streams[i] = fmt.Sprintf("aff-%03d", i)
	}
	const warm, window = 3 * time.Second, 5 * time.Second
	rate := map[int]float64{}
	for _, n := range []int{1, 2, 4} {
		var pulls []*proc
		var addrs []string
		for i := range n {
			p := startProc(t, fmt.Sprintf("pull-%d-of-%d", i+1, n), "pull", "--redis", srv.URL(), "--log-level", "warn",
				// Every viewer reaches the node from the edge's address.
				"--ip-watch-burst", "1000")
			pulls = append(pulls, p)
			addrs = append(addrs, strings.TrimPrefix(p.url, "http://"))
		}
		// No sends in this test: the push upstream is never used.
		e := startEdge(t, addrs, addrs)
		stop := make(chan struct{})
		wait := pollCrowd(t, e.url, streams, stop)
		time.Sleep(warm)
		before, start := redisCommands(t, srv.Addr()), time.Now()
		time.Sleep(window)
		after, end := redisCommands(t, srv.Addr()), time.Now()
		close(stop)
		ok, failed := wait()
		rate[n] = float64(after-before) / end.Sub(start).Seconds()

		total := 0.0
		for _, p := range pulls {
			s := p.metric("emojicast_pull_active_streams")
			if n > 1 && s < 200/float64(n)/3 {
				t.Errorf("%s serves %v of 200 streams: the edge does not spread streams over %d nodes", p.name, s, n)
			}
			total += s
		}
		t.Logf("%d pull nodes: %.0f Redis commands/s; %v streams served in all; %d polls answered, %d not", n, rate[n], total, ok, failed)
		if total != 200 {
			t.Errorf("%d pull nodes serve %v streams in all; want 200, each stream on one node", n, total)
		}
		// A race-built node on a loaded machine may time out a few polls
		// (the client gives up after 5 s); the store's cost is measured
		// either way.
		if failed > ok/20 || ok < int64(len(streams))*int64((warm+window)/time.Second)/2 {
			t.Errorf("%d polls answered, %d not; want nearly all answered", ok, failed)
		}
		for _, p := range pulls {
			p.terminate()
		}
	}
	for _, n := range []int{2, 4} {
		if rate[n] > 1.3*rate[1] {
			t.Errorf("%d pull nodes cost Redis %.0f commands/s, %.2fx the %.0f of one node; want at most 1.3x", n, rate[n], rate[n]/rate[1], rate[1])
		}
	}
}

// TestEdgeFailoverLosesNoSecond kills one of three pull processes while
// viewers follow their cursors through the edge and taps flow: the edge
// moves the dead node's streams to the others, which refill them from
// Redis, and every viewer sees every accepted count in its second, once.
func TestEdgeFailoverLosesNoSecond(t *testing.T) {
	srv := redistest.Start(t)
	common := []string{"--redis", srv.URL(), "--seal-delay", fleetSealDelay, "--log-level", "warn"}
	push := startProc(t, "push", append(append([]string{"push"}, loadSender...), common...)...)
	var pulls []*proc
	var addrs []string
	for i := range 3 {
		p := startProc(t, fmt.Sprintf("pull-%d", i+1), append(append([]string{"pull"}, exact...), common...)...)
		pulls = append(pulls, p)
		addrs = append(addrs, strings.TrimPrefix(p.url, "http://"))
	}
	for _, p := range append(pulls, push) {
		p.waitReady()
	}
	e := startEdge(t, addrs, []string{strings.TrimPrefix(push.url, "http://")})
	edgeProc := &proc{t: t, name: "edge", url: e.url}
	streams := make([]string, 12)
	var viewers []*fleetViewer
	for i := range streams {
		streams[i] = fmt.Sprintf("fail-%02d", i)
		viewers = append(viewers, watchStream(t, edgeProc, streams[i]))
	}
	// The victim is the node serving the most streams.
	testutil.Eventually(t, 10*time.Second, "the pull nodes serve all streams", func() bool {
		total := 0.0
		for _, p := range pulls {
			total += p.metric("emojicast_pull_active_streams")
		}
		return total == float64(len(streams))
	})
	victim, most := pulls[0], -1.0
	for _, p := range pulls {
		if s := p.metric("emojicast_pull_active_streams"); s > most {
			victim, most = p, s
		}
	}
	if most == float64(len(streams)) {
		t.Fatalf("%s serves all %d streams: the edge does not spread them", victim.name, len(streams))
	}
	ta := newTally()
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		time.Sleep(4 * time.Second)
		_ = victim.cmd.Process.Kill()
		<-victim.exited
	}()
	sendFor(t, ta, []*proc{push}, streams, 10*time.Second)
	<-killed
	if ta.accepted < 1000 || ta.refused > 0 {
		t.Fatalf("%d taps accepted, %d sends refused; want many accepted and none refused", ta.accepted, ta.refused)
	}
	for _, v := range viewers {
		seen := v.waitTotals(ta, 20*time.Second)
		ta.checkSeconds(t, "the edge", v.stream, seen)
	}
	checkSettled(t, ta, viewers...)
	moved := 0.0
	for _, p := range pulls {
		if p != victim {
			moved += p.metric("emojicast_pull_active_streams")
		}
	}
	if moved != float64(len(streams)) {
		t.Errorf("the surviving pull nodes serve %v streams; want all %d", moved, len(streams))
	}
	t.Logf("killed %s (%v of %d streams); %d taps accepted, every viewer saw them in their seconds, once", victim.name, most, len(streams), ta.accepted)
}

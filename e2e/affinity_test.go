package e2e

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
					var pb pollAnswer
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
// and 4 pull processes on one Redis and checks that each stream is synced
// by one node and the edge spreads them over all: so the store's cost
// barely grows with the fleet, where round-robin would have every node
// sync every stream. The Redis commands a second it logs with -v are that
// cost (benchmarks/README.md, "Stream affinity at the edge"); the test
// asserts the property, not the rate, which a busy machine moves.
func TestEdgeAffinityStoreCost(t *testing.T) {
	t.Parallel()
	streams := make([]string, 200)
	for i := range streams {
		streams[i] = fmt.Sprintf("aff-%03d", i)
	}
	const warm, window = 2 * time.Second, 4 * time.Second
	rate := map[int]float64{}
	for _, n := range []int{1, 2, 4} {
		// A Redis of its own: the last fleet's leftovers (its nodes'
		// viewer fields, pruned on read) are not this one's cost.
		srv := redistest.Start(t)
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
		// A node on a loaded machine may time out a few polls (the client
		// gives up after 5 s); the placement holds either way.
		if failed > ok/10 {
			t.Errorf("%d polls answered, %d not; want nearly all answered", ok, failed)
		}
		for _, p := range pulls {
			p.terminate()
		}
	}
	for _, n := range []int{2, 4} {
		t.Logf("%d pull nodes cost Redis %.2fx the commands/s of one", n, rate[n]/rate[1])
	}
}

// TestEdgeFailoverLosesNoSecond kills one of three pull processes while
// viewers follow their cursors through the edge and taps flow: the edge
// moves the dead node's streams to the others, which refill them from
// Redis, and every viewer sees every accepted count in its second, once.
func TestEdgeFailoverLosesNoSecond(t *testing.T) {
	t.Parallel()
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

// TestEdgePushAffinity sends taps of 16 streams through the edge to two
// push processes on one Redis: the push upstream hashes on the stream id
// like the pull one, so all sends of a stream reach one push node (which
// alone writes the stream's counts to the store), the streams spread over
// both, and when a stream's push node is killed its sends still succeed:
// the edge passes them to the other node.
func TestEdgePushAffinity(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var pushes []*proc
	var addrs []string
	for i := range 2 {
		p := startProc(t, fmt.Sprintf("push-%d", i+1), append(append([]string{"push"}, loadSender...),
			"--redis", srv.URL(), "--log-level", "warn")...)
		pushes = append(pushes, p)
		addrs = append(addrs, strings.TrimPrefix(p.url, "http://"))
	}
	for _, p := range pushes {
		p.waitReady()
	}
	// Only sends in this test: the pull upstream is never used.
	e := startEdge(t, addrs, addrs)
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	send := func(stream string, i int) int {
		body := fmt.Sprintf(`{"emoji":"fire","count":1,"user":"u%d"}`, i)
		resp, err := client.Post(e.url+"/v1/streams/"+stream+"/reactions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Logf("send to %s: %v", stream, err)
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	taps := func() []float64 {
		var n []float64
		for _, p := range pushes {
			if p.alive() {
				n = append(n, p.metric("emojicast_push_taps_accepted_total"))
			} else {
				n = append(n, 0)
			}
		}
		return n
	}

	const sends = 10
	owner := map[string]int{} // stream: the index of the push node its sends reached
	streams := make([]string, 16)
	for i := range streams {
		streams[i] = fmt.Sprintf("push-aff-%02d", i)
		before := taps()
		for j := range sends {
			if code := send(streams[i], j); code != http.StatusAccepted {
				t.Fatalf("send %d to %s: %d; want 202", j, streams[i], code)
			}
		}
		after := taps()
		var reached []int
		for n := range pushes {
			if after[n] > before[n] {
				reached = append(reached, n)
			}
		}
		if len(reached) != 1 || after[reached[0]]-before[reached[0]] != sends {
			t.Fatalf("the %d sends of %s reached push nodes %v (taps before %v, after %v); want all on one node",
				sends, streams[i], reached, before, after)
		}
		owner[streams[i]] = reached[0]
	}
	per := make([]int, len(pushes))
	for _, n := range owner {
		per[n]++
	}
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("streams per push node %v: the edge does not spread streams", per)
	}

	// Kill the push node of the first stream: its streams' sends go to the
	// other node from then on.
	victim := owner[streams[0]]
	_ = pushes[victim].cmd.Process.Kill()
	<-pushes[victim].exited
	survivor := 1 - victim
	before := taps()[survivor]
	for _, s := range streams {
		for j := range sends {
			if code := send(s, j); code != http.StatusAccepted {
				t.Errorf("send %d to %s (push node %d of %d, killed: %v) after the kill: %d; want 202",
					j, s, owner[s]+1, len(pushes), owner[s] == victim, code)
			}
		}
	}
	if got := taps()[survivor] - before; got != float64(len(streams)*sends) {
		t.Errorf("the surviving push node took %v taps after the kill; want all %d", got, len(streams)*sends)
	}
	t.Logf("streams per push node %v; killed push-%d, whose %d streams' sends then reached push-%d", per, victim+1, per[victim], survivor+1)
}

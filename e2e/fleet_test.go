package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/internal/testutil"
)

// The fleet tests run emojicast push and pull nodes as separate processes
// on real redis-servers and check, as a viewer polling each pull node, that
// every tap a push node answered 202 is counted exactly once.

// runFleet starts 2 push and 2 pull nodes on redisSpec, sends taps through
// both push nodes for 10 s, and checks that a viewer of each pull node sees
// exactly the accepted counts, second by second.
func runFleet(t *testing.T, redisSpec string) {
	common := []string{"--redis", redisSpec, "--seal-delay", fleetSealDelay, "--log-level", "warn"}
	pushArgs := append(append([]string{"push"}, loadSender...), common...)
	pushes := []*proc{startProc(t, "push-1", pushArgs...), startProc(t, "push-2", pushArgs...)}
	pullArgs := append(append([]string{"pull"}, exact...), common...)
	pulls := []*proc{startProc(t, "pull-1", pullArgs...), startProc(t, "pull-2", pullArgs...)}
	for _, p := range append(pulls, pushes...) {
		p.waitReady()
	}
	streams := []string{"final-2026", "launch.day", "quiet_one"}
	var viewers []*fleetViewer
	for _, pl := range pulls {
		for _, s := range streams {
			viewers = append(viewers, watchStream(t, pl, s))
		}
	}
	ta := newTally()
	sendFor(t, ta, pushes, streams, 10*time.Second)
	if ta.accepted < 2000 || ta.refused > 0 {
		t.Fatalf("%d taps accepted, %d sends refused; want thousands accepted and none refused", ta.accepted, ta.refused)
	}
	for _, v := range viewers {
		seen := v.waitTotals(ta, 20*time.Second)
		ta.checkSeconds(t, v.pull.name, v.stream, seen)
	}
	checkSettled(t, ta, viewers...)
	t.Logf("%d taps accepted through 2 push nodes, %d sends refused; both pull nodes showed them exactly", ta.accepted, ta.refused)
	for _, p := range append(pushes, pulls...) {
		if !p.alive() {
			t.Fatalf("%s died", p.name)
		}
	}
}

func TestFleetOnRedis(t *testing.T) {
	t.Parallel()
	runFleet(t, redistest.Start(t).URL())
}

func TestFleetOnRedisCluster(t *testing.T) {
	t.Parallel()
	runFleet(t, redistest.StartCluster(t, 3).Addrs())
}

// TestFleetSurvivesRedisOutage kills Redis for at least 5 s while taps keep
// coming, then restarts it: every tap answered 202 reaches the viewers,
// nobody crashes, and /readyz told the story. The Redis is durable (AOF):
// one without persistence comes back empty and loses the counts it had
// acknowledged for seconds not yet published (see README).
func TestFleetSurvivesRedisOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.StartPersistent(t)
	common := []string{"--redis", srv.URL(), "--seal-delay", fleetSealDelay, "--log-level", "warn"}
	pu := startProc(t, "push", append(append([]string{"push"}, loadSender...), common...)...)
	pl := startProc(t, "pull", append(append([]string{"pull"}, exact...), common...)...)
	pu.waitReady()
	pl.waitReady()
	streams := []string{"outage"}
	v := watchStream(t, pl, "outage")
	ta := newTally()
	pushes := []*proc{pu}

	sendFor(t, ta, pushes, streams, 2*time.Second)
	srv.Kill()
	killed := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); sendFor(t, ta, pushes, streams, 8*time.Second) }()
	// The pull node notices it cannot sync; the push node keeps accepting,
	// stays ready (its backlog has room) and says it is degraded.
	testutil.Eventually(t, 20*time.Second, "pull reports not ready during the outage", func() bool {
		return pl.status("/readyz") == http.StatusServiceUnavailable
	})
	code, body := pu.get("/readyz")
	if code != http.StatusOK || !strings.Contains(body, `"degraded"`) {
		t.Errorf("push /readyz during the outage: %d %s; want 200 degraded", code, body)
	}
	if n := pu.metric("emojicast_push_backlog_deltas"); n <= 0 {
		t.Errorf("push backlog during the outage = %v; want counts waiting", n)
	}
	if wait := 5*time.Second - time.Since(killed); wait > 0 {
		time.Sleep(wait) // the outage the issue asks for: at least 5 s
	}
	srv.Restart()
	outage := time.Since(killed)
	<-done
	seen := v.waitTotals(ta, 30*time.Second)
	checkSettled(t, ta, v)
	pl.waitReady()
	testutil.Eventually(t, 10*time.Second, "push backlog written", func() bool { return pu.metric("emojicast_push_backlog_deltas") == 0 })
	if code, body := pu.get("/readyz"); body != `{"status":"ready"}` {
		t.Errorf("push /readyz after the outage: %d %s; want ready", code, body)
	}
	if !pu.alive() || !pl.alive() {
		t.Fatal("a process died during the outage")
	}
	if ta.refused > 0 {
		t.Errorf("%d sends refused during the outage; push nodes must keep answering 202", ta.refused)
	}
	t.Logf("%d taps accepted across a %v Redis outage; the viewer saw all of them (%v)", ta.accepted, outage.Round(100*time.Millisecond), seen.total())
}

// TestPushSIGTERMLosesNothing stops one of two push nodes with SIGTERM while
// taps keep coming: everything it answered 202 reaches the viewers.
func TestPushSIGTERMLosesNothing(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	// Every node must use the same seal delay; this one allows the long
	// flush interval that leaves plenty summed but unwritten at SIGTERM.
	common := []string{"--redis", srv.URL(), "--seal-delay", "2s", "--log-level", "info"}
	pushArgs := append(append([]string{"push"}, loadSender...), common...)
	stopping := startProc(t, "push-stopping", append(pushArgs, "--flush-interval", "900ms")...)
	staying := startProc(t, "push-staying", pushArgs...)
	pl := startProc(t, "pull", append(append([]string{"pull"}, exact...), common...)...)
	pl.waitReady()
	v := watchStream(t, pl, "sigterm")
	ta := newTally()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sendFor(t, ta, []*proc{stopping, staying}, []string{"sigterm"}, 5*time.Second)
	}()
	testutil.Eventually(t, 10*time.Second, "the stopping node is mid-run", func() bool {
		return stopping.metric("emojicast_push_taps_accepted_total") > 1000
	})
	stopping.terminate()
	<-done
	v.waitTotals(ta, 20*time.Second)
	checkSettled(t, ta, v)
	if !strings.Contains(stopping.logs.String(), "push final flush") {
		t.Errorf("the stopped push node did not log its final flush:\n%s", stopping.logs.String())
	}
	t.Logf("%d taps accepted, %d refused by the stopping node; none lost", ta.accepted, ta.refused)
}

// TestTwoRegions runs two regions, each a Redis with a pull node, and push
// nodes that write to both. Viewers in each region see every tap; with one
// region's Redis frozen, the other's viewers still see taps as fast as
// before, and the frozen region catches up when it thaws.
func TestTwoRegions(t *testing.T) {
	t.Parallel()
	east, west := redistest.Start(t), redistest.Start(t)
	pushNode := func(name, home, other string) *proc {
		return startProc(t, name, append(append([]string{"push", "--redis", home, "--region-redis", other}, loadSender...),
			"--seal-delay", fleetSealDelay, "--log-level", "warn")...)
	}
	pullNode := func(name, home string) *proc {
		return startProc(t, name, append([]string{"pull", "--redis", home, "--seal-delay", fleetSealDelay, "--log-level", "warn"}, exact...)...)
	}
	pushes := []*proc{pushNode("push-east", east.URL(), west.URL()), pushNode("push-west", west.URL(), east.URL())}
	pullEast, pullWest := pullNode("pull-east", east.URL()), pullNode("pull-west", west.URL())
	pullEast.waitReady()
	pullWest.waitReady()
	ta := newTally()
	vEast, vWest := watchStream(t, pullEast, "regions"), watchStream(t, pullWest, "regions")

	sendFor(t, ta, pushes, []string{"regions"}, 3*time.Second)
	start := time.Now()
	vEast.waitTotals(ta, 20*time.Second)
	vWest.waitTotals(ta, 20*time.Second)
	normal := time.Since(start)

	west.Pause()
	sendFor(t, ta, pushes, []string{"regions"}, 4*time.Second)
	start = time.Now()
	vEast.waitTotals(ta, 20*time.Second)
	frozenLag := time.Since(start)
	if frozenLag > 4*time.Second {
		t.Errorf("with the west Redis frozen, east viewers saw the last taps %v after they were sent (%v with both up); want no delay", frozenLag, normal)
	}
	testutil.Eventually(t, 20*time.Second, "west pull reports not ready with its Redis frozen", func() bool {
		return pullWest.status("/readyz") == http.StatusServiceUnavailable
	})
	west.Resume()
	vWest.waitTotals(ta, 30*time.Second)
	checkSettled(t, ta, vEast, vWest)
	t.Logf("%d taps, every one seen in both regions; east viewers saw the last taps %v after sending stopped with west up, %v with west frozen",
		ta.accepted, normal.Round(time.Millisecond), frozenLag.Round(time.Millisecond))
}

// TestPullStartedLateRefillsFromRedis sends taps through 'serve --redis',
// then starts a new pull node: a viewer coming back to it with a cursor
// from before the taps gets every second from Redis, exactly as the serve
// process's own viewer saw them.
func TestPullStartedLateRefillsFromRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	common := []string{"--redis", srv.URL(), "--seal-delay", fleetSealDelay, "--log-level", "warn"}
	both := startProc(t, "serve", append(append(append([]string{"serve"}, loadSender...), exact...), common...)...)
	both.waitReady()
	v := watchStream(t, both, "refill")
	ta := newTally()
	sendFor(t, ta, []*proc{both}, []string{"refill"}, 4*time.Second)
	seen := v.waitTotals(ta, 20*time.Second)
	ta.checkSeconds(t, both.name, "refill", seen)

	late := startProc(t, "pull-late", append(append([]string{"pull"}, exact...), common...)...)
	late.waitReady()
	v.mu.Lock()
	oldest := v.cursor
	for s := range v.seen {
		oldest = min(oldest, s-1)
	}
	v.mu.Unlock()
	back := watchStreamFrom(t, late, "refill", oldest)
	refilled := back.waitTotals(ta, 20*time.Second)
	ta.checkSeconds(t, late.name, "refill", refilled)
}

// TestFleetWaitsForItsReplica runs a push and a pull node with
// --redis-min-replicas 1 on a master with one replica, and freezes the
// replica for 3 s while taps keep coming: the push node keeps its batches
// in its backlog until the replica has them, the pull node publishes
// nothing it could lose in a failover, and when the replica is back every
// tap answered 202 reaches the viewer, once.
func TestFleetWaitsForItsReplica(t *testing.T) {
	t.Parallel()
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	common := []string{"--redis", master.URL(), "--redis-min-replicas", "1", "--seal-delay", fleetSealDelay, "--log-level", "warn"}
	pu := startProc(t, "push", append(append([]string{"push"}, loadSender...), common...)...)
	pl := startProc(t, "pull", append(append([]string{"pull"}, exact...), common...)...)
	pu.waitReady()
	pl.waitReady()
	v := watchStream(t, pl, "replicated")
	ta := newTally()
	pushes := []*proc{pu}
	sendFor(t, ta, pushes, []string{"replicated"}, 2*time.Second)

	replica.Pause()
	done := make(chan struct{})
	go func() { defer close(done); sendFor(t, ta, pushes, []string{"replicated"}, 3*time.Second) }()
	testutil.Eventually(t, 10*time.Second, "push keeps unconfirmed batches in its backlog", func() bool {
		return pu.metric("emojicast_push_backlog_deltas") > 0
	})
	<-done
	if n := pu.metric("emojicast_store_replica_wait_failures_total"); n <= 0 {
		t.Errorf("emojicast_store_replica_wait_failures_total = %v with the replica frozen; want failures counted", n)
	}
	replica.Resume()
	seen := v.waitTotals(ta, 30*time.Second)
	checkSettled(t, ta, v)
	testutil.Eventually(t, 10*time.Second, "push backlog written", func() bool { return pu.metric("emojicast_push_backlog_deltas") == 0 })
	if ta.refused > 0 {
		t.Errorf("%d sends refused while the replica was frozen; push nodes keep answering 202", ta.refused)
	}
	t.Logf("%d taps accepted across a 3 s replica freeze; the viewer saw all of them (%v)", ta.accepted, seen.total())
}

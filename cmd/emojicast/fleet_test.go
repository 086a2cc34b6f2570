package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/internal/testutil"
)

// The fleet tests run emojicast push and pull nodes as separate processes
// on real redis-servers and check, as a viewer polling each pull node, that
// every tap a push node answered 202 is counted exactly once.

// fleetSealDelay leaves race-built processes on a loaded machine time to
// flush a second before it is sealed, so counts stay in their own second.
const fleetSealDelay = "1s"

// exact keeps a pull process from sampling: these tests compare what
// viewers see with the taps sent, so every tap must count once, while one
// viewer of thousands of taps a second would otherwise get a sample below 1
// and counts weighted by its inverse (control_fleet_test.go tests that).
var exact = []string{"--target-sends", "1000000000"}

// loadSender lets one test address send like a crowd: the per-user and
// per-address limits are not what the fleet tests are about.
var loadSender = []string{"--user-rate", "1000", "--user-burst", "1000", "--ip-send-rate", "1000000", "--ip-send-burst", "1000000",
	"--ip-weight-rate", "1000000", "--ip-weight-burst", "1000000", "--ip-comment-rate", "1000000", "--ip-comment-burst", "1000000"}

// fleetClient bounds every request of the fleet tests, so a hung process
// fails the test instead of hanging it.
var fleetClient = &http.Client{Timeout: 5 * time.Second}

// proc is one emojicast process started by the test.
type proc struct {
	t      *testing.T
	name   string
	url    string
	cmd    *exec.Cmd
	logs   *testutil.SyncBuffer
	exited chan struct{}
	err    error // set before exited closes
}

// startProc runs emojicast with args and a free --listen address, and waits
// until it answers /healthz.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startProcOn(t, name, testutil.FreePort(t), nil, args...)
}

// startProcOn is startProc on a given port (a process restarted where its
// clients know it) with extra environment variables.
func startProcOn(t *testing.T, name string, port int, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, url: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(binary(t), append(args, "--listen", fmt.Sprintf("127.0.0.1:%d", port))...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		if p.alive() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("logs of %s:\n%s", p.name, p.logs.String())
		}
	})
	testutil.Eventually(t, 20*time.Second, name+" answers /healthz", func() bool {
		if !p.alive() {
			t.Fatalf("%s exited at start: %v\n%s", name, p.err, p.logs.String())
		}
		return p.status("/healthz") == http.StatusOK
	})
	return p
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// status GETs path and returns the status code, 0 if unreachable.
func (p *proc) status(path string) int {
	code, _ := p.get(path)
	return code
}

func (p *proc) get(path string) (int, string) {
	resp, err := fleetClient.Get(p.url + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *proc) waitReady() {
	p.t.Helper()
	testutil.Eventually(p.t, 20*time.Second, p.name+" reports ready", func() bool { return p.status("/readyz") == http.StatusOK })
}

// metric returns the value of a metric without labels from /metrics.
func (p *proc) metric(name string) float64 {
	_, body := p.get("/metrics")
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}

// terminate sends SIGTERM and waits for a clean exit.
func (p *proc) terminate() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			p.t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.name, p.err, p.logs.String())
		}
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not exit after SIGTERM:\n%s", p.name, p.logs.String())
	}
}

// counts are reactions by second and emoji.
type counts map[int64]map[string]int64

func (c counts) add(sec int64, emoji string, n int64) {
	if c[sec] == nil {
		c[sec] = map[string]int64{}
	}
	c[sec][emoji] += n
}

func (c counts) total() map[string]int64 {
	out := map[string]int64{}
	for _, byEmoji := range c {
		for e, n := range byEmoji {
			out[e] += n
		}
	}
	return out
}

// tally records what the push nodes accepted, per stream. A tap whose
// request started and answered in the same wall-clock second is in that
// second (the push node read its clock in between); one that straddled a
// boundary is in one of the two, recorded under the first.
type tally struct {
	mu        sync.Mutex
	definite  map[string]counts
	straddled map[string]counts
	accepted  int64
	refused   int64
}

func newTally() *tally {
	return &tally{definite: map[string]counts{}, straddled: map[string]counts{}}
}

func (ta *tally) record(stream, emoji string, n int64, start, end time.Time) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	m := ta.definite
	if start.Unix() != end.Unix() {
		m = ta.straddled
	}
	if m[stream] == nil {
		m[stream] = counts{}
	}
	m[stream].add(start.Unix(), emoji, n)
	ta.accepted += n
}

func (ta *tally) totals(stream string) map[string]int64 {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	out := ta.definite[stream].total()
	for e, n := range ta.straddled[stream].total() {
		out[e] += n
	}
	return out
}

// checkSeconds fails unless seen holds, second by second, what was
// accepted: the definite taps, plus straddling ones in either second.
func (ta *tally) checkSeconds(t *testing.T, where, stream string, seen counts) {
	t.Helper()
	ta.mu.Lock()
	defer ta.mu.Unlock()
	def, str := ta.definite[stream], ta.straddled[stream]
	secs := map[int64]bool{}
	for _, c := range []counts{def, str, seen} {
		for s := range c {
			secs[s], secs[s+1] = true, true
		}
	}
	for s := range secs {
		for _, e := range []string{"like", "love", "fire", "wow"} {
			low := def[s][e]
			high := low + str[s][e] + str[s-1][e]
			if got := seen[s][e]; got < low || got > high {
				t.Errorf("%s: stream %s second %d %s: viewer saw %d; push nodes accepted %d (up to %d with taps that straddled a second)",
					where, stream, s, e, got, low, high)
			}
		}
	}
}

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

// fleetViewer polls one stream on one pull node like a client, in the
// background, and keeps what it saw per second.
type fleetViewer struct {
	t      *testing.T
	pull   *proc
	stream string

	mu      sync.Mutex
	cursor  int64
	seen    counts
	samples []float64 // the sample of every poll answer, in order
	err     error
	stop    chan struct{}
	done    chan struct{}
}

// watchStream opens the stream on the pull node and polls it every 200 ms
// until the test ends.
func watchStream(t *testing.T, pull *proc, stream string) *fleetViewer {
	t.Helper()
	var w struct {
		Since int64 `json:"since"`
	}
	if code := getJSON(t, pull.url+"/v1/streams/"+stream+"/watch?user=viewer", &w); code != http.StatusOK {
		t.Fatalf("watch %s on %s: %d", stream, pull.name, code)
	}
	v := &fleetViewer{t: t, pull: pull, stream: stream, cursor: w.Since, seen: counts{}, stop: make(chan struct{}), done: make(chan struct{})}
	go v.loop()
	t.Cleanup(v.close)
	return v
}

func (v *fleetViewer) close() {
	select {
	case <-v.stop:
	default:
		close(v.stop)
	}
	<-v.done
}

func (v *fleetViewer) loop() {
	defer close(v.done)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-tick.C:
		}
		v.poll()
	}
}

type fleetPoll struct {
	Now     int64   `json:"now"`
	Sample  float64 `json:"sample"`
	Buckets []struct {
		T int64            `json:"t"`
		C map[string]int64 `json:"c"`
	} `json:"buckets"`
}

func (v *fleetViewer) poll() {
	v.mu.Lock()
	cursor := v.cursor
	v.mu.Unlock()
	resp, err := fleetClient.Get(fmt.Sprintf("%s/v1/streams/%s/reactions?since=%d", v.pull.url, v.stream, cursor))
	if err != nil {
		return // the pull node may be restarting; a client retries
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	var pb fleetPoll
	if err := json.NewDecoder(resp.Body).Decode(&pb); err != nil {
		v.fail(fmt.Errorf("poll body: %w", err))
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.samples = append(v.samples, pb.Sample)
	for _, b := range pb.Buckets {
		if b.T <= v.cursor {
			continue
		}
		if v.seen[b.T] != nil {
			v.err = fmt.Errorf("second %d delivered twice", b.T)
		}
		for e, n := range b.C {
			v.seen.add(b.T, e, n)
		}
	}
	v.cursor = max(v.cursor, pb.Now)
}

func (v *fleetViewer) fail(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err == nil {
		v.err = err
	}
}

// snapshot returns a copy of what the viewer saw and its cursor.
func (v *fleetViewer) snapshot() (counts, int64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c := counts{}
	for s, byEmoji := range v.seen {
		for e, n := range byEmoji {
			c.add(s, e, n)
		}
	}
	return c, v.cursor, v.err
}

// waitTotals waits until the viewer saw exactly the accepted totals.
func (v *fleetViewer) waitTotals(ta *tally, timeout time.Duration) counts {
	v.t.Helper()
	want := fmt.Sprint(ta.totals(v.stream))
	deadline := time.Now().Add(timeout)
	for {
		seen, _, err := v.snapshot()
		if err != nil {
			v.t.Fatalf("viewer of %s on %s: %v", v.stream, v.pull.name, err)
		}
		if fmt.Sprint(seen.total()) == want {
			return seen
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("viewer of %s on %s saw %v in all; push nodes accepted %s", v.stream, v.pull.name, seen.total(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkSettled waits until every viewer passed two more seconds and checks
// that none saw more than was accepted: no count arrives twice, however late.
func checkSettled(t *testing.T, ta *tally, viewers ...*fleetViewer) {
	t.Helper()
	settled := time.Now().Unix() + 2
	for _, v := range viewers {
		testutil.Eventually(t, 20*time.Second, "viewer on "+v.pull.name+" passes two more seconds", func() bool {
			_, cursor, _ := v.snapshot()
			return cursor >= settled
		})
		seen, _, err := v.snapshot()
		if want := fmt.Sprint(ta.totals(v.stream)); err != nil || fmt.Sprint(seen.total()) != want {
			t.Fatalf("viewer of %s on %s saw %v in all after settling (%v); push nodes accepted %s", v.stream, v.pull.name, seen.total(), err, want)
		}
	}
}

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
	runFleet(t, redistest.Start(t).URL())
}

func TestFleetOnRedisCluster(t *testing.T) {
	runFleet(t, redistest.StartCluster(t, 3).Addrs())
}

// TestFleetSurvivesRedisOutage kills Redis for at least 5 s while taps keep
// coming, then restarts it: every tap answered 202 reaches the viewers,
// nobody crashes, and /readyz told the story. The Redis is durable (AOF):
// one without persistence comes back empty and loses the counts it had
// acknowledged for seconds not yet published (see README).
func TestFleetSurvivesRedisOutage(t *testing.T) {
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
	back := &fleetViewer{t: t, pull: late, stream: "refill", cursor: oldest, seen: counts{}, stop: make(chan struct{}), done: make(chan struct{})}
	go back.loop()
	t.Cleanup(back.close)
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

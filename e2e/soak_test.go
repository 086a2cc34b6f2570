package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
	"github.com/redis/go-redis/v9"

	"github.com/emojicast/emojicast/client"
	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/store"
)

// The fault-injection soak (issue 13). A fleet of 3 push and 2 pull
// processes runs on a Redis Cluster of 3 masters with a replica each;
// senders tap at a steady rate and viewers built on client/ follow their
// cursor, while a round of faults runs: slots resharded live, a push
// process and a pull process killed with SIGKILL and restarted, the
// master holding the seal horizon frozen with SIGSTOP for 10 s, a master
// killed and its replica promoted, 30 s without network for some viewers,
// an archiver killed and its PostgreSQL stopped, and all along one push
// process whose clock is 2 s ahead. Then an exact
// checker compares, per stream, emoji and second, the taps the push nodes
// answered 202 with what every viewer was shown. docs/operations.md
// ("Fault-injection soak") says how to run it longer.

var soakFor = flag.Duration("soak", 0, "how long TestFaultSoak injects faults, in rounds of about 80 s (0: one round, as CI runs it)")

const (
	// soakFlush is --flush-interval (the default): what a push process
	// killed with SIGKILL may lose is its accept rate times this and
	// soakFlushWrite.
	soakFlush = 250 * time.Millisecond
	// soakFlushWrite bounds how long a flush's write takes to reach the
	// store (one script per shard and WAIT for a replica, race-built, on a
	// busy machine): taps accepted while it is in flight are in the next
	// flush. A kill at one run lost 24 taps at 80 taps/s: 300 ms.
	soakFlushWrite = 100 * time.Millisecond
	// soakSkew is how far push-3's clock runs ahead.
	soakSkew = 2 * time.Second
	// soakFreeze is how long a master is frozen with SIGSTOP; the
	// cluster's node timeout is longer, so a freeze is not a failover.
	soakFreeze = 10 * time.Second
	// soakReplicaLag is how far a replica is behind when its master dies:
	// without WAIT (--redis-min-replicas) the writes of that time are lost.
	soakReplicaLag  = time.Second
	soakNodeTimeout = 20 * time.Second
	// soakCut is how long some viewers are without network: well inside
	// the 60 s window, so they must catch up with no gap.
	soakCut = 30 * time.Second
	// soakMaxLate bounds how much later than accepted a tap may be shown:
	// a count written after its second was sealed is carried into the
	// oldest open second, and the longest write stall here is the freeze.
	soakMaxLate = 30
	// soakKillGrace widens a killed push node's window of taps not yet
	// flushed by a flush's own write time.
	soakKillGrace = 100 * time.Millisecond
)

// soakEmojis are each push node's emojis: every shortfall or surplus is
// then one node's, and what a killed node lost is told apart from
// anything else.
var soakEmojis = [3][2]string{{"like", "love"}, {"haha", "wow"}, {"sad", "angry"}}

// TestFaultSoak runs the soak and fails unless, with --redis-min-replicas 1,
// no tap answered 202 is lost or counted twice (but the few a SIGKILLed
// push process had not flushed, at most its accept rate × the flush
// interval), every second reaches each viewer at most once, and no viewer
// misses a second without being told gap.
func TestFaultSoak(t *testing.T) {
	testutil.Long(t, "minutes of faults on a fleet and a Redis Cluster")
	if testutil.RaceEnabled {
		t.Skip("the soak runs without the race detector in the test process (its emojicast processes have it): go test -run '^TestFaultSoak$' ./e2e")
	}
	s := &soak{t: t, ledger: newSoakLedger(), start: time.Now()}
	s.setUp()
	rounds := 0
	for rounds == 0 || time.Since(s.start) < *soakFor {
		rounds++
		s.round(rounds)
	}
	s.finish(rounds)
}

// soak is one run: the fleet, the traffic and what was injected.
type soak struct {
	t       *testing.T
	start   time.Time
	cluster *redistest.Cluster
	redis   *redis.ClusterClient // to tell, when a tap is missing, whether Redis has it
	streams []string
	pushes  []*soakNode
	pulls   []*soakNode
	links   map[string]*weakLink
	ledger  *soakLedger
	viewers []*recorder
	archive *soakArchive // soak_archive_test.go

	stopViewers, stopSends context.CancelFunc
	bg, sends              sync.WaitGroup

	mu     sync.Mutex
	faults []string
	kills  []pushKill
}

// soakNode is an emojicast process restarted on the same port, where its
// clients know it.
type soakNode struct {
	name  string
	port  int
	env   []string
	args  []string
	url   string
	skew  time.Duration
	runs  int
	mu    sync.Mutex
	p     *proc
	emoji [2]string
}

func (n *soakNode) startOn(t *testing.T) {
	t.Helper()
	n.runs++
	name := n.name
	if n.runs > 1 {
		name = fmt.Sprintf("%s (run %d)", n.name, n.runs)
	}
	p := startProcOn(t, name, n.port, n.env, n.args...)
	n.mu.Lock()
	n.p = p
	n.mu.Unlock()
}

func (n *soakNode) proc() *proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.p
}

// kill ends the process with SIGKILL and returns when it is gone.
func (n *soakNode) kill() {
	p := n.proc()
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// pushKill is a push process killed with SIGKILL, and when.
type pushKill struct {
	node       int
	start, end time.Time // just before the signal; once the process was gone
}

// logFault records a fault in the run's log, at its offset from the start.
func (s *soak) logFault(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	line := fmt.Sprintf("%6.1fs (second %d)  %s", now.Sub(s.start).Seconds(), now.Unix(), fmt.Sprintf(format, args...))
	s.faults = append(s.faults, line)
}

// setUp starts the cluster, the fleet, toxiproxy, the viewers and the
// senders.
func (s *soak) setUp() {
	t := s.t
	s.cluster = redistest.StartReplicatedCluster(t, 3, soakNodeTimeout)
	s.streams = s.pickStreams(2)
	addrs := s.cluster.Addrs()
	s.redis = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	t.Cleanup(func() { _ = s.redis.Close() })
	common := []string{"--redis", addrs, "--redis-min-replicas", "1", "--seal-delay", fleetSealDelay, "--log-level", "warn"}
	// The senders stay far inside loadSender's limits, which the fleet
	// shares through Redis: push-3's clock, 2 s ahead with a burst of 1 s,
	// must not make any node answer 429 (finish checks).
	pushArgs := append(append([]string{"push", "--flush-interval", soakFlush.String()}, loadSender...), common...)
	for i := range 3 {
		n := &soakNode{name: fmt.Sprintf("push-%d", i+1), port: testutil.FreePort(t), args: pushArgs, emoji: soakEmojis[i]}
		if i == 2 {
			n.skew = soakSkew
			n.env = []string{"EMOJICAST_TEST_CLOCK_OFFSET=" + soakSkew.String()}
		}
		n.url = fmt.Sprintf("http://127.0.0.1:%d", n.port)
		n.startOn(t)
		s.pushes = append(s.pushes, n)
	}
	pullArgs := append(append([]string{"pull", "--ip-watch-rate", "1000", "--ip-watch-burst", "1000", "--compact-min-next-ms", "1000"}, exact...), common...)
	for i := range 2 {
		n := &soakNode{name: fmt.Sprintf("pull-%d", i+1), port: testutil.FreePort(t), args: pullArgs}
		n.url = fmt.Sprintf("http://127.0.0.1:%d", n.port)
		n.startOn(t)
		s.pulls = append(s.pulls, n)
	}
	for _, n := range append(slices.Clone(s.pushes), s.pulls...) {
		n.proc().waitReady()
	}
	tc := startToxiproxy(t)
	s.links = map[string]*weakLink{
		"blackhole": newWeakLink(t, tc, "blackhole", s.pulls[0].proc()),
		"refused":   newWeakLink(t, tc, "refused", s.pulls[1].proc()),
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopViewers = cancel
	t.Cleanup(func() { cancel(); s.bg.Wait() })
	for _, stream := range s.streams {
		for _, at := range []struct{ name, url string }{
			{"pull-1", s.pulls[0].url}, {"pull-2", s.pulls[1].url},
			{"blackhole>pull-1", s.links["blackhole"].url}, {"refused>pull-2", s.links["refused"].url},
		} {
			// Viewers straight at a pull node ask for API v1's body; the
			// ones behind a link, for the compact one.
			opts := client.Options{Server: at.url, User: fmt.Sprintf("viewer-%s-%s", strings.ReplaceAll(at.name, ">", "."), stream), RequestTimeout: 5 * time.Second}
			if !strings.Contains(at.name, ">") {
				opts.Body = client.BodyV1
			}
			v := newRecorder(t, ctx, at.name, stream, opts)
			s.viewers = append(s.viewers, v)
			s.bg.Go(func() { v.run(ctx) })
		}
	}
	sendCtx, stopSends := context.WithCancel(context.Background())
	s.stopSends = stopSends
	t.Cleanup(func() { stopSends(); s.sends.Wait() })
	for i := range s.pushes {
		for g := range soakSenders {
			s.sends.Go(func() { s.send(sendCtx, i, g) })
		}
	}
	s.startArchive()
	s.logFault("fleet up: 3 push, 2 pull, an archiver, %d viewers of %d streams; push-3's clock %v ahead", len(s.viewers), len(s.streams), soakSkew)
}

// shardSlotKey is a key of a store shard: its slot is the shard's slot.
func shardSlotKey(shard int) string { return fmt.Sprintf("{emojicast:%d}:active", shard) }

// storeShard is store.shard: FNV-1a of the stream id mod RedisShards.
func storeShard(stream string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(stream))
	return int(h.Sum32() % store.RedisShards)
}

// pickStreams names perMaster streams on each master, each in a shard of
// its own and none in shard 0, whose slot is the seal horizon's.
func (s *soak) pickStreams(perMaster int) []string {
	masters := s.cluster.Masters(s.t)
	on := map[*redistest.Server]int{}
	shards := map[int]bool{0: true}
	var streams []string
	for i := 0; len(streams) < perMaster*len(masters); i++ {
		name := fmt.Sprintf("soak-%d", i)
		k := storeShard(name)
		if shards[k] {
			continue
		}
		m := s.cluster.MasterOf(s.t, s.cluster.Slot(s.t, shardSlotKey(k)))
		if on[m] == perMaster {
			continue
		}
		on[m]++
		shards[k] = true
		streams = append(streams, name)
	}
	return streams
}

// soakSenders send to each push node, each soakSendEvery: 40 sends and
// 80 taps a second per node, 240 in all, while requests take less than
// soakSendEvery.
const (
	soakSenders   = 4
	soakSendEvery = 100 * time.Millisecond
	soakCount     = 2 // taps per send
)

// send taps through push node i at a steady pace, every stream in turn,
// the node's two emojis in turn, until ctx is done.
func (s *soak) send(ctx context.Context, i, g int) {
	n := s.pushes[i]
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	tick := time.NewTicker(soakSendEvery)
	defer tick.Stop()
	for k := 0; ; k++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		stream := s.streams[(k+g)%len(s.streams)]
		emoji := n.emoji[(k/len(s.streams))%2]
		body := fmt.Sprintf(`{"emoji":%q,"count":%d,"user":"%s-%d-%d"}`, emoji, soakCount, n.name, g, k%20)
		start := time.Now()
		resp, err := hc.Post(n.url+"/v1/streams/"+stream+"/reactions", "application/json", strings.NewReader(body))
		end := time.Now()
		sec := start.Add(n.skew).Unix()
		out, why := soakRefused, "no connection"
		switch {
		case err != nil && !errors.Is(err, syscall.ECONNREFUSED):
			out, why = soakUnsure, "connection broken" // the node may have counted it and died before answering
		case err == nil:
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			why = fmt.Sprintf("%d %s", resp.StatusCode, errorCode(b))
			if resp.StatusCode == http.StatusAccepted {
				out = soakAccepted
			}
		}
		s.ledger.record(i, soakCell{stream, emoji}, sec, soakCount, end, out)
		s.ledger.answer(i, end.Sub(start), why)
	}
}

// round runs one round of faults, about 80 s.
func (s *soak) round(r int) {
	t := s.t
	time.Sleep(8 * time.Second) // steady first
	s.reshard(r)
	s.killPush((r - 1) % len(s.pushes))
	restored := s.cutViewers()
	time.Sleep(4 * time.Second)
	s.freezeHorizon()
	time.Sleep(4 * time.Second)
	s.killPull((r - 1) % len(s.pulls))
	archived := s.faultArchive()
	<-restored
	time.Sleep(2 * time.Second)
	s.failOver(r)
	time.Sleep(8 * time.Second)
	<-archived
	for _, n := range append(slices.Clone(s.pushes), s.pulls...) {
		if !n.proc().alive() {
			t.Fatalf("%s died by itself", n.name)
		}
	}
}

// reshard moves the slots of one master's streams, and the seal horizon's
// slot, each to the next master, live.
func (s *soak) reshard(r int) {
	t := s.t
	masters := s.cluster.Masters(t)
	from := masters[r%len(masters)]
	next := func(m *redistest.Server) *redistest.Server {
		i := slices.Index(masters, m)
		return masters[(i+1)%len(masters)]
	}
	slots := []int{s.cluster.Slot(t, shardSlotKey(0))}
	for _, stream := range s.streams {
		slot := s.cluster.Slot(t, shardSlotKey(storeShard(stream)))
		if s.cluster.MasterOf(t, slot) == from {
			slots = append(slots, slot)
		}
	}
	for _, slot := range slots {
		src := s.cluster.MasterOf(t, slot)
		dst := next(src)
		began := time.Now()
		s.cluster.MoveSlot(t, slot, dst, 3*time.Second)
		s.logFault("reshard: slot %d moved %s -> %s, live, in %.1f s", slot, src.Addr(), dst.Addr(), time.Since(began).Seconds())
	}
}

// killPush kills push node i with SIGKILL and restarts it 2 s later.
//
// It first waits until the node's backlog is empty: a node killed while a
// store is unreachable loses its backlog too (docs/operations.md, "A push
// node crashes"), and the verdict holds the kill to what a healthy node
// loses, its last flush interval. The wait says how long writes lagged
// behind the fault before.
func (s *soak) killPush(i int) {
	n := s.pushes[i]
	began := time.Now()
	testutil.Eventually(s.t, 60*time.Second, n.name+" writes its backlog before it is killed", func() bool {
		return n.proc().metric("emojicast_push_backlog_deltas") == 0
	})
	if waited := time.Since(began); waited > time.Second {
		s.logFault("%s's backlog written after %.1f s", n.name, waited.Seconds())
	}
	k := pushKill{node: i, start: time.Now()}
	n.kill()
	k.end = time.Now()
	s.mu.Lock()
	s.kills = append(s.kills, k)
	s.mu.Unlock()
	s.logFault("SIGKILL %s", n.name)
	time.Sleep(2 * time.Second)
	n.startOn(s.t)
	s.logFault("%s restarted", n.name)
}

// killPull kills pull node i with SIGKILL and restarts it 2 s later.
func (s *soak) killPull(i int) {
	n := s.pulls[i]
	n.kill()
	s.logFault("SIGKILL %s", n.name)
	time.Sleep(2 * time.Second)
	n.startOn(s.t)
	s.logFault("%s restarted", n.name)
}

// cutViewers takes the network from the viewers behind the links for
// soakCut: one link swallows every packet, the other refuses connections.
// The returned channel closes when the network is back.
func (s *soak) cutViewers() <-chan struct{} {
	t := s.t
	s.links["blackhole"].toxic(t, "cut", "timeout", toxiproxy.Attributes{"timeout": 0})
	if err := s.links["refused"].proxy.Disable(); err != nil {
		t.Fatal(err)
	}
	s.logFault("network cut for the viewers behind the links (%v)", soakCut)
	done := make(chan struct{})
	s.bg.Go(func() {
		defer close(done)
		time.Sleep(soakCut)
		s.links["blackhole"].removeToxic(t, "cut")
		if err := s.links["refused"].proxy.Enable(); err != nil {
			t.Error(err)
		}
		s.logFault("network back for the viewers behind the links")
	})
	return done
}

// freezeHorizon stops the master of the seal horizon's slot with SIGSTOP
// for soakFreeze.
func (s *soak) freezeHorizon() {
	m := s.cluster.MasterOf(s.t, s.cluster.Slot(s.t, shardSlotKey(0)))
	m.Pause()
	s.logFault("SIGSTOP master %s (the seal horizon's) for %v", m.Addr(), soakFreeze)
	time.Sleep(soakFreeze)
	m.Resume()
	s.logFault("SIGCONT master %s", m.Addr())
}

// failOver kills a master with SIGKILL (one holding streams and, if it
// can, not the horizon) while its replica lags soakReplicaLag behind,
// promotes the replica at once with CLUSTER
// FAILOVER TAKEOVER, and restarts the old master, which comes back empty
// and rejoins as the new master's replica.
func (s *soak) failOver(r int) {
	t := s.t
	horizon := s.cluster.MasterOf(t, s.cluster.Slot(t, shardSlotKey(0)))
	holds := map[*redistest.Server]bool{}
	for _, stream := range s.streams {
		holds[s.cluster.MasterOf(t, s.cluster.Slot(t, shardSlotKey(storeShard(stream))))] = true
	}
	masters := s.cluster.Masters(t)
	var victim *redistest.Server
	for i := range masters {
		m := masters[(r+i)%len(masters)]
		if holds[m] && (m != horizon || victim == nil) {
			victim = m
		}
	}
	replica := s.cluster.ReplicaOf(t, victim)
	if replica == nil {
		t.Fatalf("master %s has no replica to fail over to", victim.Addr())
	}
	// Replication lags in a busy cluster; here it lags on purpose, so the
	// writes the master acknowledged last are on it alone when it dies.
	replica.Pause()
	victim.DropReplicaLinks(t)
	time.Sleep(soakReplicaLag)
	victim.Kill()
	replica.Resume()
	s.logFault("SIGKILL master %s, its replica %s cut off for the %v before (replication lag)", victim.Addr(), replica.Addr(), soakReplicaLag)
	s.cluster.Takeover(t, replica)
	s.logFault("replica %s promoted (CLUSTER FAILOVER TAKEOVER)", replica.Addr())
	time.Sleep(3 * time.Second)
	victim.Restart()
	s.cluster.WaitHealthy(t)
	s.logFault("old master %s back, empty, as a replica of %s", victim.Addr(), replica.Addr())
}

// finish stops the traffic, lets every write land and every viewer pass
// it, and checks.
func (s *soak) finish(rounds int) {
	t := s.t
	s.stopSends()
	s.sends.Wait()
	s.logFault("senders stopped")
	testutil.Eventually(t, 90*time.Second, "every push node writes its backlog", func() bool {
		for _, n := range s.pushes {
			if n.proc().metric("emojicast_push_backlog_deltas") != 0 {
				return false
			}
		}
		return true
	})
	through := max(s.ledger.newest(), time.Now().Unix()) + 1
	testutil.Eventually(t, 60*time.Second, "every viewer passes the last second", func() bool {
		for _, v := range s.viewers {
			if v.at() < through {
				return false
			}
		}
		return true
	})
	s.stopViewers()
	s.bg.Wait()
	s.logFault("every viewer passed second %d", through)
	rep := s.check(through)
	s.checkArchive(through)
	t.Logf("fault-injection soak: %d round(s), %s, --redis-min-replicas 1\nsenders: %s\nfaults:\n%s\n\n%s",
		rounds, time.Since(s.start).Round(time.Second), s.ledger.senders(), strings.Join(s.faults, "\n"), rep.table())
	for _, e := range rep.errs {
		t.Error(e)
	}
	if n := s.ledger.rateLimited(); n > 0 {
		t.Errorf("%d sends answered 429, from senders far inside the shared limits: the fleet's limits drift (a skewed clock?)", n)
	}
}

// soakCell is one stream and emoji: one push node's taps on one stream.
type soakCell struct{ stream, emoji string }

// soakOutcome is what a send got.
type soakOutcome int

const (
	soakAccepted soakOutcome = iota // 202: must count once
	soakRefused                     // an answer other than 202, or no connection: must not count
	soakUnsure                      // the connection broke: may have counted, once
)

// soakLedger is every send's outcome, by cell and second (the second the
// push node's clock put it in).
type soakLedger struct {
	mu       sync.Mutex
	accepted map[soakCell]map[int64]int64
	unsure   map[soakCell]map[int64]int64
	events   []soakSend // every accepted send, for the killed nodes' windows
	refused  int64
	answered [3][]time.Duration // each push node's answer times
	outcomes map[string]int64   // sends by what they got
}

// soakSend is one accepted send.
type soakSend struct {
	node int
	cell soakCell
	sec  int64
	n    int64
	end  time.Time // when the 202 arrived
}

func newSoakLedger() *soakLedger {
	return &soakLedger{accepted: map[soakCell]map[int64]int64{}, unsure: map[soakCell]map[int64]int64{}, outcomes: map[string]int64{}}
}

func (l *soakLedger) record(node int, c soakCell, sec, n int64, end time.Time, out soakOutcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	add := func(m map[soakCell]map[int64]int64) {
		if m[c] == nil {
			m[c] = map[int64]int64{}
		}
		m[c][sec] += n
	}
	switch out {
	case soakAccepted:
		add(l.accepted)
		l.events = append(l.events, soakSend{node: node, cell: c, sec: sec, n: n, end: end})
	case soakUnsure:
		add(l.unsure)
	default:
		l.refused += n
	}
}

// answer records how long a send took and what it got.
func (l *soakLedger) answer(node int, d time.Duration, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answered[node] = append(l.answered[node], d)
	l.outcomes[fmt.Sprintf("push-%d %s", node+1, why)]++
}

// rateLimited returns how many sends any push node answered 429.
func (l *soakLedger) rateLimited() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for why, k := range l.outcomes {
		if strings.Contains(why, " 429 ") {
			n += k
		}
	}
	return n
}

// errorCode returns the code of a JSON error answer, or "".
func errorCode(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

// senders describes each push node's sends: how many, and how fast they
// were answered.
func (l *soakLedger) senders() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for i, took := range l.answered {
		if len(took) == 0 {
			continue
		}
		sorted := slices.Sorted(slices.Values(took))
		q := func(p float64) time.Duration { return sorted[int(p*float64(len(sorted)-1))].Round(time.Millisecond) }
		fmt.Fprintf(&b, "push-%d: %d sends, answered in %v median, %v p99, %v max; ", i+1, len(took), q(0.5), q(0.99), q(1))
	}
	fmt.Fprintf(&b, "%d taps refused; sends by answer: %v", l.refused, l.outcomes)
	return b.String()
}

// newest returns the newest second any tap was accepted or sent in.
func (l *soakLedger) newest() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var newest int64
	for _, m := range []map[soakCell]map[int64]int64{l.accepted, l.unsure} {
		for _, secs := range m {
			for sec := range secs {
				newest = max(newest, sec)
			}
		}
	}
	return newest
}

// storeHistory returns what Redis's history holds for a stream's second,
// by emoji: when a viewer missed taps, it tells whether the store lost
// them or the pull nodes did. Nil when Redis cannot say.
func (s *soak) storeHistory(stream string, sec int64) map[string]int64 {
	key := fmt.Sprintf("{emojicast:%d}:h:%s:%d", storeShard(stream), stream, sec/60)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fields, err := s.redis.HGetAll(ctx, key).Result()
	if err != nil {
		return nil
	}
	out := map[string]int64{}
	prefix := fmt.Sprintf("%d:", sec%60)
	for f, v := range fields {
		if e, ok := strings.CutPrefix(f, prefix); ok {
			var n int64
			_, _ = fmt.Sscan(v, &n)
			out[e] = n
		}
	}
	return out
}

// storeCount returns a stream's second's count key in Redis (kept 120 s),
// by emoji. Nil when Redis cannot say.
func (s *soak) storeCount(stream string, sec int64) map[string]int64 {
	key := fmt.Sprintf("{emojicast:%d}:c:%s:%d", storeShard(stream), stream, sec)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fields, err := s.redis.HGetAll(ctx, key).Result()
	if err != nil {
		return nil
	}
	out := map[string]int64{}
	for e, v := range fields {
		var n int64
		_, _ = fmt.Sscan(v, &n)
		out[e] = n
	}
	return out
}

// Package redistest starts real redis-server processes for tests: single
// servers, clusters of masters, and clusters of masters with replicas that
// tests fail over and reshard, on free loopback ports, in temporary
// directories, with persistence off, stopped when the test ends. Tests get
// a real Redis without touching the one a developer may run on 6379.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emojicast/emojicast/internal/testutil"
)

// startTimeout bounds how long a server or cluster may take to come up on a
// loaded machine.
const startTimeout = 20 * time.Second

// Server is one redis-server process the test owns.
type Server struct {
	t    testing.TB
	port int
	dir  string
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts a redis-server on a free port and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t)
}

// StartPersistent starts a redis-server that writes every acknowledged
// write to its append-only file before answering, so Kill then Restart is
// a crash and restart of the same database, as with a production Redis
// configured for durability.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	return start(t, "--appendonly", "yes", "--appendfsync", "always")
}

func start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin := testutil.NeedsProgram(t, "redis-server")
	var lastErr error
	// A free port can be taken between the check and redis binding it.
	for range 3 {
		s := &Server{t: t, port: testutil.FreePort(t), dir: t.TempDir()}
		s.args = append([]string{
			"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
			"--save", "", "--protected-mode", "no",
			"--loglevel", "warning", "--logfile", filepath.Join(s.dir, "redis.log"),
		}, append([]string{"--appendonly", "no"}, extra...)...)
		if lastErr = s.run(bin); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("cannot start redis-server: %v", lastErr)
	return nil
}

// run starts the process and waits until it answers PING.
func (s *Server) run(bin string) error {
	cmd := exec.Command(bin, s.args...)
	// The server must not outlive a test binary that crashes or times out.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited: %s", s.port, s.logTail())
		default:
		}
		if s.ping() == nil {
			s.mu.Lock()
			s.cmd = cmd
			s.mu.Unlock()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("redis-server on port %d did not answer within %v: %s", s.port, startTimeout, s.logTail())
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// ping sends PING in the inline protocol and checks for +PONG.
func (s *Server) ping() error {
	_, err := s.inline("PING", "+PONG")
	return err
}

// inline sends one inline command and returns the first reply line, which
// must start with want.
func (s *Server) inline(command, want string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(command + "\r\n")); err != nil {
		return "", err
	}
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	reply := string(buf[:n])
	if !strings.HasPrefix(reply, want) {
		return reply, fmt.Errorf("%s answered %q", command, reply)
	}
	return reply, nil
}

// Addr returns host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL returns the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Kill stops the server at once, the way a crash would. It is idempotent.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused server cannot die
	_ = cmd.Process.Kill()
	// Wait until the port is free, so Restart can bind it.
	testutil.Eventually(s.t, startTimeout, "killed redis-server stops answering", func() bool { return s.ping() != nil })
}

// Restart starts the server again on the same port after Kill: empty, or
// with its data for a server from StartPersistent.
func (s *Server) Restart() {
	s.t.Helper()
	bin := testutil.NeedsProgram(s.t, "redis-server")
	var err error
	// The kernel may hold the port a moment after the old process died.
	testutil.Eventually(s.t, startTimeout, "redis-server restarts on its port", func() bool {
		err = s.run(bin)
		return err == nil
	})
}

// Pause freezes the server (SIGSTOP): connections stay open, nothing is
// answered, as with a hung host or a network partition. Resume undoes it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume lets a paused server go on.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Servers []*Server
}

// StartCluster starts n cluster-enabled servers, joins them with
// redis-cli --cluster create, and waits until every node reports the
// cluster ok. They are stopped when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	cli := testutil.NeedsProgram(t, "redis-cli")
	c := &Cluster{}
	for range n {
		c.Servers = append(c.Servers, start(t,
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(testutil.FreePort(t)),
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
		))
	}
	args := []string{"--cluster", "create"}
	for _, s := range c.Servers {
		args = append(args, s.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, s := range c.Servers {
		testutil.Eventually(t, startTimeout, "cluster node "+s.Addr()+" reports cluster_state:ok", func() bool {
			reply, err := s.inline("CLUSTER INFO", "$")
			return err == nil && strings.Contains(reply, "cluster_state:ok")
		})
	}
	return c
}

// Addrs returns the nodes' addresses, comma-separated: the form emojicast
// takes for a cluster.
func (c *Cluster) Addrs() string {
	addrs := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		addrs[i] = s.Addr()
	}
	return strings.Join(addrs, ",")
}

// StartReplica starts a redis-server replicating master (REPLICAOF) and
// waits until its link to the master is up and the initial sync done. It is
// stopped when the test ends. Pause it to hold replication back; promote it
// with REPLICAOF NO ONE.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	// The master would wait 5 s for more replicas before its first sync.
	if _, err := master.inline("CONFIG SET repl-diskless-sync-delay 0", "+OK"); err != nil {
		t.Fatalf("master %s: %v", master.Addr(), err)
	}
	host, port, _ := strings.Cut(master.Addr(), ":")
	s := start(t, "--replicaof", host, port)
	testutil.Eventually(t, startTimeout, "replica "+s.Addr()+" of "+master.Addr()+" is in sync", func() bool {
		reply, err := s.inline("INFO replication", "$")
		if err != nil || !strings.Contains(reply, "master_link_status:up") || strings.Contains(reply, "master_sync_in_progress:1") {
			return false
		}
		// The master counts it for WAIT once it lists it online.
		reply, err = master.inline("INFO replication", "$")
		return err == nil && strings.Contains(reply, "port="+strconv.Itoa(s.port)+",state=online")
	})
	return s
}

// A cluster with replicas, for failover and resharding tests: the helpers
// below ask the servers themselves who is master of what, since a failover
// or a slot migration changes it while the test runs.

// StartReplicatedCluster starts a Redis Cluster of masters with one replica
// each (2 × masters servers), joined by redis-cli --cluster create, and
// waits until every node reports the cluster ok and every replica is in
// sync. nodeTimeout is cluster-node-timeout: a master unreachable that
// long is failed over to its replica by the cluster itself, so it must
// exceed any Pause a test means as a freeze, not a failover.
func StartReplicatedCluster(t testing.TB, masters int, nodeTimeout time.Duration) *Cluster {
	t.Helper()
	cli := testutil.NeedsProgram(t, "redis-cli")
	c := &Cluster{}
	for range 2 * masters {
		c.Servers = append(c.Servers, start(t,
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(testutil.FreePort(t)),
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10),
			// A master would wait 5 s for more replicas before a full sync.
			"--repl-diskless-sync-delay", "0",
		))
	}
	args := []string{"--cluster", "create"}
	for _, s := range c.Servers {
		args = append(args, s.Addr())
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(t)
	return c
}

// do runs one command on the server with a connection of its own and a
// timeout, so a paused or dead server fails the command instead of
// hanging the test.
func (s *Server) do(args ...any) *redis.Cmd {
	rc := redis.NewClient(&redis.Options{Addr: s.Addr(), DialTimeout: time.Second, ReadTimeout: 5 * time.Second, MaxRetries: -1})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return rc.Do(ctx, args...)
}

// Running reports whether the server was started and not killed since.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// ID returns the server's cluster node id.
func (s *Server) ID(t testing.TB) string {
	t.Helper()
	id, err := s.do("CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatalf("CLUSTER MYID on %s: %v", s.Addr(), err)
	}
	return id
}

// role returns "master" or "slave", and for a replica its master's port.
func (s *Server) role() (string, int, error) {
	r, err := s.do("ROLE").Slice()
	if err != nil || len(r) == 0 {
		return "", 0, fmt.Errorf("ROLE on %s: %v %v", s.Addr(), r, err)
	}
	role, _ := r[0].(string)
	if role == "slave" && len(r) > 2 {
		port, _ := r[2].(int64)
		return role, int(port), nil
	}
	return role, 0, nil
}

// Masters returns the running servers that are masters now.
func (c *Cluster) Masters(t testing.TB) []*Server {
	t.Helper()
	var out []*Server
	for _, s := range c.Servers {
		if !s.Running() {
			continue
		}
		if role, _, err := s.role(); err == nil && role == "master" {
			out = append(out, s)
		}
	}
	return out
}

// ReplicaOf returns the running replica of master m, or nil.
func (c *Cluster) ReplicaOf(t testing.TB, m *Server) *Server {
	t.Helper()
	for _, s := range c.Servers {
		if !s.Running() || s == m {
			continue
		}
		if role, port, err := s.role(); err == nil && role == "slave" && port == m.port {
			return s
		}
	}
	return nil
}

// ownSlots returns the slot ranges a server says it serves itself.
// slotRange reads a slot range of CLUSTER NODES, "lo-hi" or one slot.
func slotRange(r string) (lo, hi int, ok bool) {
	a, b, _ := strings.Cut(r, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if b == "" {
		hi, err2 = lo, nil
	}
	return lo, hi, err1 == nil && err2 == nil
}

// slotOwner returns the address of the master that s believes serves slot.
func (s *Server) slotOwner(slot int) (string, error) {
	nodes, err := s.do("CLUSTER", "NODES").Text()
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(nodes) {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "master") {
			continue
		}
		for _, r := range f[8:] {
			if a, b, ok := slotRange(r); ok && slot >= a && slot <= b {
				addr, _, _ := strings.Cut(f[1], "@")
				return addr, nil
			}
		}
	}
	return "", fmt.Errorf("CLUSTER NODES on %s: no master serves slot %d", s.Addr(), slot)
}

func (s *Server) ownSlots() ([][2]int, error) {
	nodes, err := s.do("CLUSTER", "NODES").Text()
	if err != nil {
		return nil, err
	}
	for line := range strings.Lines(nodes) {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "myself") {
			continue
		}
		var ranges [][2]int
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated or imported
			}
			a, b, ok := slotRange(r)
			if !ok {
				return nil, fmt.Errorf("CLUSTER NODES on %s: cannot read slots %q", s.Addr(), r)
			}
			ranges = append(ranges, [2]int{a, b})
		}
		return ranges, nil
	}
	return nil, fmt.Errorf("CLUSTER NODES on %s has no myself line", s.Addr())
}

// MasterOf returns the running master that serves slot, by its own word.
func (c *Cluster) MasterOf(t testing.TB, slot int) *Server {
	t.Helper()
	for _, m := range c.Masters(t) {
		ranges, err := m.ownSlots()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range ranges {
			if slot >= r[0] && slot <= r[1] {
				return m
			}
		}
	}
	t.Fatalf("no running master serves slot %d", slot)
	return nil
}

// Slot returns the cluster slot of a key.
func (c *Cluster) Slot(t testing.TB, key string) int {
	t.Helper()
	for _, s := range c.Servers {
		if !s.Running() {
			continue
		}
		if n, err := s.do("CLUSTER", "KEYSLOT", key).Int(); err == nil {
			return n
		}
	}
	t.Fatalf("no node answers CLUSTER KEYSLOT %s", key)
	return 0
}

// WaitHealthy waits until every running node reports cluster_state:ok
// and every running replica's link to its master is up.
func (c *Cluster) WaitHealthy(t testing.TB) {
	t.Helper()
	for _, s := range c.Servers {
		if !s.Running() {
			continue
		}
		testutil.Eventually(t, 3*startTimeout, "cluster node "+s.Addr()+" reports cluster_state:ok and, as a replica, its link up", func() bool {
			info, err := s.do("CLUSTER", "INFO").Text()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			role, _, err := s.role()
			if err != nil {
				return false
			}
			if role != "slave" {
				return true
			}
			repl, err := s.do("INFO", "replication").Text()
			return err == nil && strings.Contains(repl, "master_link_status:up") && !strings.Contains(repl, "master_sync_in_progress:1")
		})
	}
}

// Takeover promotes a replica at once with CLUSTER FAILOVER TAKEOVER, as
// an operator does when its master died, without waiting for the other
// masters to agree; it returns when the replica serves as master and the
// cluster is ok again.
func (c *Cluster) Takeover(t testing.TB, replica *Server) {
	t.Helper()
	if err := replica.do("CLUSTER", "FAILOVER", "TAKEOVER").Err(); err != nil {
		t.Fatalf("CLUSTER FAILOVER TAKEOVER on %s: %v", replica.Addr(), err)
	}
	testutil.Eventually(t, startTimeout, replica.Addr()+" serves as master", func() bool {
		role, _, err := replica.role()
		return err == nil && role == "master"
	})
	ranges, err := replica.ownSlots()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Servers {
		if !s.Running() {
			continue
		}
		testutil.Eventually(t, startTimeout, "cluster node "+s.Addr()+" reports cluster_state:ok after the takeover", func() bool {
			info, err := s.do("CLUSTER", "INFO").Text()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
		// A client asks any node where a slot is: each must know the new
		// master's slots, or a client may keep dialling the dead one.
		for _, r := range ranges {
			testutil.Eventually(t, startTimeout, fmt.Sprintf("cluster node %s knows slot %d is on %s", s.Addr(), r[0], replica.Addr()), func() bool {
				owner, err := s.slotOwner(r[0])
				return err == nil && owner == replica.Addr()
			})
		}
	}
}

// MoveSlot migrates slot to master to while clients use it, the way
// redis-cli --cluster reshard does (IMPORTING, MIGRATING, MIGRATE, then
// SETSLOT NODE), but spreads the keys over about d: the slot stays
// half-migrated that long, so clients meet ASK and TRYAGAIN redirections
// for keys on either side.
func (c *Cluster) MoveSlot(t testing.TB, slot int, to *Server, d time.Duration) {
	t.Helper()
	from := c.MasterOf(t, slot)
	if from == to {
		return
	}
	fromID, toID := from.ID(t), to.ID(t)
	must := func(cmd *redis.Cmd) *redis.Cmd {
		t.Helper()
		if err := cmd.Err(); err != nil {
			t.Fatalf("moving slot %d from %s to %s: %v: %v", slot, from.Addr(), to.Addr(), cmd.Args(), err)
		}
		return cmd
	}
	must(to.do("CLUSTER", "SETSLOT", slot, "IMPORTING", fromID))
	must(from.do("CLUSTER", "SETSLOT", slot, "MIGRATING", toID))
	const steps = 10
	n, _ := must(from.do("CLUSTER", "COUNTKEYSINSLOT", slot)).Int()
	per := n/steps + 1
	deadline := time.Now().Add(2*d + startTimeout)
	for {
		keys, _ := must(from.do("CLUSTER", "GETKEYSINSLOT", slot, per)).StringSlice()
		if len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("moving slot %d from %s to %s: keys keep coming back (%d left)", slot, from.Addr(), to.Addr(), len(keys))
		}
		args := []any{"MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "REPLACE", "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(from.do(args...))
		time.Sleep(d / steps)
	}
	// The target first, so that it never answers MOVED back to the source.
	must(to.do("CLUSTER", "SETSLOT", slot, "NODE", toID))
	must(from.do("CLUSTER", "SETSLOT", slot, "NODE", toID))
	for _, m := range c.Masters(t) {
		if m != to && m != from {
			_ = m.do("CLUSTER", "SETSLOT", slot, "NODE", toID).Err() // gossip tells it anyway
		}
	}
}

// DropReplicaLinks closes the master's connections to its replicas
// (CLIENT KILL TYPE replica): with the replica paused it cannot reconnect,
// so what the master acknowledges meanwhile is on the master alone, as
// with a replica that lags behind.
func (s *Server) DropReplicaLinks(t testing.TB) {
	t.Helper()
	if err := s.do("CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatalf("CLIENT KILL TYPE replica on %s: %v", s.Addr(), err)
	}
}

// Package redistest starts real redis-server processes for tests: single
// servers and 3-master clusters, on free loopback ports, in temporary
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

// Package pgtest starts a real PostgreSQL server for tests: a fresh
// cluster made by initdb in a temporary directory, on a free loopback
// port, stopped and removed when the test ends. Tests stop and start it
// again to play an outage. PostgreSQL refuses to run as root, and CI runs
// tests as root, so there the server runs as the postgres user.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/emojicast/emojicast/internal/testutil"
)

// startTimeout bounds how long the server may take to come up on a loaded
// machine.
const startTimeout = 60 * time.Second

// Server is one PostgreSQL server the test owns.
type Server struct {
	t    testing.TB
	bin  string // the directory of initdb and postgres
	dir  string // holds data/ and the socket
	port int
	cred *syscall.Credential // nil: run as this user
	// settings are extra postgres arguments.
	settings []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile *os.File
}

// Start initialises a cluster and starts its server. The database
// "postgres" is open to user "postgres" without a password on loopback.
// It does not fsync: a test's data needs to outlive a stop or a crash of
// the server, not of the machine.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, "-c", "fsync=off", "-c", "full_page_writes=off")
}

// StartDurable is Start with PostgreSQL's durable defaults (fsync on):
// what benchmarks measure.
func StartDurable(t testing.TB) *Server {
	t.Helper()
	return start(t)
}

func start(t testing.TB, settings ...string) *Server {
	t.Helper()
	bin := binDir(t)
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &Server{t: t, bin: bin, dir: dir, settings: settings}
	if os.Geteuid() == 0 {
		s.cred = postgresUser(t)
		// The server's user must reach its directory.
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	initdb := s.command(filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb failed: %v\n%s", err, out)
	}
	var lastErr error
	for range 3 { // a free port can be taken before the server binds it
		s.port = testutil.FreePort(t)
		if lastErr = s.run(); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("cannot start postgres: %v", lastErr)
	return nil
}

// binDir finds Debian's PostgreSQL binaries, the newest version first.
func binDir(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs postgresql")
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p)
		}
		t.Fatal("postgresql is not installed: run scripts/install-test-deps.sh (scripts/test.sh does)")
	}
	return filepath.Dir(found[len(found)-1])
}

func postgresUser(t testing.TB) *syscall.Credential {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("tests run as root and PostgreSQL refuses root: %v (Debian's postgresql package creates the user)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	// The server must not outlive a test binary that crashes or times out.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: s.cred}
	cmd.Dir = s.dir
	return cmd
}

// run starts the server and waits until it takes a connection.
func (s *Server) run() error {
	logFile, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{"-D", s.dataDir(), "-p", strconv.Itoa(s.port),
		"-k", s.dir, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=50"}, s.settings...)
	cmd := s.command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logFile.Close(); close(exited) }()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("postgres on port %d exited: %s", s.port, s.logTail())
		default:
		}
		if s.ping() == nil {
			s.mu.Lock()
			s.cmd, s.exited = cmd, exited
			s.mu.Unlock()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("postgres on port %d did not answer within %v: %s", s.port, startTimeout, s.logTail())
}

func (s *Server) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// DSN is the connection string of the server's database "postgres".
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Stop shuts the server down (fast: clients are disconnected, what was
// committed stays) and waits for it to exit.
func (s *Server) Stop() {
	s.signal(syscall.SIGINT)
}

// Kill ends the server at once, as a crash; what was committed stays.
func (s *Server) Kill() {
	s.signal(syscall.SIGKILL)
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	<-exited
	if sig == syscall.SIGKILL {
		// A killed postmaster leaves its backends to notice; the next
		// start waits for them through its lock file.
		time.Sleep(100 * time.Millisecond)
	}
}

// Restart starts the stopped server again on the same port and data.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.run(); err != nil {
		s.t.Fatalf("cannot restart postgres: %v", err)
	}
}

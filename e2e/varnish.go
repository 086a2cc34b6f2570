package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// startVarnishd runs Debian's varnishd in the foreground on a reserved
// port until the test ends, with a working directory of its own and the
// arguments given (a VCL with -f, or a backend with -b), and returns its
// host:port and working directory (-n, where varnishncsa reads its log).
// The jail is off so that it runs as the test's user: that changes who
// the process runs as, not what it caches.
func startVarnishd(t *testing.T, args ...string) (addr, work string) {
	t.Helper()
	bin := testutil.NeedsProgram(t, "varnishd", "/usr/sbin/varnishd")
	addr = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	work = filepath.Join(t.TempDir(), "work")
	logs := &testutil.SyncBuffer{}
	cmd := exec.Command(bin, append([]string{"-F", "-j", "none", "-n", work, "-a", addr, "-s", "malloc,64m"}, args...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("varnishd output:\n%s", logs.String())
		}
	})
	testutil.Eventually(t, 20*time.Second, "varnishd listens", func() bool {
		select {
		case <-exited:
			t.Fatalf("varnishd exited at start: %v\n%s", werr, logs.String())
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr, work
}

// startStockVarnish runs varnishd with its built-in VCL in front of
// backend (host:port) and returns its host:port.
func startStockVarnish(t *testing.T, backend string) string {
	t.Helper()
	addr, _ := startVarnishd(t, "-b", backend)
	return addr
}

package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Ports handed to servers the tests start (emojicast, redis-server, nginx)
// must not be taken between the moment they are chosen and the moment the
// server binds them. A port the kernel picked for ":0" and that was closed
// again is free for anyone: the kernel hands it out again as the source
// port of an outgoing connection, and another test process (go test runs
// packages in parallel) may pick it too. So FreePort chooses below the
// kernel's ephemeral range, where the kernel never picks on its own, and
// reserves the port across processes with a lock file held until the test
// ends. It chooses from [10000, 20000): a Redis Cluster node also listens
// on its port + 10000 for the cluster bus, which then stays clear of both
// the ephemeral range and every other test's ports.

// reservedPorts is where the lock files live; every test process of the
// machine agrees on it.
var reservedPorts = filepath.Join(os.TempDir(), "emojicast-test-ports")

var (
	ephemeralOnce sync.Once
	ephemeralLow  = 32768
)

// ephemeralStart is the lowest port the kernel may choose as a source
// port or for ":0".
func ephemeralStart() int {
	ephemeralOnce.Do(func() {
		b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
		if err != nil {
			return
		}
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 2048 {
				ephemeralLow = n
			}
		}
	})
	return ephemeralLow
}

// FreePort returns a TCP port on 127.0.0.1 that is free, that the kernel
// will not hand out on its own, and that no other test, in this process or
// another, gets until t ends.
func FreePort(t testing.TB) int {
	t.Helper()
	return reservePort(t, "tcp")
}

// FreeUDPPort is FreePort for a UDP socket.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	return reservePort(t, "udp")
}

func reservePort(t testing.TB, network string) int {
	t.Helper()
	if err := os.MkdirAll(reservedPorts, 0o777); err != nil {
		t.Fatalf("cannot reserve a port: %v", err)
	}
	low, high := 10000, min(20000, ephemeralStart()-10000)
	for range 1000 {
		port := low + rand.IntN(high-low)
		f, ok := lockPort(port)
		if !ok {
			continue
		}
		if !bindable(network, port) {
			f.Close()
			continue
		}
		t.Cleanup(func() { f.Close() })
		return port
	}
	t.Fatalf("no free %s port in [%d, %d) after 1000 tries", network, low, high)
	return 0
}

// lockPort takes the machine-wide lock on port; closing the file, or the
// process's exit, releases it.
func lockPort(port int) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(reservedPorts, fmt.Sprint(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}

// bindable reports whether nothing outside the tests' reservations holds
// port (a server of the machine, a socket in TIME_WAIT is fine).
func bindable(network string, port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if network == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

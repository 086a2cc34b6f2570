package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestDrainDelay stops a real serve that has --drain-delay: during the
// delay /readyz is 503 while requests are still served; then the listener
// closes; and a request still under way then may take its time, since
// --shutdown-timeout counts from the end of the delay, not from the signal.
func TestDrainDelay(t *testing.T) {
	testutil.Long(t, "waits out a 3 s drain delay")
	// The request under way completes 4.25 s after the signal: cut if the
	// shutdown timeout counted from the signal (its time would be up when
	// the delay ends, at 3 s), answered if it counts from the end of the
	// delay (until 5.5 s). It starts during the delay, so the server's read
	// timeout (5 s from its connection) ends after that; over a second of
	// margin either way for a busy machine.
	const drainDelay, shutdownTimeout = 3 * time.Second, 2500 * time.Millisecond
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	base := "http://" + addr
	cmd := exec.Command(binary(t), "serve", "--listen", addr,
		"--drain-delay", drainDelay.String(), "--shutdown-timeout", shutdownTimeout.String())
	var logs testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitHealthy(t, base)

	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	status := func(method, path, body string) int {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testutil.Eventually(t, drainDelay/2, "/readyz turns 503 on SIGTERM", func() bool {
		return status("GET", "/readyz", "") == http.StatusServiceUnavailable
	})
	if got := status("GET", "/v1/emojis", ""); got != http.StatusOK {
		t.Fatalf("GET /v1/emojis during the drain delay: %d; want 200, requests are served until the listener closes", got)
	}
	if got := status("POST", "/v1/streams/drain/reactions", `{"emoji":"love","count":1,"user":"u1"}`); got != http.StatusAccepted {
		t.Fatalf("send during the drain delay: %d; want 202", got)
	}

	// A request whose headers are half sent during the delay: it is under
	// way through the delay and past the listener's close.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial during the drain delay (%v after the signal): %v", time.Since(signalled), err)
	}
	defer slow.Close()
	if _, err := slow.Write([]byte("GET /healthz HTTP/1.1\r\nHost: emojicast\r\n")); err != nil {
		t.Fatal(err)
	}

	testutil.Eventually(t, drainDelay+5*time.Second, "the listener closes after the drain delay", func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return true
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
		return false
	})
	closed := time.Since(signalled)
	if closed < drainDelay {
		t.Fatalf("the listener closed %v after SIGTERM; want at least --drain-delay %v", closed, drainDelay)
	}

	// Half the shutdown timeout after the drain delay, the request under
	// way completes and must still be answered.
	time.Sleep(time.Until(signalled.Add(drainDelay + shutdownTimeout/2)))
	if _, err := slow.Write([]byte("\r\n")); err != nil {
		t.Fatalf("the request under way was cut %v after the drain delay: %v; want --shutdown-timeout %v for it", time.Since(signalled)-drainDelay, err, shutdownTimeout)
	}
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(slow).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("the request under way got %q, %v; want HTTP/1.1 200 within --shutdown-timeout after the drain delay; logs:\n%s", line, err, logs.String())
	}

	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v; logs:\n%s", err, logs.String())
		}
	case <-time.After(drainDelay + shutdownTimeout + 10*time.Second):
		t.Fatalf("serve did not exit; logs:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "did not drain in time") {
		t.Fatalf("the server did not drain in time; logs:\n%s", logs.String())
	}
}

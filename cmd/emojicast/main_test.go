package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// binary builds emojicast once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "emojicast-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "emojicast")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// syncBuffer is a log sink the process writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode
}

// TestServeEndToEnd runs the README's start command and uses the service
// over HTTP: watch, send, poll until the taps show up, then SIGTERM.
func TestServeEndToEnd(t *testing.T) {
	port := testutil.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(binary(t), "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	// Whether the new stream counts as busy or quiet depends on whether it
	// was synced yet, so both intervals are set.
	cmd.Env = append(os.Environ(), "EMOJICAST_BUSY_NEXT_MS=1500", "EMOJICAST_QUIET_NEXT_MS=1500",
		"EMOJICAST_CORS_ORIGINS=https://viewer.example")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	testutil.Eventually(t, 10*time.Second, "serve answers /healthz", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	var w struct {
		Since  int64 `json:"since"`
		NextMS int64 `json:"next_ms"`
	}
	if code := getJSON(t, base+"/v1/streams/demo/watch?user=u1", &w); code != 200 {
		t.Fatalf("watch: %d", code)
	}
	if w.NextMS != 1500 {
		t.Fatalf("next_ms %d; the EMOJICAST_*_NEXT_MS variables were not applied", w.NextMS)
	}
	req, _ := http.NewRequest("GET", base+"/v1/emojis", nil)
	req.Header.Set("Origin", "https://viewer.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://viewer.example" {
		t.Fatalf("Access-Control-Allow-Origin %q; EMOJICAST_CORS_ORIGINS was not applied", got)
	}
	for u := range 3 {
		body := fmt.Sprintf(`{"emoji":"love","count":4,"user":"u%d"}`, u)
		resp, err := http.Post(base+"/v1/streams/demo/reactions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("send: %d", resp.StatusCode)
		}
	}
	total := int64(0)
	testutil.Eventually(t, 10*time.Second, "the 12 taps show up in a poll", func() bool {
		var pb struct {
			Buckets []struct {
				C map[string]int64 `json:"c"`
			} `json:"buckets"`
		}
		getJSON(t, fmt.Sprintf("%s/v1/streams/demo/reactions?since=%d", base, w.Since), &pb)
		total = 0
		for _, b := range pb.Buckets {
			total += b.C["love"]
		}
		return total == 12
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM; logs:\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("serve did not exit after SIGTERM; logs:\n%s", logs.String())
	}
	for _, want := range []string{"emojicast serving", "push final flush", "shutdown complete"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

func TestServeFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		code int
		out  string
	}{
		{[]string{"serve", "--help"}, "", 0, "EMOJICAST_LISTEN"},
		{[]string{"serve", "--no-such-flag"}, "", 2, "no-such-flag"},
		{[]string{"serve"}, "EMOJICAST_FLUSH_INTERVAL=soon", 2, "EMOJICAST_FLUSH_INTERVAL"},
		{[]string{"serve", "--emojis", "Bad=x"}, "", 1, "cannot parse emoji"},
		{[]string{"serve", "--token-secret", "short"}, "", 1, "16 bytes"},
		{[]string{"serve"}, "EMOJICAST_TRUSTED_PROXIES=10.0.0.0/99", 1, "--trusted-proxies"},
		{[]string{"serve", "--cors-origins", "https://example.com/path"}, "", 1, "--cors-origins"},
		{[]string{"frobnicate"}, "", 2, "unknown command"},
		{[]string{}, "", 2, "Commands:"},
	} {
		t.Run(strings.Join(tc.args, " ")+" "+tc.env, func(t *testing.T) {
			cmd := exec.Command(binary(t), tc.args...)
			if tc.env != "" {
				cmd.Env = append(os.Environ(), tc.env)
			}
			out, _ := cmd.CombinedOutput()
			if got := cmd.ProcessState.ExitCode(); got != tc.code {
				t.Fatalf("exit code %d; want %d; output:\n%s", got, tc.code, out)
			}
			if !strings.Contains(string(out), tc.out) {
				t.Fatalf("output lacks %q:\n%s", tc.out, out)
			}
		})
	}
}

package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/emojicast/emojicast/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBinaries()
	if release.dir != "" {
		os.RemoveAll(release.dir)
	}
	os.Exit(code)
}

// binary builds emojicast once per test run. The tests here run the
// command line itself; the end-to-end tests are in e2e.
func binary(t *testing.T) string {
	t.Helper()
	return testutil.Binary(t, "github.com/emojicast/emojicast/cmd/emojicast", false)
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
		{[]string{"push"}, "", 1, "needs --redis"},
		{[]string{"pull", "--help"}, "", 0, "--push-url"},
		{[]string{"pull", "--redis", "127.0.0.1:1", "--flush-interval", "1s"}, "", 2, "flush-interval"},
		{[]string{"push", "--redis", "127.0.0.1:1", "--busy-next-ms", "5"}, "", 2, "busy-next-ms"},
		{[]string{"serve", "--region-redis", "redis://127.0.0.1:1"}, "", 1, "--region-redis needs --redis"},
		{[]string{"push"}, "EMOJICAST_REDIS=redis://h:1/notadb", 1, "cannot parse redis URL"},
		{[]string{"serve"}, "EMOJICAST_REDIS_MIN_REPLICAS=1", 1, "--redis-min-replicas 1 needs --redis"},
		{[]string{"pull", "--redis", "127.0.0.1:1", "--redis-min-replicas", "-1"}, "", 1, "must not be negative"},
		{[]string{"serve"}, "EMOJICAST_TRUSTED_PROXIES=10.0.0.0/99", 1, "--trusted-proxies"},
		{[]string{"serve", "--cors-origins", "https://example.com/path"}, "", 1, "--cors-origins"},
		{[]string{"serve"}, "EMOJICAST_TEST_CLOCK_OFFSET=soon", 1, "EMOJICAST_TEST_CLOCK_OFFSET"},
		{[]string{"serve", "--max-next-ms", "2000", "--quiet-max-next-ms", "15000"}, "", 1, "next_ms bounds"},
		{[]string{"frobnicate"}, "", 2, "unknown command"},
		{[]string{}, "", 2, "Commands:"},
		{[]string{"watch"}, "", 2, "want 1 arguments"},
		{[]string{"watch", "--mode", "fancy", "s"}, "", 2, "invalid --mode"},
		{[]string{"watch", "--server", "localhost:8080", "s"}, "", 2, "want a URL"},
		{[]string{"watch", "--help"}, "", 0, "EMOJICAST_SERVER"},
		{[]string{"send", "s"}, "", 2, "want 2 arguments"},
		{[]string{"send", "s", "love", "-n", "0"}, "", 2, "want 1 to 10000"},
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

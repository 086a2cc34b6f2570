package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestJSClient runs the JavaScript client's own tests (clients/js/test,
// Node's test runner) against this emojicast binary: delivery exactly once
// across a 30 s network cut, backoff without a retry storm, sampling
// within 5% of real taps, data saver within the server's bounds. It fails
// when they fail, so go test ./... runs them.
func TestJSClient(t *testing.T) {
	t.Parallel()
	node := testutil.NeedsProgram(t, "node")
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`^v(\d+)\.`).FindSubmatch(out); m == nil {
		t.Fatalf("node --version says %q", out)
	} else if major, _ := strconv.Atoi(string(m[1])); major < 20 {
		t.Fatalf("node %s is too old: the client's package needs Node.js 20 or later", out)
	}
	dir := filepath.Join("..", "clients", "js")
	files, err := filepath.Glob(filepath.Join(dir, "test", "*.test.js"))
	if err != nil || len(files) < 3 {
		t.Fatalf("found %d test files of the JavaScript client (%v)", len(files), err)
	}
	// A test that hangs is named by the runner before the whole run is killed.
	args := []string{"--test", "--test-concurrency=" + strconv.Itoa(len(files)), "--test-timeout=200000", "--test-reporter=spec"}
	for _, f := range files {
		args = append(args, filepath.Join("test", filepath.Base(f)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "EMOJICAST_BIN="+binary(t), "NO_COLOR=1")
	report, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %v: %v\n%s", args, err, report)
	}
	if testing.Verbose() {
		t.Logf("node %v:\n%s", args, report)
	}
}

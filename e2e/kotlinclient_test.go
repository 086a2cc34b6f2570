package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestKotlinClient builds the Kotlin client (clients/kotlin, build.sh) and
// runs its JUnit 5 tests against this emojicast binary: the conformance
// rows (a restricted emoji set in both bodies, a retraction, the gap),
// every second once across a 30 s network cut with backoff within its
// bounds, a lost send's answer retried with its id and counted once, token
// renewal, sampling at 1/10 or less within 5% of real taps, data saver's
// interval, cancellation that leaves no request running, and the bytes a
// viewer of a busy stream costs at the origin and through the shipped edge
// (deploy/nginx.conf, over HTTPS and HTTP/2), which this test starts for
// them. It fails when they fail; it needs Java 17, Debian's libokhttp-java
// and junit5, and npm (for the Kotlin compiler), which
// scripts/install-test-deps.sh installs. About a minute and a half.
func TestKotlinClient(t *testing.T) {
	t.Parallel()
	testutil.Long(t, "the Kotlin client's build and tests take about 90 s")
	java := testutil.NeedsProgram(t, "java")
	testutil.NeedsProgram(t, "npm")
	if out, err := exec.Command(java, "-version").CombinedOutput(); err != nil {
		t.Fatalf("java -version: %v\n%s", err, out)
	}
	nginxPath(t)
	tlsPort := testutil.FreePort(t)
	origin := startProc(t, "serve", "serve", "--log-level", "warn", "--public-url", fmt.Sprintf("https://127.0.0.1:%d", tlsPort))
	e := startEdgeTLS(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)}, tlsPort)
	dir := filepath.Join("..", "clients", "kotlin")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "build.sh", "test")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "EMOJICAST_BIN="+binary(t), "NO_COLOR=1",
		"EMOJICAST_EDGE_URL="+e.tlsURL, "EMOJICAST_EDGE_CA="+filepath.Join(e.dir, "cert.pem"), "EMOJICAST_EDGE_ORIGIN="+origin.url)
	start := time.Now()
	report, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh test: %v\n%s", err, report)
	}
	if testing.Verbose() {
		t.Logf("build.sh test, %s:\n%s", time.Since(start).Round(time.Second), report)
	}
}

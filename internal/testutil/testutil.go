// Package testutil holds helpers shared by emojicast's tests: waiting for a
// condition with a deadline, free ports, raw HTTP round trips, and
// allocation checks that know about the race detector.
package testutil

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond every few milliseconds until it returns true or
// timeout passes, then fails the test with msg.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// AllocPinSuffix ends the name of every test that pins a path at zero
// allocations. scripts/test.sh runs the tests with this suffix in a pass
// without the race detector, the only pass where such a pin can fail.
const AllocPinSuffix = "DoesNotAllocate"

// NoAllocs fails the test if f allocates. Under the race detector it skips
// the test instead: the detector makes sync.Pool drop items, so pooled
// paths allocate under it. A test that calls it must be named
// ...DoesNotAllocate, or the non-race pass would never run it.
func NoAllocs(t testing.TB, what string, f func()) {
	t.Helper()
	if top, _, _ := strings.Cut(t.Name(), "/"); !strings.HasSuffix(top, AllocPinSuffix) {
		t.Fatalf("%s pins allocations but is not named ...%s: the non-race pass of scripts/test.sh would not run it", t.Name(), AllocPinSuffix)
	}
	if RaceEnabled {
		t.Skip("allocation pins run in the pass without the race detector")
	}
	if allocs := testing.AllocsPerRun(1000, f); allocs != 0 {
		t.Fatalf("%s allocates %.1f times per call; want 0", what, allocs)
	}
}

// Long skips the test under go test -short: it spends many seconds of wall
// clock by design (a soak, a flood, slow clients), and -short is the quick
// loop a developer iterates in. The README's test command runs it.
func Long(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: " + why)
	}
}

// NeedsProgram returns the path of an outside program a test runs
// (redis-server, chromium, nginx), trying each name in turn. Under
// go test -short the test is skipped instead, so a developer can iterate
// without them; otherwise a missing program fails the test, since the
// README's test command installs every one.
func NeedsProgram(t testing.TB, names ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: needs %s", names[0])
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("%s is not installed: run scripts/install-test-deps.sh (scripts/test.sh does)", names[0])
	return ""
}

// ChiSquare2x2 is Pearson's chi-square statistic of the 2x2 table
// [[a, b], [c, d]], for checking that two groups had the same chance. It
// is +Inf when a row or column is empty.
func ChiSquare2x2(a, b, c, d int) float64 {
	n := float64(a + b + c + d)
	num := float64(a*d-b*c) * float64(a*d-b*c) * n
	den := float64(a+b) * float64(c+d) * float64(a+c) * float64(b+d)
	if den == 0 {
		return math.Inf(1)
	}
	return num / den
}

// ChiSquareCritical is the chi-square value with one degree of freedom that
// a fair process exceeds once in a thousand runs.
const ChiSquareCritical = 10.83

// RawTransport leaves Accept-Encoding and bodies as they are: Go's default
// transport would ask for gzip on its own and unzip behind the test's back.
var RawTransport = &http.Transport{DisableCompression: true}

// RoundTrip makes one request through rt and reads the whole answer;
// header is name, value, name, value... It fails the test if the request
// cannot be made or answered.
func RoundTrip(t testing.TB, rt http.RoundTripper, method, url, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	return resp, b
}

// SyncBuffer is a bytes.Buffer that a process's output and the test may
// use at once: exec writes from its own goroutine.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

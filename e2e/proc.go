package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// raceBuilt names the tests whose processes are built with the race
// detector: the fleets under faults, where push, pull and the store race
// each other the most. The soak (TestFaultSoak) runs in a step of its own.
var raceBuilt = map[string]bool{
	"TestFleetOnRedis":                       true,
	"TestFleetOnRedisCluster":                true,
	"TestFleetSurvivesRedisOutage":           true,
	"TestPushSIGTERMLosesNothing":            true,
	"TestFleetCommentsOnRedis":               true,
	"TestFleetModerationOnRedis":             true,
	"TestReplayAfterTheWindowOnRedisCluster": true,
	"TestFaultSoak":                          true,
}

// binary is the emojicast executable for t's processes: race-built for
// the tests in raceBuilt. Under go test -short it skips t: the quick loop
// is the packages' own tests.
func binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: an end-to-end test")
	}
	top, _, _ := strings.Cut(t.Name(), "/")
	return testutil.Binary(t, "github.com/emojicast/emojicast/cmd/emojicast", raceBuilt[top])
}

// fleetSealDelay leaves race-built processes on a loaded machine time to
// flush a second before it is sealed, so counts stay in their own second.
const fleetSealDelay = "1s"

// exact keeps a pull process from sampling: these tests compare what
// viewers see with the taps sent, so every tap must count once, while one
// viewer of thousands of taps a second would otherwise get a sample below 1
// and counts weighted by its inverse (control_fleet_test.go tests that).
var exact = []string{"--target-sends", "1000000000"}

// loadSender lets one test address send like a crowd: the per-user and
// per-address limits are not what the fleet tests are about.
var loadSender = []string{"--user-rate", "1000", "--user-burst", "1000", "--ip-send-rate", "1000000", "--ip-send-burst", "1000000",
	"--ip-weight-rate", "1000000", "--ip-weight-burst", "1000000", "--ip-comment-rate", "1000000", "--ip-comment-burst", "1000000"}

// fleetClient bounds every request of the fleet tests, so a hung process
// fails the test instead of hanging it.
var fleetClient = &http.Client{Timeout: 5 * time.Second}

// proc is one emojicast process started by the test.
type proc struct {
	t      *testing.T
	name   string
	url    string
	cmd    *exec.Cmd
	logs   *testutil.SyncBuffer
	exited chan struct{}
	err    error // set before exited closes
}

// startProc runs emojicast with args and a free --listen address, and waits
// until it answers /healthz.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startProcOn(t, name, testutil.FreePort(t), nil, args...)
}

// startProcOn is startProc on a given port (a process restarted where its
// clients know it) with extra environment variables.
func startProcOn(t *testing.T, name string, port int, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, url: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(binary(t), append(args, "--listen", fmt.Sprintf("127.0.0.1:%d", port))...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		if p.alive() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("logs of %s:\n%s", p.name, p.logs.String())
		}
	})
	testutil.Eventually(t, 20*time.Second, name+" answers /healthz", func() bool {
		if !p.alive() {
			t.Fatalf("%s exited at start: %v\n%s", name, p.err, p.logs.String())
		}
		return p.status("/healthz") == http.StatusOK
	})
	return p
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// status GETs path and returns the status code, 0 if unreachable.
func (p *proc) status(path string) int {
	code, _ := p.get(path)
	return code
}

func (p *proc) get(path string) (int, string) {
	resp, err := fleetClient.Get(p.url + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *proc) waitReady() {
	p.t.Helper()
	testutil.Eventually(p.t, 20*time.Second, p.name+" reports ready", func() bool { return p.status("/readyz") == http.StatusOK })
}

// metric returns the value of a metric without labels from /metrics.
func (p *proc) metric(name string) float64 {
	_, body := p.get("/metrics")
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}

// terminate sends SIGTERM and waits for a clean exit.
func (p *proc) terminate() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			p.t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.name, p.err, p.logs.String())
		}
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not exit after SIGTERM:\n%s", p.name, p.logs.String())
	}
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

// startServe runs 'emojicast serve' on a free port with the given extra
// environment and returns its base URL once it answers.
func startServe(t *testing.T, env ...string) string {
	t.Helper()
	port := testutil.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(binary(t), "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Env = append(os.Environ(), env...)
	startCommand(t, "serve", cmd)
	waitHealthy(t, base)
	return base
}

// startCommand starts cmd, which dies with the test process, and kills it
// when the test ends, showing its output if the test failed.
func startCommand(t *testing.T, name string, cmd *exec.Cmd) {
	t.Helper()
	var logs testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, logs.String())
		}
	})
}

// waitHealthy waits until the process at base answers /healthz.
func waitHealthy(t *testing.T, base string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "serve answers /healthz", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

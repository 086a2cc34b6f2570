package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// startEmojicast runs 'emojicast serve' on a free loopback port and returns
// its address once it is ready. Quiet streams are polled every second, so
// the short smoke runs do not wait out the default five; the per-address
// limits are lifted as benchmarks/README.md lifts them, since every
// simulated viewer comes from loopback.
func startEmojicast(t *testing.T, bin string) string {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	cmd := exec.Command(bin, "serve", "--listen", addr, "--quiet-next-ms", "1000", "--quiet-max-next-ms", "1000", "--log-level", "warn",
		"--max-conns-per-ip", "20000", "--ip-send-rate", "1000000", "--ip-send-burst", "1000000", "--ip-weight-rate", "1000000", "--ip-weight-burst", "1000000", "--ip-comment-rate", "1000000", "--ip-comment-burst", "1000000",
		"--ip-watch-rate", "1000000", "--ip-watch-burst", "1000000",
		"--ip-poll-rate", "1000000", "--ip-poll-burst", "1000000", "--ip-viewers", "1000000")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("emojicast output:\n%s", logs.String())
		}
	})
	testutil.Eventually(t, 30*time.Second, "emojicast ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return addr
}

// runLoadgen runs the generator and decodes its JSON report.
func runLoadgen(t *testing.T, bin string, args ...string) report {
	t.Helper()
	cmd := exec.Command(bin, append(args, "-json")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("loadgen %v: %v\n%s", args, err, stderr.String())
	}
	var r report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("loadgen report: %v\n%s", err, out)
	}
	return r
}

// TestLoadgenSmoke runs the generator for a few seconds with a handful of
// viewers and senders against a real emojicast process, in both connection
// modes, and checks that what it reports is what it measured: every tap
// accepted was seen, bytes include headers, and the ceiling stage served
// the same answer from both servers.
func TestLoadgenSmoke(t *testing.T) {
	testutil.Long(t, "runs every load stage against a real process")
	// Built without the race detector: the smoke checks what the reports
	// say, and the generator's own tests race its parts.
	emojicast := testutil.Binary(t, "github.com/emojicast/emojicast/cmd/emojicast", false)
	loadgen := testutil.Binary(t, "github.com/emojicast/emojicast/benchmarks/loadgen", false)
	addr := startEmojicast(t, emojicast)
	common := []string{"-addr", addr, "-viewers", "4", "-senders", "3", "-send-every", "200ms",
		"-warmup", "1500ms", "-duration", "2s", "-drain", "15s"}

	r := runLoadgen(t, loadgen, append(common, "-ceiling", "2s", "-rounds", "1", "-conns", "2")...)
	checkClients(t, "keepalive", r.Clients)
	k := r.Ceiling
	if k == nil {
		t.Fatal("no ceiling report")
	}
	for name, tr := range map[string]targetReport{"emojicast": k.Emojicast, "constant": k.Constant} {
		if tr.Median <= 0 || tr.Errors != 0 || tr.ResponseBytes <= 0 || len(tr.PollsPerSec) != 1 {
			t.Errorf("ceiling %s: %+v; want polls, no errors, bytes counted", name, tr)
		}
	}
	if k.Ratio <= 0 || len(k.RoundRatios) != 1 {
		t.Errorf("ceiling ratio %v, rounds %v", k.Ratio, k.RoundRatios)
	}
	// The constant server repeats one real answer: its size is within the
	// spread of the answers emojicast gave in the same stage.
	if d := k.Constant.ResponseBytes - k.Emojicast.ResponseBytes; d < -60 || d > 60 {
		t.Errorf("constant answer %.0f B vs emojicast's %.0f B: not the same answer", k.Constant.ResponseBytes, k.Emojicast.ResponseBytes)
	}

	r = runLoadgen(t, loadgen, append(common, "-mode", "newconn", "-ceiling", "0")...)
	checkClients(t, "newconn", r.Clients)
	if r.Ceiling != nil {
		t.Error("-ceiling 0 still ran the ceiling stage")
	}

	r = runLoadgen(t, loadgen, append(common, "-body", "compact", "-ceiling", "0")...)
	checkClients(t, "compact", r.Clients)
	if r.Body != "compact" {
		t.Errorf("report says body %q; want compact", r.Body)
	}

	r = runLoadgen(t, loadgen, "-addr", addr, "-spread", "20", "-spread-phase", "1s", "-spread-idle")
	checkSpread(t, r.Spread)
}

// checkSpread checks a short idle spread run: both servers kept the pace
// their answers set, their memory was read, and the reaction sent after
// the rounds reached every viewer within its interval and the publication.
func checkSpread(t *testing.T, s *spreadReport) {
	t.Helper()
	if s == nil {
		t.Fatal("no spread report")
	}
	if s.NextMS != 1000 || !s.Idle || s.Viewers != 20 {
		t.Errorf("spread: next_ms %d, idle %v, %d viewers; want 1000 (--quiet-next-ms), true, 20", s.NextMS, s.Idle, s.Viewers)
	}
	for name, tg := range map[string]spreadTarget{"emojicast": s.Emojicast, "constant": s.Constant} {
		if len(tg.CPUPerViewerUS) != 2 || len(tg.RSSPerViewer) != 2 || tg.Errors != 0 || tg.PID == 0 || tg.BaseRSS <= 0 {
			t.Errorf("spread %s: %+v; want 2 phases, no errors, its process read", name, tg)
		}
		// Every viewer polls once a second, +-10%.
		if tg.PollsPerViewerSec < 0.6 || tg.PollsPerViewerSec > 1.3 {
			t.Errorf("spread %s: %.2f polls per viewer-second; want about 1", name, tg.PollsPerViewerSec)
		}
	}
	r := s.Reach
	if r == nil {
		t.Fatal("no reach report")
	}
	// Published within about 1.6 s of the send, then each viewer's next poll.
	if r.Error != "" || r.Saw != 20 || r.HalfMS <= 0 || r.AllMS < r.HalfMS || r.AllMS > 4000 || r.NextMS != 1000 {
		t.Errorf("reach: %+v; want all 20 viewers within 4 s, half first", r)
	}
}

func checkClients(t *testing.T, mode string, c *clientsReport) {
	t.Helper()
	if c.Polls == 0 || c.PollErrors != 0 || c.Gaps != 0 {
		t.Errorf("%s: %d polls, %d errors, %d gaps; want polls and no errors", mode, c.Polls, c.PollErrors, c.Gaps)
	}
	if c.TapsAccepted == 0 || c.SendErrors != 0 {
		t.Errorf("%s: %d taps accepted, %d send errors", mode, c.TapsAccepted, c.SendErrors)
	}
	if c.Delivered != 1 || c.WorstViewer != 1 || c.Counted != c.TapsAccepted || c.Mismatches != 0 || c.UnmatchedCounts != 0 {
		t.Errorf("%s: delivered %v (worst viewer %v), %d counted of %d, %d mismatches, %d unmatched; want all of it",
			mode, c.Delivered, c.WorstViewer, c.Counted, c.TapsAccepted, c.Mismatches, c.UnmatchedCounts)
	}
	// Headers are on the wire too: an answer is well over its body.
	if c.ResponseBytes < c.ResponseBodyBytes+70 || c.RequestBytes < 50 {
		t.Errorf("%s: %.0f B per answer for %.0f B of body, %.0f B per request: headers not counted",
			mode, c.ResponseBytes, c.ResponseBodyBytes, c.RequestBytes)
	}
	// A tap waits for its second to end and be sealed (500 ms), then for a
	// poll; a single viewer at most next_ms more.
	if c.FreshFirstP50MS <= 0 || c.FreshFirstP99MS > 10_000 || c.FreshViewerP50MS < c.FreshFirstP50MS {
		t.Errorf("%s: freshness first p50 %v p99 %v, one viewer p50 %v", mode, c.FreshFirstP50MS, c.FreshFirstP99MS, c.FreshViewerP50MS)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBinaries()
	os.Exit(code)
}

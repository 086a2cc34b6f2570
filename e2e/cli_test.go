package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestServeEndToEnd runs the README's start command and uses the service
// over HTTP: watch, send, poll until the taps show up, then SIGTERM.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	port := testutil.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(binary(t), "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	// Whether the new stream counts as busy or quiet depends on whether it
	// was synced yet, so both intervals are set.
	cmd.Env = append(os.Environ(), "EMOJICAST_BUSY_NEXT_MS=1500", "EMOJICAST_QUIET_NEXT_MS=1500",
		"EMOJICAST_CORS_ORIGINS=https://viewer.example")
	var logs testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	waitHealthy(t, base)

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
		var pb pollAnswer
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

// TestServeShortMaxNextMS starts serve with --max-next-ms lowered
// below the quiet streams' longest interval: that default gives way, so
// the process serves and a quiet stream's viewers hear at most the cap.
func TestServeShortMaxNextMS(t *testing.T) {
	t.Parallel()
	base := startServe(t, "EMOJICAST_MAX_NEXT_MS=2000", "EMOJICAST_QUIET_NEXT_MS=1000")
	var pb pollAnswer
	if code := getJSON(t, base+"/v1/streams/quiet/reactions", &pb); code != http.StatusOK {
		t.Fatalf("poll: status %d", code)
	}
	if pb.NextMS <= 0 || pb.NextMS > 2000 {
		t.Fatalf("a quiet stream's next_ms is %d; want 1 to 2000", pb.NextMS)
	}
}

// TestWatchSendAndComment runs the terminal clients against a real serve:
// what 'send' and 'comment' send, 'watch' prints, one line per second or
// as a chart, and Ctrl-C ends watch cleanly.
func TestWatchSendAndComment(t *testing.T) {
	t.Parallel()
	base := startServe(t, "EMOJICAST_BUSY_NEXT_MS=300", "EMOJICAST_QUIET_NEXT_MS=300", "EMOJICAST_MIN_NEXT_MS=300")
	type watcher struct {
		cmd *exec.Cmd
		out testutil.SyncBuffer
	}
	var watchers []*watcher
	for _, mode := range []string{"lines", "chart"} {
		w := &watcher{cmd: exec.Command(binary(t), "watch", "--server", base, "--mode", mode, "cli-test")}
		w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.out
		if err := w.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.cmd.Process.Kill() })
		watchers = append(watchers, w)
	}
	// Wait for both watchers to be polling: the chart draws its first frame.
	testutil.Eventually(t, 15*time.Second, "the chart is drawn", func() bool {
		return strings.Contains(watchers[1].out.String(), "cli-test ·")
	})
	start := time.Now().Unix() - 1
	for _, args := range [][]string{{"love", "-n", "5"}, {"🔥", "-n", "20"}} {
		out, err := exec.Command(binary(t), append([]string{"send", "--server", base, "cli-test"}, args...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "sent "+args[2]+" of "+args[2]+" taps") {
			t.Fatalf("send %v: %v: %s", args, err, out)
		}
	}
	out, err := exec.Command(binary(t), "send", "--server", base, "cli-test", "nope").CombinedOutput()
	if code := testutil.ExitCode(err); code != 1 || !strings.Contains(string(out), "invalid_emoji") {
		t.Fatalf("send of an unknown emoji: exit %d: %s; want 1 and invalid_emoji", code, out)
	}
	out, err = exec.Command(binary(t), "comment", "--server", base, "--user", "fan", "cli-test", "what", "a", "goal!").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "accepted") {
		t.Fatalf("comment: %v: %s", err, out)
	}
	out, err = exec.Command(binary(t), "comment", "--server", base, "cli-test", "\u202eevil").CombinedOutput()
	if code := testutil.ExitCode(err); code != 1 || !strings.Contains(string(out), "invalid_text") {
		t.Fatalf("comment with a bidi override: exit %d: %s; want 1 and invalid_text", code, out)
	}
	testutil.Eventually(t, 20*time.Second, "watch prints the taps and the comment", func() bool {
		lines := watchers[0].out.String()
		return strings.Contains(lines, "❤️ love=5") && strings.Contains(lines, "🔥 fire=20 (burst)") &&
			strings.Contains(lines, "💬 fan: what a goal!")
	})
	testutil.Eventually(t, 10*time.Second, "the chart shows all three", func() bool {
		chart := watchers[1].out.String()
		return strings.Contains(chart, "████ 20 🎉") && strings.Contains(chart, "\x1b[2K❤️ love") &&
			strings.Contains(chart, "\x1b[2K💬 fan: what a goal!")
	})
	// watch --from replays the same seconds from history.
	re := &watcher{cmd: exec.Command(binary(t), "watch", "--server", base, "--mode", "lines", "--speed", "20",
		"--from", strconv.FormatInt(start, 10), "cli-test")}
	re.cmd.Stdout, re.cmd.Stderr = &re.out, &re.out
	if err := re.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = re.cmd.Process.Kill() })
	watchers = append(watchers, re)
	testutil.Eventually(t, 20*time.Second, "watch --from replays the taps and the comment", func() bool {
		lines := re.out.String()
		return strings.Contains(lines, "❤️ love=5") && strings.Contains(lines, "🔥 fire=20 (burst)") &&
			strings.Contains(lines, "💬 fan: what a goal!")
	})
	for _, w := range watchers {
		if err := w.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if err := w.cmd.Wait(); err != nil {
			t.Fatalf("watch exited with %v after Ctrl-C; output:\n%s", err, w.out.String())
		}
	}
}

// TestWatchDoesNotObeyAHostileServer: whatever answers as the service,
// `emojicast watch` prints its emoji ids, glyphs, users and comments with
// no terminal escape, bell or bidirectional override left in them.
func TestWatchDoesNotObeyAHostileServer(t *testing.T) {
	t.Parallel()
	const evil = "\x1b]0;pwned\x07\x1b[2J\u202e\u2066"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		id, _ := json.Marshal("x" + evil)
		if strings.HasSuffix(r.URL.Path, "/watch") {
			base := "http://" + r.Host
			fmt.Fprintf(w, `{"stream":"s","user":"u","pull":"%s/v1/streams/s/reactions","push":"%s/v1/streams/s/reactions",`+
				`"token":"","since":100,"next_ms":200,"sample":1,"viewers":1,"emojis":[{"id":%s,"glyph":%s}]}`, base, base, id, id)
			return
		}
		fmt.Fprintf(w, `{"now":101,"next_ms":200,"sample":1,"viewers":1,"buckets":[{"t":101,"c":{%s:3},"m":[{"u":%s,"x":%s}]}]}`, id, id, id)
	}))
	defer srv.Close()
	var out testutil.SyncBuffer
	cmd := exec.Command(binary(t), "watch", "--server", srv.URL, "--mode", "lines", "s")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	testutil.Eventually(t, 15*time.Second, "watch prints the hostile comment", func() bool {
		return strings.Contains(out.String(), "💬")
	})
	if got := out.String(); strings.ContainsAny(got, "\x1b\x07\u202e\u2066") {
		t.Fatalf("watch printed a terminal escape or bidi control from the server:\n%q", got)
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestPrometheusScrapesEmojicast runs a real Prometheus with the rules of
// deploy/prometheus against a running emojicast: it scrapes the service's
// series, loads every rule without error, and evaluates the recording
// rules into series of their own.
func TestPrometheusScrapesEmojicast(t *testing.T) {
	t.Parallel()
	bin := testutil.NeedsProgram(t, "prometheus")
	rulesFile, err := filepath.Abs("../deploy/prometheus/emojicast.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	svc := startProc(t, "serve", "serve", "--admin-token", fleetAdminToken, "--log-level", "warn")
	svc.waitReady()
	postJSON(t, svc, "/v1/streams/demo/reactions", `{"emoji":"love","user":"u1"}`)
	svc.get("/v1/streams/demo/reactions")

	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: emojicast
    static_configs:
      - targets: [%q]
`, rulesFile, strings.TrimPrefix(svc.url, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePort(t)
	prom := exec.Command(bin, "--config.file", filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path", filepath.Join(dir, "data"), "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", port))
	logs := &testutil.SyncBuffer{}
	prom.Stdout, prom.Stderr = logs, logs
	prom.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = prom.Process.Signal(syscall.SIGTERM)
		_ = prom.Wait()
		if t.Failed() {
			t.Logf("prometheus logs:\n%s", logs.String())
		}
	})
	api := fmt.Sprintf("http://127.0.0.1:%d/api/v1/", port)
	testutil.Eventually(t, 60*time.Second, "prometheus is ready", func() bool {
		resp, err := fleetClient.Get(fmt.Sprintf("http://127.0.0.1:%d/-/ready", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// query returns how many series a PromQL query finds now.
	query := func(q string) int {
		var r struct {
			Status string
			Data   struct{ Result []json.RawMessage }
		}
		if code := getJSON(t, api+"query?query="+url.QueryEscape(q), &r); code != http.StatusOK {
			return 0
		}
		return len(r.Data.Result)
	}
	for _, q := range []string{
		`up{job="emojicast"} == 1`,
		`emojicast_http_requests_total{route="reactions"}`,
		`emojicast_push_backlog_deltas`,
		`emojicast_push_stores_unreachable == 0`,
		`emojicast_pull_publish_lag_seconds < 5`,
		`emojicast_pull_sample_divisor_max`,
		`emojicast_pull_sample_divisor_cap > 1`,
		`emojicast_moderation_last_refresh_timestamp_seconds > 0`,
		`emojicast:http_requests:rate1m`,
		`emojicast:poll_errors:ratio_rate5m`,
	} {
		testutil.Eventually(t, 60*time.Second, "prometheus finds "+q, func() bool {
			// Keep the service busy so rates have something to show.
			postJSON(t, svc, "/v1/streams/demo/reactions", `{"emoji":"love","user":"u1"}`)
			return query(q) > 0
		})
	}

	// Every rule evaluated without error; a group evaluates first at its
	// interval (15 s for the recording rules), so wait for all of them.
	type ruleHealth struct{ Name, Health, LastError string }
	var rules []ruleHealth
	testutil.Eventually(t, 60*time.Second, "prometheus evaluated every rule", func() bool {
		var rs struct {
			Data struct {
				Groups []struct{ Rules []ruleHealth }
			}
		}
		if code := getJSON(t, api+"rules", &rs); code != http.StatusOK {
			t.Fatalf("GET rules: %d", code)
		}
		rules = rules[:0]
		for _, g := range rs.Data.Groups {
			rules = append(rules, g.Rules...)
		}
		for _, r := range rules {
			if r.Health == "err" {
				t.Fatalf("rule %s: %s", r.Name, r.LastError)
			}
			if r.Health != "ok" {
				return false
			}
		}
		return true
	})
	if len(rules) < 15 {
		t.Fatalf("prometheus loaded %d rules; want every rule of %s", len(rules), rulesFile)
	}
}

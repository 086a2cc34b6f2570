// Package prometheus holds the tests of emojicast's Prometheus rules and
// Grafana dashboard (the files beside this one): promtool checks and unit
// tests the rules, and every query of the rules and the dashboard must name
// only metrics the service exports or the rules record.
package prometheus

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestRulesPassPromtool: the rules are valid and their unit tests (the
// alerts fire on the series that should fire them, and only then) pass.
func TestRulesPassPromtool(t *testing.T) {
	bin := testutil.NeedsProgram(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "emojicast.rules.yml"},
		{"test", "rules", "emojicast.rules.test.yml"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// exported returns the metric names the Go sources of the repository
// register.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	name := regexp.MustCompile(`Name:\s+"(emojicast_[a-z0-9_]+)"`)
	out := map[string]bool{}
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "../.." {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range name.FindAllSubmatch(b, -1) {
			out[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("found only %d exported metrics in the sources: %v", len(out), out)
	}
	return out
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var metricToken = regexp.MustCompile(`emojicast[_:][a-zA-Z0-9_:]*`)

// checkQuery returns what is wrong with a query: it must name at least
// one metric, and each one it names must be exported (histograms by their
// _bucket, _sum and _count series) or recorded.
func checkQuery(where, expr string, exported, recorded map[string]bool) (problems []string) {
	names := metricToken.FindAllString(expr, -1)
	if len(names) == 0 {
		problems = append(problems, fmt.Sprintf("%s: query %q names no emojicast metric", where, expr))
	}
	for _, n := range names {
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suffix); ok && exported[b] {
				base = b
			}
		}
		if !exported[base] && !recorded[n] {
			problems = append(problems, fmt.Sprintf("%s: query names %s, which the service neither exports nor the rules record", where, n))
		}
	}
	return problems
}

// TestEveryQueryNamesAnExportedMetric checks the rules and the dashboard.
func TestEveryQueryNamesAnExportedMetric(t *testing.T) {
	exp := exported(t)
	b, err := os.ReadFile("emojicast.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	var alerts, problems []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			if r.Alert != "" {
				alerts = append(alerts, r.Alert)
			}
		}
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			problems = append(problems, checkQuery("rule "+r.Record+r.Alert, r.Expr, exp, recorded)...)
		}
	}
	for _, want := range []string{"EmojicastStoreUnreachable", "EmojicastPushBacklogGrowing", "EmojicastPushDropping",
		"EmojicastPublishLag", "EmojicastPollErrors", "EmojicastSendsShed", "EmojicastCommentFilterFailing", "EmojicastSamplingAtCap"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("the rules lack alert %s", want)
		}
	}

	b, err = os.ReadFile("emojicast-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	if len(dash.Panels) < 10 {
		t.Fatalf("the dashboard has %d panels; want the fleet's main figures", len(dash.Panels))
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			problems = append(problems, checkQuery("panel "+p.Title, q.Expr, exp, recorded)...)
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestQueryCheckCatchesUnknownMetrics: the check above would notice a
// renamed metric.
func TestQueryCheckCatchesUnknownMetrics(t *testing.T) {
	exp := map[string]bool{"emojicast_http_requests_total": true, "emojicast_push_flush_duration_seconds": true}
	for expr, bad := range map[string]bool{
		"rate(emojicast_no_such_metric_total[1m])":               true,
		"sum(rate(emojicast_http_requests_total[1m]))":           false,
		"rate(emojicast_push_flush_duration_seconds_bucket[5m])": false,
		"emojicast:not_recorded":                                 true,
		"up":                                                     true,
	} {
		if got := len(checkQuery("probe", expr, exp, nil)) > 0; got != bad {
			t.Errorf("checkQuery(%q) found a problem: %v; want %v", expr, got, bad)
		}
	}
}

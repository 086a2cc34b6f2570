package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The recorded runs (benchmarks/README.md, "A fleet behind the edge"):
// the calibration the model takes its units from, and the scaled runs it
// must reproduce.
const (
	calibrationRun  = "testdata/calibration-2.json"
	calibrationRun4 = "testdata/calibration-4.json"
	scaledRun       = "testdata/fleet-10k.json"
	scaledRerun     = "testdata/fleet-10k-rerun.json"
	roundRobinRun   = "testdata/fleet-10k-roundrobin.json"
)

func readReport(t *testing.T, path string) *report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &r
}

// TestModelReproducesTheScaledRun takes the unit costs from the small
// calibration runs (1 pull + 1 push node, 2 and 4 streams of 500 viewers
// and 20 senders each) and checks that the model predicts the
// 10,000-viewer run (2 + 2 nodes, 10 streams of 1,000 viewers, sends
// hashed on the stream) within Tolerances, and a second run of it.
func TestModelReproducesTheScaledRun(t *testing.T) {
	u := UnitsFrom(readReport(t, calibrationRun), readReport(t, calibrationRun4))
	t.Logf("units: %+v", u)
	for _, path := range []string{scaledRun, scaledRerun} {
		r := readReport(t, path)
		got, want := Predict(u, loadOf(r, 1)), figuresOf(r)
		t.Logf("%s:\n  model    %+v\n  measured %+v", path, got, want)
		for _, bad := range compare(got, want) {
			t.Errorf("%s: %s", path, bad)
		}
	}
}

// TestModelBoundsRoundRobinSends checks the model's figure for sends spread
// round-robin over the push nodes against the run that did it: every push
// node then writes every stream, so Redis does more than with sends hashed,
// and at most the model's figure, which counts each node's flush of a
// stream at full cost (at 60 taps/s a stream, a node that takes half of
// them flushes fewer emojis; at the plan's 1,000 taps/s, all of them).
func TestModelBoundsRoundRobinSends(t *testing.T) {
	u := UnitsFrom(readReport(t, calibrationRun), readReport(t, calibrationRun4))
	hashed, rr := readReport(t, scaledRun), readReport(t, roundRobinRun)
	bound := Predict(u, loadOf(rr, float64(rr.Push))).RedisCommandsPerSec
	t.Logf("Redis commands/s: hashed %.0f, round-robin %.0f, model's bound for round-robin %.0f",
		hashed.RedisCommandsPerSec, rr.RedisCommandsPerSec, bound)
	if rr.RedisCommandsPerSec < 1.15*hashed.RedisCommandsPerSec {
		t.Errorf("round-robin sends cost Redis %.0f commands/s, hashed %.0f: want round-robin clearly dearer",
			rr.RedisCommandsPerSec, hashed.RedisCommandsPerSec)
	}
	if rr.RedisCommandsPerSec > bound*1.05 {
		t.Errorf("round-robin sends cost Redis %.0f commands/s, over the model's bound %.0f", rr.RedisCommandsPerSec, bound)
	}
}

// TestCompareCatchesAModelOffByMoreThanItsTolerance keeps the check above
// honest: a model whose Redis figure is 30% off fails it.
func TestCompareCatchesAModelOffByMoreThanItsTolerance(t *testing.T) {
	r := readReport(t, scaledRun)
	want := figuresOf(r)
	got := want
	if bad := compare(got, want); len(bad) != 0 {
		t.Fatalf("a run compared with itself: %v", bad)
	}
	got.RedisCommandsPerSec *= 1.3
	if bad := compare(got, want); len(bad) != 1 {
		t.Errorf("Redis commands 30%% off: %v; want one complaint", bad)
	}
}

// TestCapacityDocCarriesTheModel checks that docs/capacity.md shows the
// plan this model computes from the recorded calibration, so the document
// cannot drift from the measurement or the model.
func TestCapacityDocCarriesTheModel(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "capacity.md"))
	if err != nil {
		t.Fatal(err)
	}
	plan := Plan(UnitsFrom(readReport(t, calibrationRun), readReport(t, calibrationRun4)))
	if !strings.Contains(string(doc), plan) {
		t.Errorf("docs/capacity.md does not carry the model's plan; it should contain:\n%s", plan)
	}
}

package main

import (
	"fmt"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestVCSRevision(t *testing.T) {
	for _, tc := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{nil, ""},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}, "abc"},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}, "abc"},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}, {Key: "vcs.revision", Value: "abc"}}, "abc-dirty"},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}}, ""},
	} {
		if got := vcsRevision(tc.settings); got != tc.want {
			t.Errorf("vcsRevision(%v) = %q; want %q", tc.settings, got, tc.want)
		}
	}
}

// TestBuildInfoMetric checks the gauge's name, labels and value, and that
// a second node in the same process reuses it rather than failing.
func TestBuildInfoMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := buildInfo{Version: "v1.2.3", Commit: "abc", GoVersion: "go1.26.8"}
	for range 2 {
		if err := registerBuildInfo(reg, b); err != nil {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 1 || families[0].GetName() != "emojicast_build_info" || len(families[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v; want one emojicast_build_info series", families)
	}
	m := families[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	want := map[string]string{"version": "v1.2.3", "commit": "abc", "goversion": "go1.26.8"}
	if fmt.Sprint(labels) != fmt.Sprint(want) || m.GetGauge().GetValue() != 1 {
		t.Errorf("emojicast_build_info%v = %v; want %v = 1", labels, m.GetGauge().GetValue(), want)
	}
}

// TestReadBuildInfoDefaults checks that a test binary, built without
// -ldflags, still names its Go version and something for the rest.
func TestReadBuildInfoDefaults(t *testing.T) {
	b := readBuildInfo()
	if !strings.HasPrefix(b.GoVersion, "go1.") || b.Version == "" || b.Commit == "" {
		t.Errorf("readBuildInfo() = %+v; want a Go version and non-empty version and commit", b)
	}
}

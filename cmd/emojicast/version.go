package main

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Release builds set these with -ldflags "-X main.version=v1.2.3 -X
// main.commit=<sha>" (scripts/release.sh); other builds take what the Go
// toolchain recorded: the module version (go install ...@v1.2.3) and the
// VCS revision (a build in a git checkout).
var (
	version string
	commit  string
)

// buildInfo is what a binary knows of its own build.
type buildInfo struct {
	Version, Commit, GoVersion string
}

// readBuildInfo returns this binary's build info: the -ldflags values
// where set, else the toolchain's, else "unknown".
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Commit: commit, GoVersion: "unknown"}
	if info, ok := debug.ReadBuildInfo(); ok {
		b.GoVersion = info.GoVersion
		if b.Version == "" && info.Main.Version != "" {
			b.Version = info.Main.Version
		}
		if b.Commit == "" {
			b.Commit = vcsRevision(info.Settings)
		}
	}
	if b.Version == "" {
		b.Version = "unknown"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// vcsRevision is the commit the toolchain stamped, marked "-dirty" when
// the tree had changes; empty when built without VCS stamping.
func vcsRevision(settings []debug.BuildSetting) string {
	var rev string
	dirty := false
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}

func (b buildInfo) String() string {
	return fmt.Sprintf("emojicast %s (commit %s, %s)", b.Version, b.Commit, b.GoVersion)
}

// registerBuildInfo exports the build as emojicast_build_info, a gauge of
// 1 whose labels say what runs: a fleet's dashboards can tell versions
// apart during a rollout.
func registerBuildInfo(reg prometheus.Registerer, b buildInfo) error {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "emojicast_build_info",
		Help: "The running binary's version, commit and Go version; always 1.",
	}, []string{"version", "commit", "goversion"})
	if err := reg.Register(g); err != nil {
		// A second node in one process (tests) shares the first's gauge.
		var dup prometheus.AlreadyRegisteredError
		if !errors.As(err, &dup) {
			return fmt.Errorf("cannot register emojicast_build_info: %w", err)
		}
		if g, _ = dup.ExistingCollector.(*prometheus.GaugeVec); g == nil {
			return fmt.Errorf("cannot register emojicast_build_info: %w", err)
		}
	}
	g.WithLabelValues(b.Version, b.Commit, b.GoVersion).Set(1)
	return nil
}

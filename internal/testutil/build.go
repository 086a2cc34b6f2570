package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

// A built binary, once per test process and build: the end-to-end tests
// start dozens of processes from one build.
type built struct {
	once sync.Once
	path string
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*built{}
	buildDir string
)

// Binary builds the main package pkg (an import path) the first time a
// test of this process asks for it, with the race detector if race, and
// returns the executable's path. RemoveBinaries, from TestMain, deletes
// what was built.
func Binary(t testing.TB, pkg string, race bool) string {
	t.Helper()
	key := fmt.Sprintf("%s race=%v", pkg, race)
	buildsMu.Lock()
	b := builds[key]
	if b == nil {
		b = &built{}
		builds[key] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() { b.path, b.err = build(pkg, race) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func build(pkg string, race bool) (string, error) {
	buildsMu.Lock()
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "emojicast-test-bin-")
		if err != nil {
			buildsMu.Unlock()
			return "", err
		}
		buildDir = dir
	}
	dir := buildDir
	buildsMu.Unlock()
	name := path.Base(pkg)
	args := []string{"build"}
	if race {
		name += "-race"
		args = append(args, "-race")
	}
	out := filepath.Join(dir, name)
	args = append(args, "-o", out, pkg)
	if b, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %v: %v\n%s", args, err, b)
	}
	return out, nil
}

// RemoveBinaries deletes what Binary built.
func RemoveBinaries() {
	buildsMu.Lock()
	defer buildsMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// ExitCode is the exit status of a finished command: its code, -1 if it
// could not run or was killed, 0 on success.
func ExitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// The deployment tests (systemd here, Kubernetes in kubernetes_test.go)
// read the flags the shipped files set with the binary's own flag sets:
// a misspelt flag, a flag of another role or a value the binary refuses
// fails here, not on an operator's machine.

// nodeFlagSet returns the flags of role r, parsed into the returned values.
func nodeFlagSet(r role) (*flag.FlagSet, *nodeFlags) {
	var f nodeFlags
	fs := flag.NewFlagSet(r.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.register(fs, r)
	return fs, &f
}

// setEnvFlag sets the flag an EMOJICAST_<NAME> variable mirrors, as the
// binary would.
func setEnvFlag(fs *flag.FlagSet, name, value string) error {
	flagName := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, envPrefix), "_", "-"))
	if !strings.HasPrefix(name, envPrefix) || fs.Lookup(flagName) == nil || envName(flagName) != name {
		return fmt.Errorf("%s is no flag of emojicast %s", name, fs.Name())
	}
	if err := fs.Set(flagName, value); err != nil {
		return fmt.Errorf("%s=%q: %w", name, value, err)
	}
	return nil
}

// readEnvFile reads a systemd EnvironmentFile of NAME=value lines.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not NAME=value", path, line)
		}
		vars[name] = value
	}
	return vars
}

// unitDirectives returns a unit file's directives, key → values in order.
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := map[string][]string{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		d[k] = append(d[k], v)
	}
	return d
}

// TestSystemdUnits checks deploy/systemd: systemd-analyze verify accepts
// each unit as shipped (pointing ExecStart at the release binary copied
// to a temporary directory), each is sandboxed, each example environment
// file sets only flags of the role that reads it with values the binary
// takes, and systemd waits for the drain and the shutdown before it
// kills. About 1 s once the release binaries are built.
func TestSystemdUnits(t *testing.T) {
	analyze := testutil.NeedsProgram(t, "systemd-analyze")
	bin := releaseBinary(t)
	dir := t.TempDir()
	installed := filepath.Join(dir, "emojicast")
	if err := os.WriteFile(installed, readFile(t, bin), 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(repoRoot, "deploy", "systemd")
	for _, r := range []role{rolePush, rolePull, roleServe} {
		t.Run(r.name, func(t *testing.T) {
			name := "emojicast-" + r.name + ".service"
			unit := string(readFile(t, filepath.Join(src, name)))
			const shipped = "ExecStart=/usr/local/bin/emojicast " + "%s\n"
			if !strings.Contains(unit, fmt.Sprintf(shipped, r.name)) {
				t.Fatalf("%s does not run /usr/local/bin/emojicast %s", name, r.name)
			}
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(strings.Replace(unit, "ExecStart=/usr/local/bin/emojicast", "ExecStart="+installed, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
			}
			d := unitDirectives(t, path)
			for k, want := range map[string]string{
				"DynamicUser": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
				"Restart": "on-failure", "LimitNOFILE": "65536", "Type": "exec",
			} {
				if got := d[k]; len(got) != 1 || got[0] != want {
					t.Errorf("%s has %s=%v; want %s", name, k, got, want)
				}
			}
			want := []string{"/etc/emojicast/emojicast.env", "-/etc/emojicast/" + r.name + ".env"}
			if got := d["EnvironmentFile"]; strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("%s reads EnvironmentFile %v; want %v", name, got, want)
			}
			checkUnitFlags(t, r, d["TimeoutStopSec"], src)
		})
	}
}

// checkUnitFlags sets the example environment files' variables on role
// r's flags and checks that the drain delay and the shutdown timeout end
// before systemd's TimeoutStopSec kills the process.
func checkUnitFlags(t *testing.T, r role, timeoutStop []string, src string) {
	t.Helper()
	fs, f := nodeFlagSet(r)
	for _, file := range []string{"emojicast.env", r.name + ".env"} {
		for name, value := range readEnvFile(t, filepath.Join(src, file)) {
			if err := setEnvFlag(fs, name, value); err != nil {
				t.Errorf("deploy/systemd/%s: %v", file, err)
			}
		}
	}
	if len(timeoutStop) != 1 {
		t.Fatalf("TimeoutStopSec is %v; want one", timeoutStop)
	}
	stop, err := time.ParseDuration(timeoutStop[0])
	if err != nil {
		t.Fatalf("TimeoutStopSec=%s: %v", timeoutStop[0], err)
	}
	if f.drainDelay == 0 {
		t.Errorf("the example sets no --drain-delay: a stopping node would drop out of its balancer with requests in flight")
	}
	if need := f.drainDelay + f.shutdownTimeout + 5*time.Second; need > stop {
		t.Errorf("--drain-delay %v + --shutdown-timeout %v + 5 s is %v, over TimeoutStopSec %v: systemd would kill the node mid-flush", f.drainDelay, f.shutdownTimeout, need, stop)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

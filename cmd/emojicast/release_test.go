package main

import (
	"bufio"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// The release tests run scripts/release.sh once per test run, for every
// target, and the container and systemd tests ship the linux binary it
// built: what operators install is what the tests ran.

const (
	releaseVersion = "v0.0.0-test"
	releaseCommit  = "0123456789abcdef0123456789abcdef01234567"
)

var releaseTargets = []string{"linux/amd64", "linux/arm64", "darwin/arm64"}

var release struct {
	once sync.Once
	dir  string
	err  error
}

// releaseDir runs scripts/release.sh for every target into a temporary
// directory, the first time it is asked for, and returns the directory.
func releaseDir(t *testing.T) string {
	t.Helper()
	testutil.Long(t, "builds the release binaries of three targets")
	release.once.Do(func() {
		if release.dir, release.err = os.MkdirTemp("", "emojicast-release-"); release.err != nil {
			return
		}
		release.err = runRelease(filepath.Join(repoRoot, "scripts", "release.sh"), release.dir, releaseTargets)
	})
	if release.err != nil {
		t.Fatal(release.err)
	}
	return release.dir
}

func runRelease(script, out string, targets []string) error {
	start := time.Now()
	cmd := exec.Command(script)
	cmd.Env = append(os.Environ(), "VERSION="+releaseVersion, "COMMIT="+releaseCommit,
		"OUT="+out, "TARGETS="+strings.Join(targets, " "))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", script, err, b)
	}
	fmt.Fprintf(os.Stderr, "release.sh %v: %v\n", targets, time.Since(start).Round(time.Millisecond))
	return nil
}

// releaseName is the file release.sh names a target's binary.
func releaseName(target string) string {
	return "emojicast-" + releaseVersion + "-" + strings.ReplaceAll(target, "/", "-")
}

// releaseBinary returns the release binary this machine can run.
func releaseBinary(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Fatalf("the release tests run the linux binaries; this is %s", runtime.GOOS)
	}
	return filepath.Join(releaseDir(t), releaseName("linux/"+runtime.GOARCH))
}

// readSums reads a SHA256SUMS file into file name → hex digest.
func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("%s: malformed line %q", path, sc.Text())
		}
		sums[name] = sum
	}
	return sums
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestReleaseBinaries checks what release.sh ships: a binary per target
// for its OS and architecture, static, each with its checksum in
// SHA256SUMS. About 7 s with a warm build cache; from a cold one the three
// targets' standard libraries and dependencies are compiled first
// (1.5-3 minutes on 2 cores).
func TestReleaseBinaries(t *testing.T) {
	dir := releaseDir(t)
	sums := readSums(t, filepath.Join(dir, "SHA256SUMS"))
	if len(sums) != len(releaseTargets) {
		t.Errorf("SHA256SUMS lists %d files; want %d: %v", len(sums), len(releaseTargets), sums)
	}
	for _, target := range releaseTargets {
		name := releaseName(target)
		path := filepath.Join(dir, name)
		if got, want := sums[name], sha256File(t, path); got != want {
			t.Errorf("SHA256SUMS gives %s the sum %q; the file's is %s", name, got, want)
		}
		if strings.HasPrefix(target, "darwin/") {
			checkMachO(t, path)
		} else {
			checkStaticELF(t, path, target)
		}
	}
}

func checkStaticELF(t *testing.T, path, target string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}[target]
	if f.Machine != want {
		t.Errorf("%s is for %v; want %v", filepath.Base(path), f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (%v); release binaries must be static", filepath.Base(path), p.Type)
		}
	}
}

func checkMachO(t *testing.T, path string) {
	t.Helper()
	f, err := macho.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Cpu != macho.CpuArm64 {
		t.Errorf("%s is for %v; want arm64", filepath.Base(path), f.Cpu)
	}
}

// TestReleaseBinaryRuns runs the linux release binary as an operator
// would: `version` and `--version` print what release.sh stamped, and
// `serve` becomes ready and exports the same as emojicast_build_info.
// About 1 s once the binaries are built.
func TestReleaseBinaryRuns(t *testing.T) {
	bin := releaseBinary(t)
	want := fmt.Sprintf("emojicast %s (commit %s, %s)", releaseVersion, releaseCommit, runtime.Version())
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).CombinedOutput()
		if err != nil {
			t.Fatalf("emojicast %s: %v\n%s", arg, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("emojicast %s printed %q; want %q", arg, got, want)
		}
	}
	base, logs := startShipped(t, exec.Command(bin, "serve"))
	metric := fmt.Sprintf(`emojicast_build_info{commit=%q,goversion=%q,version=%q} 1`, releaseCommit, runtime.Version(), releaseVersion)
	if body := httpGet(t, base+"/metrics"); !strings.Contains(body, metric) {
		t.Errorf("/metrics lacks %s", metric)
	}
	if want := `version=` + releaseVersion; !strings.Contains(logs.String(), want) {
		t.Errorf("serve's log lacks %q at start:\n%s", want, logs.String())
	}
}

// startShipped starts cmd (a serve) on a free loopback port, given with
// --listen, waits until /readyz answers 200 and returns its base URL and
// log; the process is stopped with SIGTERM when the test ends, and must
// exit 0.
func startShipped(t *testing.T, cmd *exec.Cmd) (string, *testutil.SyncBuffer) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	cmd.Args = append(cmd.Args, "--listen", addr)
	logs := new(testutil.SyncBuffer)
	cmd.Stdout, cmd.Stderr = logs, logs
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s exited with %v after SIGTERM:\n%s", cmd.Path, err, logs.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("%s did not exit after SIGTERM:\n%s", cmd.Path, logs.String())
		}
	})
	base := "http://" + addr
	testutil.Eventually(t, 10*time.Second, "/readyz to answer 200", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return base, logs
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// TestReleaseReproducible builds the linux/amd64 release again from a
// copy of the source in another directory and checks that the binary is
// byte for byte the same: no paths, timestamps or build IDs of the
// machine get in. About 5 s with a warm build cache.
func TestReleaseReproducible(t *testing.T) {
	const target = "linux/amd64"
	first := readSums(t, filepath.Join(releaseDir(t), "SHA256SUMS"))[releaseName(target)]
	src := filepath.Join(t.TempDir(), "elsewhere", "emojicast")
	copyTree(t, repoRoot, src)
	out := t.TempDir()
	if err := runRelease(filepath.Join(src, "scripts", "release.sh"), out, []string{target}); err != nil {
		t.Fatal(err)
	}
	if again := readSums(t, filepath.Join(out, "SHA256SUMS"))[releaseName(target)]; again != first {
		t.Errorf("%s built twice: sha256 %s, then %s from a copy of the source", target, first, again)
	}
}

// copyTree copies the regular files of the repository at root to dst,
// without version control or build outputs.
func copyTree(t *testing.T, root, dst string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == ".git" || rel == "dist" || d.Name() == "node_modules" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(dst, rel), 0o755)
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

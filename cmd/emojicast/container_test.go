package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestContainerImage builds deploy/container/Containerfile with podman
// and runs what it built. This machine reaches no container registry, so
// the build stage runs in a builder image the test makes from the host's
// Go toolchain (podman import), with the host's module and build caches
// mounted; operators' builds use the golang image by default. Containers
// cannot run here either (no cgroups), so the build's RUN steps use
// chroot isolation, and the test runs the image's entrypoint itself:
// chrooted into the image's filesystem, as the image's user, with its
// environment. About 25 s with warm caches and the builder image kept
// from an earlier run.
func TestContainerImage(t *testing.T) {
	podman := testutil.NeedsProgram(t, "podman")
	release := releaseBinary(t) // the image's binary must be this one
	if os.Geteuid() != 0 {
		t.Fatal("the container test needs root: podman's storage, chroot and setuid (CI runs as root)")
	}
	tag := fmt.Sprintf("localhost/emojicast-test-%d", time.Now().UnixNano())
	t.Cleanup(func() { _ = exec.Command(podman, "rmi", "--force", tag).Run() })
	builder := builderImage(t, podman)

	goEnv := func(name string) string {
		out, err := exec.Command("go", "env", name).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	// The module cache must hold every module the build needs: the build
	// has no network (GOPROXY=off in the builder).
	if out, err := exec.Command("go", "mod", "download").CombinedOutput(); err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	start := time.Now()
	build := exec.Command(podman, "build", "--isolation", "chroot", "--layers=false",
		"--build-arg", "BUILDER="+builder,
		"--build-arg", "VERSION="+releaseVersion, "--build-arg", "COMMIT="+releaseCommit,
		"--volume", goEnv("GOMODCACHE")+":/root/go/pkg/mod",
		"--volume", goEnv("GOCACHE")+":/root/.cache/go-build",
		"--file", "deploy/container/Containerfile", "--tag", tag, ".")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	t.Logf("podman build: %v", time.Since(start).Round(time.Millisecond))

	cfg := inspectImage(t, podman, tag)
	t.Logf("image %s: %.1f MB", tag, float64(cfg.Size)/1e6)
	if cfg.Size > 40<<20 {
		t.Errorf("the image is %d bytes; it should hold little more than the binary", cfg.Size)
	}
	root := exportImage(t, podman, tag)
	if _, err := os.Lstat(filepath.Join(root, "bin", "sh")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the image has /bin/sh (%v); it should hold the binary and no shell", err)
	}
	for _, f := range []string{"etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("the image lacks /%s: %v", f, err)
		}
	}
	if len(cfg.Config.Entrypoint) == 0 {
		t.Fatalf("the image has no entrypoint: %+v", cfg.Config)
	}
	bin := filepath.Join(root, cfg.Config.Entrypoint[0])
	if got, want := sha256File(t, bin), sha256File(t, release); got != want {
		t.Errorf("the image's %s has sha256 %s; the release binary of the same version %s", cfg.Config.Entrypoint[0], got, want)
	}
	if _, ok := cfg.Config.ExposedPorts["8080/tcp"]; !ok || !slices.Contains(cfg.Config.Env, "EMOJICAST_LISTEN=:8080") {
		t.Errorf("the image should listen on :8080 and expose 8080/tcp: env %v, ports %v", cfg.Config.Env, cfg.Config.ExposedPorts)
	}
	runImage(t, root, cfg.Config)
}

// builderImage returns the image of the host's Go toolchain, CA
// certificates and an empty /tmp: the build stage's BUILDER. It is kept
// between runs under the toolchain's version (importing a toolchain takes
// a minute), and made when missing.
func builderImage(t *testing.T, podman string) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT", "GOVERSION").Output()
	if err != nil {
		t.Fatalf("go env GOROOT GOVERSION: %v", err)
	}
	goroot, version, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	name := "localhost/emojicast-test-builder:" + version
	if exec.Command(podman, "image", "exists", name).Run() == nil {
		return name
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeBuilderTar(pw, goroot)) }()
	cmd := exec.Command(podman, "import",
		"--change", "ENV PATH="+filepath.Join(goroot, "bin"),
		"--change", "ENV GOTOOLCHAIN=local",
		"--change", "ENV GOPROXY=off",
		"--change", "ENV HOME=/root",
		"--change", "ENV GOMODCACHE=/root/go/pkg/mod",
		"--change", "ENV GOCACHE=/root/.cache/go-build",
		"-", name)
	cmd.Stdin = pr
	if b, err := cmd.CombinedOutput(); err != nil {
		pr.CloseWithError(err)
		t.Fatalf("podman import: %v\n%s", err, b)
	}
	return name
}

// writeBuilderTar writes the builder's filesystem as a tar: goroot at its
// own path (so the build cache's entries match), the CA bundle and /tmp.
func writeBuilderTar(w io.Writer, goroot string) error {
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}); err != nil {
		return err
	}
	add := func(path string) error {
		return filepath.Walk(path, func(p string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			link := ""
			if info.Mode()&os.ModeSymlink != 0 {
				if link, err = os.Readlink(p); err != nil {
					return err
				}
			}
			h, err := tar.FileInfoHeader(info, link)
			if err != nil {
				return err
			}
			h.Name = strings.TrimPrefix(p, "/")
			if info.IsDir() {
				h.Name += "/"
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if !info.Mode().IsRegular() {
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		})
	}
	for _, p := range []string{goroot, "/etc/ssl/certs/ca-certificates.crt"} {
		if err := add(p); err != nil {
			return err
		}
	}
	return tw.Close()
}

// imageInfo is what the test reads of `podman image inspect`.
type imageInfo struct {
	Size   int64
	Config imageConfig
}

type imageConfig struct {
	User         string
	Env          []string
	Entrypoint   []string
	Cmd          []string
	ExposedPorts map[string]struct{}
}

func inspectImage(t *testing.T, podman, tag string) imageInfo {
	t.Helper()
	out, err := exec.Command(podman, "image", "inspect", tag).Output()
	if err != nil {
		t.Fatalf("podman image inspect: %v", err)
	}
	var infos []imageInfo
	if err := json.Unmarshal(out, &infos); err != nil || len(infos) != 1 {
		t.Fatalf("podman image inspect: %v: %s", err, out)
	}
	return infos[0]
}

// exportImage writes the image's filesystem into a temporary directory,
// through a created (never started) container.
func exportImage(t *testing.T, podman, tag string) string {
	t.Helper()
	id, err := exec.Command(podman, "create", tag).Output()
	if err != nil {
		t.Fatalf("podman create: %v", err)
	}
	ctr := strings.TrimSpace(string(id))
	defer exec.Command(podman, "rm", "--force", ctr).Run()
	root := t.TempDir()
	// The image's user must reach its files, as in a container.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	export := exec.Command(podman, "export", ctr)
	r, err := export.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := export.Start(); err != nil {
		t.Fatal(err)
	}
	extractErr := extractTar(r, root)
	if err := export.Wait(); err != nil || extractErr != nil {
		t.Fatalf("podman export: %v; extracting: %v", err, extractErr)
	}
	return root
}

// extractTar writes a container's exported filesystem under root. It
// holds only what the test put there; paths leaving root are refused.
func extractTar(r io.Reader, root string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		path := filepath.Join(root, h.Name)
		if !strings.HasPrefix(path, root+string(filepath.Separator)) && path != root {
			return fmt.Errorf("tar entry %q leaves the root", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, os.FileMode(h.Mode).Perm())
		case tar.TypeReg:
			err = writeFile(path, tr, os.FileMode(h.Mode).Perm())
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, path)
		}
		if err != nil {
			return err
		}
	}
}

func writeFile(path string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runImage runs the image's entrypoint and command as its runtime would:
// chrooted into its filesystem, as its numeric user, with only its
// environment; it must become ready, then stop cleanly on SIGTERM. The
// port is a free one given by --listen: the image's own :8080 may be in
// use on a shared machine.
func runImage(t *testing.T, root string, cfg imageConfig) {
	t.Helper()
	uidText, gidText, _ := strings.Cut(cfg.User, ":")
	uid, errU := strconv.ParseUint(uidText, 10, 32)
	gid, errG := strconv.ParseUint(gidText, 10, 32)
	if errU != nil || errG != nil || uid == 0 {
		t.Fatalf("the image's user is %q; want a numeric non-root uid:gid", cfg.User)
	}
	args := append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Path = args[0] // resolved inside the chroot
	cmd.Dir = "/"
	cmd.Env = cfg.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
	}
	base, _ := startShipped(t, cmd)
	status := string(readFile(t, fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)))
	if want := fmt.Sprintf("\nUid:\t%d\t%d\t", uid, uid); !strings.Contains(status, want) {
		t.Errorf("the image's emojicast does not run as uid %d:\n%s", uid, status)
	}
	if body := httpGet(t, base+"/metrics"); !strings.Contains(body, `version="`+releaseVersion+`"`) {
		t.Errorf("the image's emojicast does not export its version %s", releaseVersion)
	}
}

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/redis/go-redis/v9"
)

// proc is one process the run started; it dies with the run.
type proc struct {
	name   string
	cmd    *exec.Cmd
	url    string // http://host:port for servers
	addr   string // host:port
	exited chan struct{}
	err    error
}

func (f *fleet) start(name string, stdout *os.File, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(f.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if stdout != nil {
		cmd.Stdout = stdout
	}
	// Nothing outlives the run, also when it crashes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	f.procs = append(f.procs, p)
	return p, nil
}

// stop ends every process the run started, newest first, politely, then
// for good.
func (f *fleet) stop() {
	f.stopOnce.Do(func() {
		for i := len(f.procs) - 1; i >= 0; i-- {
			p := f.procs[i]
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
	})
}

// freePort returns a loopback port nobody listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// until polls cond every 100 ms until it holds, p exits, or d passes.
func until(p *proc, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before %s: %v", p.name, what, p.err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %s after %v", p.name, what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// build builds the package pkg of the repository into the run's directory.
func (f *fleet) build(name, pkg string) (string, error) {
	out := filepath.Join(f.dir, name)
	b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cannot build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// startRedis starts a redis-server on a free loopback port, persistence
// off, never the one a developer may run on 6379.
func (f *fleet) startRedis() (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p, err := f.start("redis", nil, f.cfg.redis, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", f.dir, "--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning")
	if err != nil {
		return nil, err
	}
	p.addr = fmt.Sprintf("127.0.0.1:%d", port)
	f.rdb = redis.NewClient(&redis.Options{Addr: p.addr})
	return p, until(p, 20*time.Second, "answer to PING", func() bool {
		return f.rdb.Ping(context.Background()).Err() == nil
	})
}

// lifted are the per-address limits the load generator would trip: its
// thousands of clients share one address, and the limits are not what is
// measured (benchmarks/README.md, "Reproduce everything").
var lifted = []string{
	"--max-conns-per-ip", "20000",
	"--ip-send-rate", "1000000", "--ip-send-burst", "1000000",
	"--ip-watch-rate", "1000000", "--ip-watch-burst", "1000000",
	"--ip-poll-rate", "1000000", "--ip-poll-burst", "1000000",
}

// roleFlags are the flags only one role has: pull nodes count viewers per
// address and set the sample (off here, so every accepted tap counts once
// and the delivered fraction is exact); push nodes limit each user and
// each address group's weight and comments.
var roleFlags = map[string][]string{
	"pull": {"--ip-viewers", "1000000", "--target-sends", "1000000000"},
	"push": {"--user-rate", "1000", "--user-burst", "1000", "--ip-weight-rate", "1000000", "--ip-weight-burst", "1000000",
		"--ip-comment-rate", "1000000", "--ip-comment-burst", "1000000"},
}

// startNode starts one emojicast process of role (pull or push) on Redis
// behind the edge, and waits until it is ready.
func (f *fleet) startNode(bin, role string, i int, redisURL string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{role, "--listen", addr, "--redis", redisURL, "--log-level", "warn",
		// The edge is the only client; its X-Forwarded-For names the viewer.
		"--trusted-proxies", "127.0.0.1"}, append(lifted, roleFlags[role]...)...)
	p, err := f.start(fmt.Sprintf("%s-%d", role, i), nil, bin, args...)
	if err != nil {
		return nil, err
	}
	p.addr, p.url = addr, "http://"+addr
	return p, until(p, 30*time.Second, "ready answer", func() bool {
		resp, err := http.Get(p.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// startEdge renders deploy/nginx.conf for the pull and push nodes and runs
// it as one nginx process, as cmd/emojicast's edge tests do.
func (f *fleet) startEdge(root string, pull, push []string) (*proc, error) {
	conf := f.cfg.conf
	if conf == "" {
		conf = filepath.Join(root, "deploy", "nginx.conf")
	}
	tmpl, err := template.ParseFiles(conf)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(f.dir, "edge")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	conf = filepath.Join(dir, "nginx.conf")
	cf, err := os.Create(conf)
	if err != nil {
		return nil, err
	}
	err = tmpl.Execute(cf, map[string]any{"Dir": dir, "Listen": fmt.Sprintf("127.0.0.1:%d", port), "Pull": pull, "Push": push})
	if cerr := cf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	p, err := f.start("nginx", nil, f.cfg.nginx, "-p", dir, "-c", conf, "-g", "daemon off; master_process off;")
	if err != nil {
		return nil, err
	}
	p.addr, p.url = fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("http://127.0.0.1:%d", port)
	f.accessLog = filepath.Join(dir, "access.log")
	return p, until(p, 10*time.Second, "listening socket", func() bool {
		c, err := net.Dial("tcp", p.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// cpuSeconds is the CPU time (user and system) process pid used so far.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 13 {
		return 0, errors.New("short /proc stat")
	}
	// Fields 14 and 15 of stat (utime, stime), in clock ticks: 100 a
	// second on Linux.
	ut, err1 := strconv.ParseFloat(fields[11], 64)
	st, err2 := strconv.ParseFloat(fields[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return (ut + st) / 100, nil
}

// metrics reads the Prometheus text of a node into a map from the series
// (name and labels as printed) to its value.
func metrics(url string) (map[string]float64, error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// sumPrefix sums the series whose name and labels start with prefix.
func sumPrefix(m map[string]float64, prefix string) float64 {
	s := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/server"
)

// constantAnswer is the poll answer the constant server repeats: its
// headers but Content-Length and Connection, which fasthttp writes itself,
// and its body as sent.
type constantAnswer struct {
	Headers [][2]string `json:"headers"`
	Body    []byte      `json:"body"`
	// KeepIdleBuffers is server.Options.KeepIdleBuffers, for the constant
	// server to hold connections as emojicast does.
	KeepIdleBuffers bool `json:"keep_idle_buffers"`
}

// answerOf copies an answer for the constant server to repeat.
func answerOf(resp *fasthttp.Response) constantAnswer {
	a := constantAnswer{Body: append([]byte(nil), resp.Body()...)}
	for k, v := range resp.Header.All() {
		if name := string(k); name != fasthttp.HeaderContentLength && name != fasthttp.HeaderConnection {
			a.Headers = append(a.Headers, [2]string{name, string(v)})
		}
	}
	return a
}

// constantServer is the child process serving a constantAnswer.
type constantServer struct {
	cmd   *exec.Cmd
	stdin io.Closer
	addr  string
}

// startConstant runs this program again as the constant server, in its own
// process like the server under test, and waits for its address.
func startConstant(a constantAnswer) (*constantServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find this program to start the constant server: %w", err)
	}
	spec, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve-constant")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start the constant server: %w", err)
	}
	cs := &constantServer{cmd: cmd, stdin: stdin}
	// The answer goes down stdin as one line; the child prints its address,
	// then serves until stdin closes, so it never outlives this process.
	if _, err := stdin.Write(append(spec, '\n')); err != nil {
		cs.stop()
		return nil, fmt.Errorf("cannot hand the answer to the constant server: %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		cs.stop()
		return nil, fmt.Errorf("the constant server did not start: %q %v", line, err)
	}
	cs.addr = addr
	return cs, nil
}

func (cs *constantServer) stop() {
	_ = cs.stdin.Close()
	done := make(chan struct{})
	go func() {
		_ = cs.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cs.cmd.Process.Kill()
		<-done
	}
}

// serveConstant is the constant server's process: it reads the answer from
// stdin, serves it on a free loopback port with the server settings of
// emojicast's server package, and stops when stdin closes.
func serveConstant() error {
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("cannot read the answer to serve: %w", err)
	}
	var a constantAnswer
	if err := json.Unmarshal(line, &a); err != nil {
		return fmt.Errorf("cannot decode the answer to serve: %w", err)
	}
	type header struct{ k, v []byte }
	headers := make([]header, len(a.Headers))
	for i, h := range a.Headers {
		headers[i] = header{[]byte(h[0]), []byte(h[1])}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			for _, h := range headers {
				ctx.Response.Header.SetCanonical(h.k, h.v)
			}
			ctx.Response.SetBodyRaw(a.Body)
		},
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second,
		Concurrency: 16_000, ReadBufferSize: server.DefaultMaxHeaderBytes, MaxRequestBodySize: 64 << 10,
		ReduceMemoryUsage:     !a.KeepIdleBuffers,
		NoDefaultServerHeader: true, NoDefaultDate: true, NoDefaultContentType: true,
		CloseOnShutdown: true, TCPKeepalive: true,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Println("listening", ln.Addr())
	_, _ = io.Copy(io.Discard, in)
	if err := srv.Shutdown(); err != nil {
		return err
	}
	return <-served
}

// metricsCPU reads process_cpu_seconds_total from emojicast's /metrics.
func metricsCPU(cl *client) (float64, error) {
	var req fasthttp.Request
	var resp fasthttp.Response
	req.SetRequestURI("/metrics")
	if _, err := cl.do(&req, &resp); err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(resp.Body())) {
		if v, ok := strings.CutPrefix(line, "process_cpu_seconds_total "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, errors.New("no process_cpu_seconds_total in /metrics")
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat on Linux.
const userHZ = 100

// procCPU reads a process's user and system CPU time from /proc, as the
// Prometheus process collector does for emojicast.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	return (utime + stime) / userHZ, nil
}

// pageSize is the unit of the resident set in /proc/<pid>/statm.
var pageSize = int64(os.Getpagesize())

// procRSS reads a process's resident memory from /proc, in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("cannot parse /proc/%d/statm", pid)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cannot parse /proc/%d/statm: %w", pid, err)
	}
	return pages * pageSize, nil
}

// listenerPID finds the process listening on addr's port: the socket's
// inode from /proc/net/tcp and tcp6, then the process holding it among
// those this user may read.
func listenerPID(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, err
	}
	inode := ""
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if inode = listeningInode(table, uint16(p)); inode != "" {
			break
		}
	}
	if inode == "" {
		return 0, fmt.Errorf("nothing listens on port %d", p)
	}
	target := "socket:[" + inode + "]"
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir("/proc/" + d.Name() + "/fd")
		if err != nil {
			continue // not ours, or gone
		}
		for _, fd := range fds {
			if link, _ := os.Readlink("/proc/" + d.Name() + "/fd/" + fd.Name()); link == target {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no process this user can see holds the socket listening on port %d", p)
}

// listeningInode returns the inode of the socket listening on port in a
// /proc/net/tcp table, or "".
func listeningInode(table string, port uint16) string {
	b, err := os.ReadFile(table)
	if err != nil {
		return ""
	}
	want := fmt.Sprintf(":%04X", port)
	for line := range strings.Lines(string(b)) {
		// sl local_address rem_address st ... inode is the tenth field.
		f := strings.Fields(line)
		if len(f) >= 10 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
			return f[9]
		}
	}
	return ""
}

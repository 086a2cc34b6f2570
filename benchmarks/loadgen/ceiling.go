package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// ceilingReport compares the poll path's throughput with the ceiling: a
// fasthttp server answering every request with a constant copy of a poll
// answer, under the same closed-loop load, in alternating phases.
type ceilingReport struct {
	Mode         string       `json:"mode"`
	Conns        int          `json:"conns"`
	Rounds       int          `json:"rounds"`
	PhaseSeconds float64      `json:"phase_seconds"`
	Emojicast    targetReport `json:"emojicast"`
	Constant     targetReport `json:"constant"`
	// Ratio is the median of the poll path's phases over the median of
	// the constant server's; RoundRatios are the same, round by round.
	Ratio       float64   `json:"ratio"`
	RoundRatios []float64 `json:"round_ratios"`
	// CPURatio is the constant server's CPU per poll over emojicast's: the
	// throughput ratio of a machine where the server alone is the bound.
	CPURatio float64 `json:"cpu_ratio,omitempty"`
}

type targetReport struct {
	PollsPerSec   []float64 `json:"polls_per_sec"` // one per phase, in round order
	Median        float64   `json:"median_polls_per_sec"`
	LatencyP50MS  float64   `json:"latency_p50_ms"`
	LatencyP99MS  float64   `json:"latency_p99_ms"`
	ResponseBytes float64   `json:"response_bytes"`
	Errors        int       `json:"errors"`
	// CPUPerPollUS is the server process's CPU time per answered poll, in
	// microseconds: what a poll costs the server, which neighbours on a
	// shared machine disturb far less than throughput. 0 when unknown.
	CPUPerPollUS float64 `json:"cpu_per_poll_us"`
}

// pacerInterval is how often the pacer polls to learn the stream's now.
const pacerInterval = 100 * time.Millisecond

// runCeiling keeps a stream busy with senders, captures one of its poll
// answers, starts the constant server with it, then alternates closed-loop
// phases against the two servers. Pollers ask with since = now-1, as
// viewers polling every second do.
func runCeiling(cfg *config, stream string) (*ceilingReport, error) {
	stop := make(chan struct{})
	var bg sync.WaitGroup
	defer func() {
		close(stop)
		bg.Wait()
	}()
	sendersDone := make(chan error, 1)
	bg.Go(func() {
		// The senders tap through the whole stage; what they send is not
		// measured here, it only keeps the stream's answers busy.
		_, _, _, err := runSenders(cfg, stream, "c", cfg.ceiling+time.Minute, stop)
		sendersDone <- err
	})
	var now atomic.Int64
	pacer := newViewer("pacer", newClient(cfg.addr, true), newRegistry(), 7)
	if err := pacer.watch(stream); err != nil {
		return nil, err
	}
	bg.Go(func() {
		defer pacer.cl.close()
		for {
			pacer.poll()
			now.Store(pacer.cursor)
			if !sleep(pacerInterval, stop) {
				return
			}
		}
	})
	path := pacer.pollPath
	answer, err := capture(cfg, path, &now, sendersDone)
	if err != nil {
		return nil, err
	}
	cs, err := startConstant(answer)
	if err != nil {
		return nil, err
	}
	defer cs.stop()
	metrics := newClient(cfg.addr, true)
	defer metrics.close()
	cpu := map[string]func() (float64, error){
		cfg.addr: func() (float64, error) { return metricsCPU(metrics) },
		cs.addr:  func() (float64, error) { return procCPU(cs.cmd.Process.Pid) },
	}

	r := &ceilingReport{Mode: cfg.mode, Conns: cfg.conns, Rounds: cfg.rounds}
	phase := cfg.ceiling / time.Duration(2*cfg.rounds)
	r.PhaseSeconds = phase.Seconds()
	// One unmeasured phase each first: a fresh process serves its first
	// connections slowly (goroutine stacks, pools, page faults).
	for _, addr := range []string{cfg.addr, cs.addr} {
		runPhase(addr, path, cfg.conns, cfg.keepAlive(), phase, &now, cpu[addr])
	}
	var emo, con phaseTotals
	for round := range cfg.rounds {
		// Alternate which goes first, so a drift of the machine's load
		// over the run weighs on both alike.
		first, second := cfg.addr, cs.addr
		if round%2 == 1 {
			first, second = second, first
		}
		for _, addr := range []string{first, second} {
			res := runPhase(addr, path, cfg.conns, cfg.keepAlive(), phase, &now, cpu[addr])
			if addr == cfg.addr {
				emo.add(res)
			} else {
				con.add(res)
			}
		}
		r.RoundRatios = append(r.RoundRatios, emo.rates[round]/con.rates[round])
	}
	r.Emojicast, r.Constant = emo.report(), con.report()
	r.Ratio = r.Emojicast.Median / r.Constant.Median
	if r.Emojicast.CPUPerPollUS > 0 && r.Constant.CPUPerPollUS > 0 {
		r.CPURatio = r.Constant.CPUPerPollUS / r.Emojicast.CPUPerPollUS
	}
	return r, nil
}

// captureSamples is how many busy answers capture takes, over as many
// moments, to serve the one of median size.
const captureSamples = 7

// capture takes busy poll answers (ones that list a second) to the request
// the pollers send, and returns the one of median size on the wire for the
// constant server, so that the ceiling serves what a poll typically gets.
func capture(cfg *config, path string, now *atomic.Int64, sendersDone <-chan error) (constantAnswer, error) {
	cl := newClient(cfg.addr, cfg.keepAlive())
	defer cl.close()
	var req fasthttp.Request
	var resp fasthttp.Response
	var jp fastjson.Parser
	type sized struct {
		a    constantAnswer
		wire int64
	}
	var got []sized
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < captureSamples && time.Now().Before(deadline) {
		select {
		case err := <-sendersDone:
			return constantAnswer{}, fmt.Errorf("senders stopped: %w", err)
		case <-time.After(3 * pacerInterval):
		}
		if now.Load() == 0 {
			continue
		}
		req.Reset()
		req.SetRequestURI(path + "?since=" + strconv.FormatInt(now.Load()-1, 10))
		req.Header.Set(fasthttp.HeaderAcceptEncoding, "gzip")
		w, err := cl.do(&req, &resp)
		if err != nil || resp.StatusCode() != fasthttp.StatusOK {
			continue
		}
		body, err := resp.BodyGunzip()
		if err != nil {
			return constantAnswer{}, fmt.Errorf("cannot gunzip a poll answer: %w", err)
		}
		if p, err := parsePoll(&jp, body); err != nil || len(p.buckets) == 0 {
			continue
		}
		a := constantAnswer{Body: append([]byte(nil), resp.Body()...)}
		for k, v := range resp.Header.All() {
			if name := string(k); name != fasthttp.HeaderContentLength && name != fasthttp.HeaderConnection {
				a.Headers = append(a.Headers, [2]string{name, string(v)})
			}
		}
		got = append(got, sized{a, w.read})
	}
	if len(got) == 0 {
		return constantAnswer{}, fmt.Errorf("no poll answer of %s listed a second within 20s: are the senders accepted?", path)
	}
	slices.SortFunc(got, func(x, y sized) int { return cmp.Compare(x.wire, y.wire) })
	return got[len(got)/2].a, nil
}

// phaseResult is one closed-loop phase against one server.
type phaseResult struct {
	polls   int
	seconds float64
	lat     []time.Duration
	read    int64
	errors  int
	cpu     float64 // server CPU seconds while measuring; negative if unknown
}

// runPhase has conns pollers poll addr back to back for d, and measures
// all but the first fifth (at most 300ms), while connections warm up. cpu
// reads the server process's CPU time.
func runPhase(addr, path string, conns int, keepAlive bool, d time.Duration, now *atomic.Int64, cpu func() (float64, error)) phaseResult {
	var measuring, stopped atomic.Bool
	results := make([]phaseResult, conns)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = hammer(addr, path, keepAlive, now, &measuring, &stopped) })
	}
	warm := min(d/5, 300*time.Millisecond)
	time.Sleep(warm)
	cpu0, err0 := cpu()
	measuring.Store(true)
	start := time.Now()
	time.Sleep(d - warm)
	measuring.Store(false)
	secs := time.Since(start).Seconds()
	cpu1, err1 := cpu()
	stopped.Store(true)
	wg.Wait()
	total := phaseResult{seconds: secs, cpu: cpu1 - cpu0}
	if err0 != nil || err1 != nil {
		total.cpu = -1
	}
	for _, r := range results {
		total.polls += r.polls
		total.lat = append(total.lat, r.lat...)
		total.read += r.read
		total.errors += r.errors
	}
	return total
}

// hammer polls as fast as answers come back until stopped, counting the
// answers completed while measuring.
func hammer(addr, path string, keepAlive bool, now *atomic.Int64, measuring, stopped *atomic.Bool) phaseResult {
	cl := newClient(addr, keepAlive)
	defer cl.close()
	var req fasthttp.Request
	var resp fasthttp.Response
	var r phaseResult
	var uri []byte
	since := int64(-1)
	for !stopped.Load() {
		if s := now.Load() - 1; s != since {
			since = s
			uri = strconv.AppendInt(append(append(uri[:0], path...), "?since="...), since, 10)
			req.Reset()
			req.SetRequestURIBytes(uri)
			req.Header.Set(fasthttp.HeaderAcceptEncoding, "gzip")
		}
		start := time.Now()
		w, err := cl.do(&req, &resp)
		d := time.Since(start)
		if err != nil || resp.StatusCode() != fasthttp.StatusOK {
			r.errors++
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if measuring.Load() {
			r.polls++
			r.lat = append(r.lat, d)
			r.read += w.read
		}
	}
	return r
}

// phaseTotals gathers one server's phases.
type phaseTotals struct {
	rates      []float64
	lat        []time.Duration
	polls      int
	read       int64
	errors     int
	cpu        float64
	cpuUnknown bool
}

func (t *phaseTotals) add(r phaseResult) {
	t.rates = append(t.rates, float64(r.polls)/r.seconds)
	t.cpu += r.cpu
	t.cpuUnknown = t.cpuUnknown || r.cpu < 0
	t.lat = append(t.lat, r.lat...)
	t.polls += r.polls
	t.read += r.read
	t.errors += r.errors
}

func (t *phaseTotals) report() targetReport {
	r := targetReport{
		PollsPerSec: t.rates, Median: median(append([]float64(nil), t.rates...)),
		LatencyP50MS: ms(percentile(t.lat, 50)), LatencyP99MS: ms(percentile(t.lat, 99)),
		Errors: t.errors,
	}
	if t.polls > 0 {
		r.ResponseBytes = float64(t.read) / float64(t.polls)
		if !t.cpuUnknown {
			r.CPUPerPollUS = t.cpu / float64(t.polls) * 1e6
		}
	}
	return r
}

// constantAnswer is the poll answer the constant server repeats: its
// headers but Content-Length and Connection, which fasthttp writes itself,
// and its body as sent.
type constantAnswer struct {
	Headers [][2]string `json:"headers"`
	Body    []byte      `json:"body"`
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
		Concurrency: 16_000, ReadBufferSize: 8 << 10, MaxRequestBodySize: 64 << 10,
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

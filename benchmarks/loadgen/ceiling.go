package main

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
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
	var now atomic.Int64
	path, sendersDone, err := keepBusy(cfg, stream, &now, stop, &bg)
	if err != nil {
		return nil, err
	}
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
	return runRounds(cfg, cs.addr, path, &now, cpu), nil
}

// keepBusy starts, until stop closes, senders tapping the stream and a
// pacer polling it to keep now at the stream's newest second. It returns
// the stream's poll path and a channel that reports the senders' end.
func keepBusy(cfg *config, stream string, now *atomic.Int64, stop <-chan struct{}, bg *sync.WaitGroup) (string, <-chan error, error) {
	sendersDone := make(chan error, 1)
	bg.Go(func() {
		// What these senders send is not measured; it keeps the answers busy.
		_, _, _, err := runSenders(cfg, stream, "c", cfg.ceiling+time.Minute, stop)
		sendersDone <- err
	})
	path, err := pace(cfg, stream, now, pacerInterval, stop, bg)
	return path, sendersDone, err
}

// runRounds runs one unmeasured phase against each server, then the
// measured rounds, and reports them.
func runRounds(cfg *config, constAddr, path string, now *atomic.Int64, cpu map[string]func() (float64, error)) *ceilingReport {
	r := &ceilingReport{Mode: cfg.mode, Conns: cfg.conns, Rounds: cfg.rounds}
	phase := cfg.ceiling / time.Duration(2*cfg.rounds)
	r.PhaseSeconds = phase.Seconds()
	// A fresh process serves its first connections slowly (goroutine
	// stacks, pools, page faults).
	for _, addr := range []string{cfg.addr, constAddr} {
		runPhase(addr, path, cfg.conns, cfg.keepAlive(), phase, now, cpu[addr])
	}
	var emo, con phaseTotals
	for round := range cfg.rounds {
		// Alternate which goes first, so a drift of the machine's load
		// over the run weighs on both alike.
		first, second := cfg.addr, constAddr
		if round%2 == 1 {
			first, second = second, first
		}
		for _, addr := range []string{first, second} {
			res := runPhase(addr, path, cfg.conns, cfg.keepAlive(), phase, now, cpu[addr])
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
	return r
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
		got = append(got, sized{answerOf(&resp), w.read})
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

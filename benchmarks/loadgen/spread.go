package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The spread stage measures what a real audience's shape costs the server:
// many viewers, each on its own keep-alive connection, each polling every
// next_ms with its own jitter, so every poll pays a full wakeup of an idle
// connection (the ceiling stage's back-to-back polls never do). It runs
// the same audience against emojicast and against the constant server in
// alternating phases and reads both processes' CPU time and resident
// memory from /proc.

// spreadReport compares the two servers under the spread load.
type spreadReport struct {
	Viewers      int     `json:"viewers"`
	Idle         bool    `json:"idle"`
	Rounds       int     `json:"rounds"`
	PhaseSeconds float64 `json:"phase_seconds"`
	// NextMS is the next_ms of the answer the constant server repeats:
	// the interval its viewers keep.
	NextMS    int64        `json:"next_ms"`
	Emojicast spreadTarget `json:"emojicast"`
	Constant  spreadTarget `json:"constant"`
	// CPURatio and RSSRatio are emojicast's medians over the constant
	// server's: above 1, emojicast costs more per viewer.
	CPURatio float64      `json:"cpu_ratio"`
	RSSRatio float64      `json:"rss_ratio"`
	Reach    *reachReport `json:"reach,omitempty"`
}

// spreadTarget is one server's phases, one entry per phase in round order.
type spreadTarget struct {
	PID int `json:"pid"`
	// CPUPerViewerUS is server CPU per viewer-second, in microseconds.
	CPUPerViewerUS    []float64 `json:"cpu_per_viewer_us"`
	MedianCPUUS       float64   `json:"median_cpu_per_viewer_us"`
	CPUPerPollUS      float64   `json:"median_cpu_per_poll_us"`
	PollsPerViewerSec float64   `json:"median_polls_per_viewer_sec"`
	// RSSPerViewer is the server's resident memory at the end of a phase,
	// all viewers connected, less its resident memory before the stage's
	// first phase, per viewer.
	RSSPerViewer       []float64 `json:"rss_per_viewer_bytes"`
	MedianRSSPerViewer float64   `json:"median_rss_per_viewer_bytes"`
	BaseRSS            int64     `json:"base_rss_bytes"`
	Errors             int       `json:"errors"`
}

// reachReport is how long the first reaction after a quiet spell takes to
// reach the audience, from the 202 of its send to each viewer's first poll
// that shows its second.
type reachReport struct {
	QuietSeconds float64 `json:"quiet_seconds"` // the stream's age with no reaction, at the send
	NextMS       int64   `json:"next_ms"`       // the interval viewers were last told before the send (median)
	HalfMS       float64 `json:"half_ms"`
	AllMS        float64 `json:"all_ms"` // 0 when not every viewer saw it in time
	Saw          int     `json:"saw"`
	Viewers      int     `json:"viewers"`
	Error        string  `json:"error,omitempty"` // why it could not be measured
}

// spreadSettle is how long the servers get to close the last phase's
// connections before the next phase starts.
const spreadSettle = time.Second

// runSpread runs the spread stage on a stream of its own: busy (senders
// tapping) or, with -spread-idle, quiet.
func runSpread(cfg *config, stream string) (*spreadReport, error) {
	stop := make(chan struct{})
	var bg sync.WaitGroup
	defer func() {
		close(stop)
		bg.Wait()
	}()
	var now atomic.Int64
	born := time.Now()
	var path string
	var answer constantAnswer
	var err error
	if cfg.spreadIdle {
		if path, err = pace(cfg, stream, &now, time.Second, stop, &bg); err != nil {
			return nil, err
		}
		answer, err = captureQuiet(cfg, path, &now)
	} else {
		var sendersDone <-chan error
		if path, sendersDone, err = keepBusy(cfg, stream, &now, stop, &bg); err != nil {
			return nil, err
		}
		answer, err = capture(cfg, path, &now, sendersDone)
	}
	if err != nil {
		return nil, err
	}
	answer.KeepIdleBuffers = cfg.constKeepBuffers
	cs, err := startConstant(answer)
	if err != nil {
		return nil, err
	}
	defer cs.stop()
	pid := cfg.pid
	if pid == 0 {
		if pid, err = listenerPID(cfg.addr); err != nil {
			return nil, fmt.Errorf("cannot find the process serving %s (give -pid): %w", cfg.addr, err)
		}
	}
	r := &spreadReport{Viewers: cfg.spread, Idle: cfg.spreadIdle, Rounds: cfg.spreadRounds,
		PhaseSeconds: cfg.spreadPhase.Seconds()}
	r.NextMS, _ = peekInt(gunzipped(answer.Body, answer.Headers), `"next_ms":`)
	targets := []*spreadTarget{{PID: pid}, {PID: cs.cmd.Process.Pid}}
	addrs := []string{cfg.addr, cs.addr}
	for _, t := range targets {
		if t.BaseRSS, err = procRSS(t.PID); err != nil {
			return nil, err
		}
	}
	var phases [2][]spreadPhase
	for round := range cfg.spreadRounds {
		// Alternate which goes first, so a drift of the machine's load
		// weighs on both alike.
		for k := range 2 {
			i := (k + round) % 2
			p, err := runSpreadPhase(cfg, addrs[i], path, now.Load(), r.NextMS, targets[i].PID, nil)
			if err != nil {
				return nil, err
			}
			phases[i] = append(phases[i], p)
		}
	}
	for i, t := range targets {
		t.summarize(phases[i], cfg.spread)
	}
	r.Emojicast, r.Constant = *targets[0], *targets[1]
	r.CPURatio = ratio(r.Emojicast.MedianCPUUS, r.Constant.MedianCPUUS)
	r.RSSRatio = ratio(r.Emojicast.MedianRSSPerViewer, r.Constant.MedianRSSPerViewer)
	if cfg.spreadIdle {
		// The rounds' figures stand without it.
		if r.Reach, err = measureReach(cfg, stream, path, &now, born, pid); err != nil {
			r.Reach = &reachReport{Error: err.Error()}
		}
	}
	return r, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// spreadPhase is one phase against one server.
type spreadPhase struct {
	viewers int
	seconds float64
	cpu     float64 // server CPU seconds while measuring
	polls   int
	errors  int
	rss     int64 // server resident bytes at the end, viewers connected
}

func (t *spreadTarget) summarize(phases []spreadPhase, viewers int) {
	var perPoll, rate []float64
	for _, p := range phases {
		vs := float64(p.viewers) * p.seconds
		t.CPUPerViewerUS = append(t.CPUPerViewerUS, p.cpu/vs*1e6)
		t.RSSPerViewer = append(t.RSSPerViewer, float64(p.rss-t.BaseRSS)/float64(viewers))
		rate = append(rate, float64(p.polls)/vs)
		if p.polls > 0 {
			perPoll = append(perPoll, p.cpu/float64(p.polls)*1e6)
		}
		t.Errors += p.errors
	}
	t.MedianCPUUS = median(slices.Clone(t.CPUPerViewerUS))
	t.MedianRSSPerViewer = median(slices.Clone(t.RSSPerViewer))
	t.CPUPerPollUS = median(perPoll)
	t.PollsPerViewerSec = median(rate)
}

// phaseTiming is when a spread phase's viewers start and how long they
// warm up before the measurement: each starts at a uniform moment of one
// poll interval (at least a second, so thousands do not dial at once),
// which is the phase a viewer keeps in life, and then polls once more
// before the server is measured.
func phaseTiming(nextMS int64) (startWithin, warm time.Duration) {
	interval := time.Duration(max(nextMS, 1)) * time.Millisecond
	startWithin = max(interval, time.Second)
	return startWithin, startWithin + interval + interval/10
}

// runSpreadPhase has cfg.spread viewers poll addr for one phase and
// measures the server process pid over cfg.spreadPhase after the warm-up.
// during, when set, runs after the measurement with the viewers still
// polling.
func runSpreadPhase(cfg *config, addr, path string, cursor, nextMS int64, pid int, during func([]*spreadViewer)) (spreadPhase, error) {
	stop := make(chan struct{})
	var measuring atomic.Bool
	viewers := make([]*spreadViewer, cfg.spread)
	startWithin, warm := phaseTiming(nextMS)
	var wg sync.WaitGroup
	for i := range viewers {
		v := &spreadViewer{cl: newClient(addr, true), path: path, cursor: cursor,
			rnd: rand.New(rand.NewPCG(uint64(i), uint64(cursor))), measuring: &measuring}
		viewers[i] = v
		wg.Go(func() { v.run(startWithin, stop) })
	}
	defer func() {
		close(stop)
		wg.Wait()
		time.Sleep(spreadSettle)
	}()
	time.Sleep(warm)
	cpu0, err := procCPU(pid)
	if err != nil {
		return spreadPhase{}, err
	}
	measuring.Store(true)
	start := time.Now()
	time.Sleep(cfg.spreadPhase)
	measuring.Store(false)
	p := spreadPhase{viewers: len(viewers), seconds: time.Since(start).Seconds()}
	cpu1, err := procCPU(pid)
	if err != nil {
		return spreadPhase{}, err
	}
	if p.rss, err = procRSS(pid); err != nil {
		return spreadPhase{}, err
	}
	p.cpu = cpu1 - cpu0
	for _, v := range viewers {
		p.polls += int(v.polls.Load())
		p.errors += int(v.errors.Load())
	}
	if during != nil {
		during(viewers)
	}
	return p, nil
}

// spreadViewer is one viewer of the spread stage: the poll loop of
// docs/api.md's clients (cursor = max(cursor, now), next_ms later with
// +-10% jitter) and nothing it does not need, so that ten thousand of them
// leave the cores to the servers.
type spreadViewer struct {
	cl     *client
	req    fasthttp.Request
	resp   fasthttp.Response
	rnd    *rand.Rand
	path   string
	uri    []byte
	cursor int64

	measuring *atomic.Bool
	polls     atomic.Int64 // answered while measuring
	errors    atomic.Int64 // failed polls and unreadable answers, warm-up included
	// firstSeen is when a poll first listed a second (Unix ns); 0 before.
	firstSeen atomic.Int64
	nextMS    atomic.Int64 // the last next_ms answered
}

func (v *spreadViewer) run(startWithin time.Duration, stop <-chan struct{}) {
	defer v.cl.close()
	if !sleep(time.Duration(v.rnd.Int64N(int64(startWithin))), stop) {
		return
	}
	for {
		next := v.poll()
		if !sleep(jitter(v.rnd, next, 0.1), stop) {
			return
		}
	}
}

// poll polls once and returns next_ms as the answer says, or a second
// after an error.
func (v *spreadViewer) poll() time.Duration {
	v.uri = strconv.AppendInt(append(append(v.uri[:0], v.path...), "?since="...), v.cursor, 10)
	v.req.Reset()
	v.req.SetRequestURIBytes(v.uri)
	v.req.Header.Set(fasthttp.HeaderAcceptEncoding, "gzip")
	_, err := v.cl.do(&v.req, &v.resp)
	measuring := v.measuring.Load()
	if err != nil || v.resp.StatusCode() != fasthttp.StatusOK {
		v.errors.Add(1)
		return time.Second
	}
	body := v.resp.Body()
	if bytes.Equal(v.resp.Header.ContentEncoding(), []byte("gzip")) {
		if body, err = v.resp.BodyGunzip(); err != nil {
			v.errors.Add(1)
			return time.Second
		}
	}
	now, ok1 := peekInt(body, `"now":`)
	next, ok2 := peekInt(body, `"next_ms":`)
	if !ok1 || !ok2 || next <= 0 {
		v.errors.Add(1)
		return time.Second
	}
	if measuring {
		v.polls.Add(1)
	}
	if bytes.Contains(body, []byte(`"buckets":[{`)) && v.firstSeen.Load() == 0 {
		v.firstSeen.Store(time.Now().UnixNano())
	}
	v.cursor = max(v.cursor, now)
	v.nextMS.Store(next)
	return time.Duration(next) * time.Millisecond
}

// peekInt reads the decimal integer after key in a JSON body, without
// parsing the rest: the spread stage's viewers read two fields.
func peekInt(body []byte, key string) (int64, bool) {
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return 0, false
	}
	digits := body[i+len(key):]
	n := 0
	for n < len(digits) && digits[n] >= '0' && digits[n] <= '9' {
		n++
	}
	x, err := strconv.ParseInt(string(digits[:n]), 10, 64)
	return x, err == nil
}

// gunzipped returns a captured answer's body as JSON.
func gunzipped(body []byte, headers [][2]string) []byte {
	for _, h := range headers {
		if h[0] == fasthttp.HeaderContentEncoding && h[1] == "gzip" {
			if b, err := fasthttp.AppendGunzipBytes(nil, body); err == nil {
				return b
			}
		}
	}
	return body
}

// pace has a pacer poll the stream every interval until stop closes, to
// keep now at the stream's newest second (and the stream served), and
// returns the stream's poll path.
func pace(cfg *config, stream string, now *atomic.Int64, every time.Duration, stop <-chan struct{}, bg *sync.WaitGroup) (string, error) {
	pacer := newViewer("pacer", newClient(cfg.addr, true), newRegistry(), 7, false)
	if err := pacer.watch(stream); err != nil {
		return "", err
	}
	now.Store(pacer.cursor)
	bg.Go(func() {
		defer pacer.cl.close()
		for {
			pacer.poll()
			now.Store(pacer.cursor)
			pacer.polls = pacer.polls[:0]
			if !sleep(every, stop) {
				return
			}
		}
	})
	return pacer.pollPath, nil
}

// captureQuiet waits until the stream is synced and quiet (an answer with
// no seconds and a next_ms past the unsynced 250) and returns that answer.
func captureQuiet(cfg *config, path string, now *atomic.Int64) (constantAnswer, error) {
	cl := newClient(cfg.addr, true)
	defer cl.close()
	var req fasthttp.Request
	var resp fasthttp.Response
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		req.Reset()
		req.SetRequestURI(path + "?since=" + strconv.FormatInt(now.Load(), 10))
		req.Header.Set(fasthttp.HeaderAcceptEncoding, "gzip")
		if _, err := cl.do(&req, &resp); err != nil || resp.StatusCode() != fasthttp.StatusOK {
			continue
		}
		a := answerOf(&resp)
		body := gunzipped(a.Body, a.Headers)
		if next, ok := peekInt(body, `"next_ms":`); ok && next > 250 && bytes.Contains(body, []byte(`"buckets":[]`)) {
			return a, nil
		}
	}
	return constantAnswer{}, fmt.Errorf("%s did not answer as a synced quiet stream within 20s", path)
}

// measureReach runs the audience against emojicast once more, sends one
// tap once it is measured, and times the tap's second reaching the viewers.
func measureReach(cfg *config, stream, path string, now *atomic.Int64, born time.Time, pid int) (*reachReport, error) {
	s := newSender("reach", newClient(cfg.addr, true), 99)
	defer s.cl.close()
	if err := s.watch(stream); err != nil {
		return nil, err
	}
	var rr *reachReport
	var sendErr error
	// The interval viewers poll at is the stream's, now: a control that
	// grows it over a quiet spell has grown it by this phase.
	cl := newClient(cfg.addr, true)
	defer cl.close()
	var req fasthttp.Request
	var resp fasthttp.Response
	req.SetRequestURI(path + "?since=" + strconv.FormatInt(now.Load(), 10))
	req.Header.Set(fasthttp.HeaderAcceptEncoding, "gzip")
	if _, err := cl.do(&req, &resp); err != nil || resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("cannot read the stream's next_ms: %v", err)
	}
	a := answerOf(&resp)
	nextMS, _ := peekInt(gunzipped(a.Body, a.Headers), `"next_ms":`)
	_, err := runSpreadPhase(cfg, cfg.addr, path, now.Load(), nextMS, pid, func(viewers []*spreadViewer) {
		// A growing quiet interval has grown since the phase began.
		told := make([]float64, len(viewers))
		for i, v := range viewers {
			told[i] = float64(v.nextMS.Load())
		}
		rr = &reachReport{QuietSeconds: time.Since(born).Seconds(), NextMS: int64(median(told)), Viewers: len(viewers)}
		// The sender's connection may have outlived the server's idle
		// timeout while the audience warmed up: a failed send dials again.
		for try := 0; try < 3 && len(s.sends) == 0; try++ {
			s.sendOnce(1)
		}
		if len(s.sends) != 1 {
			sendErr = fmt.Errorf("the reaction was not accepted (%d errors, %d rate-limited)", s.errors, s.limited)
			return
		}
		accepted := s.sends[0].accepted
		// A viewer may wait out its whole interval; the second is
		// published up to 2 s after the send.
		waitFor(func() bool { return seenBy(viewers) == len(viewers) }, 2*time.Duration(nextMS)*time.Millisecond+5*time.Second)
		rr.HalfMS, rr.AllMS, rr.Saw = reach(viewers, accepted)
	})
	if err == nil {
		err = sendErr
	}
	return rr, err
}

func seenBy(viewers []*spreadViewer) int {
	n := 0
	for _, v := range viewers {
		if v.firstSeen.Load() != 0 {
			n++
		}
	}
	return n
}

// reach returns the time from accepted to the moment half the viewers, and
// all of them, had seen a second, and how many saw one. all is 0 if some
// never did; half is 0 if fewer than half did.
func reach(viewers []*spreadViewer, accepted time.Time) (halfMS, allMS float64, saw int) {
	var ds []time.Duration
	for _, v := range viewers {
		if ns := v.firstSeen.Load(); ns != 0 {
			ds = append(ds, time.Unix(0, ns).Sub(accepted))
		}
	}
	saw = len(ds)
	slices.Sort(ds)
	if half := (len(viewers) + 1) / 2; saw >= half && half > 0 {
		halfMS = ms(ds[half-1])
	}
	if saw == len(viewers) && saw > 0 {
		allMS = ms(ds[saw-1])
	}
	return halfMS, allMS, saw
}

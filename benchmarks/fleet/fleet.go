package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// fleet is one run: the processes it started and where it keeps them.
type fleet struct {
	cfg       *config
	dir       string
	procs     []*proc
	stopOnce  sync.Once
	rdb       *redis.Client
	accessLog string
}

// genWarmup is each load generator's own warm-up: senders tap that long
// before it measures, so every stream is busy when the window opens.
const genWarmup = 8 * time.Second

// snapshot is what the run reads at each end of the measured window.
type snapshot struct {
	at       time.Time
	cpu      map[string]float64 // process name: CPU seconds
	cmdstats map[string]cmdstat
	total    int64 // total_commands_processed
	nodes    map[string]map[string]float64
}

type cmdstat struct {
	calls int64
	usec  int64
}

func (f *fleet) run() (*report, error) {
	c := f.cfg
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	bin, err := f.build("emojicast", filepath.Join(root, "cmd", "emojicast"))
	if err != nil {
		return nil, err
	}
	gen, err := f.build("loadgen", filepath.Join(root, "benchmarks", "loadgen"))
	if err != nil {
		return nil, err
	}
	r := &report{Viewers: c.viewers, Streams: c.streams, SendersPerStream: c.senders, Pull: c.pull, Push: c.push}
	pulls, pushes, err := f.startNodes(bin, r)
	if err != nil {
		return nil, err
	}
	edge, err := f.startEdge(root, addrs(pulls), addrs(pushes))
	if err != nil {
		return nil, err
	}
	gens, err := f.startAudience(gen, edge.addr)
	if err != nil {
		return nil, err
	}
	if err := f.measure(r, pulls, pushes, gens); err != nil {
		return nil, err
	}
	for _, g := range gens {
		if err := r.addGenerator(g); err != nil {
			return nil, err
		}
	}
	r.finish()
	return r, nil
}

func addrs(ps []*proc) []string {
	var a []string
	for _, p := range ps {
		a = append(a, p.addr)
	}
	return a
}

// startNodes starts Redis, the pull nodes and the push nodes, and measures
// what the idle nodes cost Redis and CPU: the part of each figure that
// grows with nodes, not with streams.
func (f *fleet) startNodes(bin string, r *report) (pulls, pushes []*proc, err error) {
	rs, err := f.startRedis()
	if err != nil {
		return nil, nil, err
	}
	redisURL := "redis://" + rs.addr
	for i := range f.cfg.pull {
		p, err := f.startNode(bin, "pull", i+1, redisURL)
		if err != nil {
			return nil, nil, err
		}
		pulls = append(pulls, p)
	}
	pullIdle, err := f.idle()
	if err != nil {
		return nil, nil, err
	}
	for i := range f.cfg.push {
		p, err := f.startNode(bin, "push", i+1, redisURL)
		if err != nil {
			return nil, nil, err
		}
		pushes = append(pushes, p)
	}
	bothIdle, err := f.idle()
	if err != nil {
		return nil, nil, err
	}
	r.IdleRedisPerPull = pullIdle.RedisCommandsPerSec / float64(f.cfg.pull)
	r.IdleRedisPerPush = (bothIdle.RedisCommandsPerSec - pullIdle.RedisCommandsPerSec) / float64(f.cfg.push)
	r.IdleCores = bothIdle.Cores
	return pulls, pushes, nil
}

// generator is one load generator process and the file its report goes to.
type generator struct {
	p   *proc
	out *os.File
}

// startAudience starts one generator process per stream, so no process
// holds more than its share of the connections.
func (f *fleet) startAudience(gen, edge string) ([]generator, error) {
	c := f.cfg
	prefix := "fleet" + strconv.FormatInt(time.Now().Unix(), 36)
	// Senders tap past the end of the window, whatever the time their
	// viewers took to watch.
	duration := c.warmup + c.window - genWarmup + 5*time.Second
	var gens []generator
	for i := range c.streams {
		n := c.viewers / c.streams
		if i < c.viewers%c.streams {
			n++
		}
		out, err := os.Create(filepath.Join(f.dir, fmt.Sprintf("loadgen-%02d.json", i)))
		if err != nil {
			return nil, err
		}
		p, err := f.start(fmt.Sprintf("loadgen-%02d", i), out, gen, "-addr", edge,
			"-viewers", strconv.Itoa(n), "-senders", strconv.Itoa(c.senders), "-ceiling", "0",
			"-warmup", genWarmup.String(), "-duration", duration.String(), "-drain", "15s",
			"-stream", fmt.Sprintf("%s-%02d", prefix, i), "-json")
		if err != nil {
			out.Close()
			return nil, err
		}
		gens = append(gens, generator{p, out})
	}
	return gens, nil
}

// measure waits out the warm-up, then reads every figure over the window.
func (f *fleet) measure(r *report, pulls, pushes []*proc, gens []generator) error {
	time.Sleep(f.cfg.warmup)
	for _, g := range gens {
		select {
		case <-g.p.exited:
			return fmt.Errorf("%s exited during the warm-up: %v (see %s.log)", g.p.name, g.p.err, g.p.name)
		default:
		}
	}
	before, err := f.snapshot(pulls, pushes)
	if err != nil {
		return err
	}
	time.Sleep(f.cfg.window)
	after, err := f.snapshot(pulls, pushes)
	if err != nil {
		return err
	}
	r.WindowSeconds = after.at.Sub(before.at).Seconds()
	r.fromSnapshots(before, after, pulls, pushes)
	if err := r.fromAccessLog(f.accessLog, before.at, after.at); err != nil {
		return err
	}
	r.EdgeHitRatio = 1 - r.OriginPollsPerSec/r.EdgePollsPerSec
	r.Finished = time.Now().UTC()
	return nil
}

// repoRoot is the module's directory: the run builds and reads the tree it
// is run from.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run fleet from the emojicast repository")
	}
	return filepath.Dir(mod), nil
}

// idleWindow is how long the idle costs are measured.
const idleWindow = 5 * time.Second

// idle measures Redis and the processes while nobody uses the fleet.
func (f *fleet) idle() (*report, error) {
	time.Sleep(time.Second) // past the nodes' start-up
	a, err := f.snapshot(nil, nil)
	if err != nil {
		return nil, err
	}
	time.Sleep(idleWindow)
	b, err := f.snapshot(nil, nil)
	if err != nil {
		return nil, err
	}
	r := &report{WindowSeconds: b.at.Sub(a.at).Seconds()}
	r.fromSnapshots(a, b, nil, nil)
	return r, nil
}

func (f *fleet) snapshot(pulls, pushes []*proc) (*snapshot, error) {
	s := &snapshot{at: time.Now(), cpu: map[string]float64{}, nodes: map[string]map[string]float64{}}
	for _, p := range f.procs {
		select {
		case <-p.exited:
			continue // a finished generator
		default:
		}
		if v, err := cpuSeconds(p.cmd.Process.Pid); err == nil {
			s.cpu[p.name] = v
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := f.rdb.Info(ctx, "commandstats", "stats").Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO: %w", err)
	}
	s.cmdstats = map[string]cmdstat{}
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			s.total, _ = strconv.ParseInt(v, 10, 64)
		}
		name, rest, ok := strings.Cut(line, ":")
		cmd, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		var cs cmdstat
		for kv := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				cs.calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec":
				cs.usec, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		s.cmdstats[cmd] = cs
	}
	for _, p := range append(append([]*proc{}, pulls...), pushes...) {
		m, err := metrics(p.url)
		if err != nil {
			return nil, fmt.Errorf("%s metrics: %w", p.name, err)
		}
		s.nodes[p.name] = m
	}
	return s, nil
}

// report is one run's figures; every rate is over the measured window.
type report struct {
	Viewers          int     `json:"viewers"`
	Streams          int     `json:"streams"`
	SendersPerStream int     `json:"senders_per_stream"`
	Pull             int     `json:"pull"`
	Push             int     `json:"push"`
	WindowSeconds    float64 `json:"window_seconds"`

	// At the edge, from its access log: polls answered, and how.
	EdgePollsPerSec float64        `json:"edge_polls_per_sec"`
	CacheStatus     map[string]int `json:"cache_status"`
	// The hit ratio: the share of the edge's polls that never reached
	// the origin (1 - origin polls / edge polls). CacheHitRatio is what
	// the edge's log says: answers from its cache (HIT, and STALE or
	// UPDATING while one request refreshes the entry); it is higher, as
	// the refreshes nginx makes in the background are not logged.
	EdgeHitRatio     float64 `json:"edge_hit_ratio"`
	CacheHitRatio    float64 `json:"cache_hit_ratio"`
	EdgeBytesPerPoll float64 `json:"edge_bytes_per_poll"`

	// At the origin: polls the pull nodes answered (their request counters).
	OriginPollsPerSec       float64   `json:"origin_polls_per_sec"`
	OriginPollsPerStreamSec float64   `json:"origin_polls_per_stream_sec"`
	PullStreams             []float64 `json:"pull_streams"` // streams each pull node serves
	// Sends the push nodes accepted, and which nodes took each stream.
	SendsPerSec float64   `json:"sends_per_sec"`
	TapsPerSec  float64   `json:"taps_per_sec"`
	PushStreams []float64 `json:"push_streams"` // streams each push node holds

	// Redis, from INFO: every command run (script bodies' calls included),
	// the scripts called, and the top-level commands.
	RedisCommandsPerSec float64            `json:"redis_commands_per_sec"`
	RedisTopLevelPerSec float64            `json:"redis_top_level_per_sec"`
	RedisByCommand      map[string]float64 `json:"redis_by_command"`
	RedisUsecPerSec     float64            `json:"redis_usec_per_sec"`
	// Redis commands/s of one node with nobody watching, measured before
	// the load, and the CPU each process then used.
	IdleRedisPerPull float64            `json:"idle_redis_per_pull"`
	IdleRedisPerPush float64            `json:"idle_redis_per_push"`
	IdleCores        map[string]float64 `json:"idle_cores,omitempty"`

	// CPU each process used, in cores (CPU seconds per second).
	Cores map[string]float64 `json:"cores"`

	// The audience, from the load generators' own reports.
	ViewerPollsPerSec float64   `json:"viewer_polls_per_sec"`
	PollErrors        int       `json:"poll_errors"`
	Gaps              int       `json:"gaps"`
	TapsAccepted      int64     `json:"taps_accepted"`
	Counted           int64     `json:"counted"`
	SendErrors        int       `json:"send_errors"`
	RateLimited       int       `json:"rate_limited"`
	Delivered         float64   `json:"delivered"`
	WorstViewer       float64   `json:"delivered_worst_viewer"`
	Mismatches        int       `json:"mismatches"`
	FreshFirstP99MS   float64   `json:"freshness_first_p99_ms_worst_stream"`
	Finished          time.Time `json:"finished"`

	worst float64
}

func (r *report) fromSnapshots(a, b *snapshot, pulls, pushes []*proc) {
	w := r.WindowSeconds
	r.Cores = map[string]float64{}
	for name, v := range b.cpu {
		if v0, ok := a.cpu[name]; ok {
			r.Cores[name] = (v - v0) / w
		}
	}
	r.RedisByCommand = map[string]float64{}
	for cmd, cs := range b.cmdstats {
		d := cs.calls - a.cmdstats[cmd].calls
		if d == 0 {
			continue
		}
		r.RedisByCommand[cmd] = float64(d) / w
		r.RedisCommandsPerSec += float64(d) / w
		r.RedisUsecPerSec += float64(cs.usec-a.cmdstats[cmd].usec) / w
	}
	r.RedisTopLevelPerSec = float64(b.total-a.total) / w
	for _, p := range pulls {
		d := sumPrefix(b.nodes[p.name], `emojicast_http_requests_total{route="reactions"`) -
			sumPrefix(a.nodes[p.name], `emojicast_http_requests_total{route="reactions"`)
		r.OriginPollsPerSec += d / w
		r.PullStreams = append(r.PullStreams, b.nodes[p.name]["emojicast_pull_active_streams"])
	}
	if r.Streams > 0 {
		r.OriginPollsPerStreamSec = r.OriginPollsPerSec / float64(r.Streams)
	}
	for _, p := range pushes {
		m0, m1 := a.nodes[p.name], b.nodes[p.name]
		r.SendsPerSec += (m1[`emojicast_http_requests_total{route="send",status="202"}`] -
			m0[`emojicast_http_requests_total{route="send",status="202"}`]) / w
		r.TapsPerSec += (m1["emojicast_push_taps_accepted_total"] - m0["emojicast_push_taps_accepted_total"]) / w
		r.PushStreams = append(r.PushStreams, m1["emojicast_push_active_streams"])
	}
}

// fromAccessLog reads the edge's answers to polls within the window.
// Its lines are deploy/nginx.conf's log_format edge:
// "$msec $request_method $uri $arg_since $status $upstream_cache_status $bytes_sent $request_length".
func (r *report) fromAccessLog(path string, from, to time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r.CacheStatus = map[string]int{}
	lo, hi := float64(from.UnixMilli())/1000, float64(to.UnixMilli())/1000
	polls, bytesSent := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := bytes.Fields(sc.Bytes())
		if len(fl) != 8 || string(fl[1]) != "GET" || !bytes.HasSuffix(fl[2], []byte("/reactions")) {
			continue
		}
		t, err := strconv.ParseFloat(string(fl[0]), 64)
		if err != nil || t < lo || t >= hi {
			continue
		}
		polls++
		r.CacheStatus[string(fl[5])]++
		n, _ := strconv.Atoi(string(fl[6]))
		bytesSent += n
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if polls == 0 {
		return fmt.Errorf("no polls in the edge's access log within the window")
	}
	r.EdgePollsPerSec = float64(polls) / r.WindowSeconds
	r.EdgeBytesPerPoll = float64(bytesSent) / float64(polls)
	// What the edge answered without the origin: fresh hits, and stale
	// answers given while one request refreshed the entry.
	served := r.CacheStatus["HIT"] + r.CacheStatus["UPDATING"] + r.CacheStatus["STALE"]
	r.CacheHitRatio = float64(served) / float64(polls)
	return nil
}

// genReport is the part of a load generator's JSON report the run sums.
type genReport struct {
	Clients struct {
		PollsPerSec     float64 `json:"polls_per_sec"`
		PollErrors      int     `json:"poll_errors"`
		Gaps            int     `json:"gaps"`
		TapsAccepted    int64   `json:"taps_accepted"`
		Counted         int64   `json:"counted"`
		SendErrors      int     `json:"send_errors"`
		RateLimited     int     `json:"rate_limited"`
		WorstViewer     float64 `json:"delivered_worst_viewer"`
		Mismatches      int     `json:"mismatches"`
		FreshFirstP99MS float64 `json:"freshness_first_p99_ms"`
	} `json:"clients"`
}

// addGenerator waits for a generator to finish and adds its report.
func (r *report) addGenerator(gen generator) error {
	select {
	case <-gen.p.exited:
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("%s did not finish", gen.p.name)
	}
	gen.out.Close()
	if gen.p.err != nil {
		return fmt.Errorf("%s failed: %v (see %s.log)", gen.p.name, gen.p.err, gen.p.name)
	}
	b, err := os.ReadFile(gen.out.Name())
	if err != nil {
		return err
	}
	var g genReport
	if err := json.Unmarshal(b, &g); err != nil {
		return fmt.Errorf("unreadable report of %s: %w", gen.p.name, err)
	}
	c := g.Clients
	r.ViewerPollsPerSec += c.PollsPerSec
	r.PollErrors += c.PollErrors
	r.Gaps += c.Gaps
	r.TapsAccepted += c.TapsAccepted
	r.Counted += c.Counted
	r.SendErrors += c.SendErrors
	r.RateLimited += c.RateLimited
	r.Mismatches += c.Mismatches
	r.FreshFirstP99MS = max(r.FreshFirstP99MS, c.FreshFirstP99MS)
	if r.worst == 0 || c.WorstViewer < r.worst {
		r.worst = c.WorstViewer
	}
	return nil
}

func (r *report) finish() {
	if r.TapsAccepted > 0 {
		r.Delivered = float64(r.Counted) / float64(r.TapsAccepted)
	}
	r.WorstViewer = r.worst
}

func (r *report) print(w *os.File) {
	fmt.Fprintf(w, "fleet: %d viewers over %d streams (%d senders each) through nginx, %d pull + %d push processes, one redis-server; %.1f s measured\n\n",
		r.Viewers, r.Streams, r.SendersPerStream, r.Pull, r.Push, r.WindowSeconds)
	fmt.Fprintf(w, "edge      %.0f polls/s answered (viewers report %.0f/s), %.0f B each; hit ratio %.4f (by cache status %.4f: %v)\n",
		r.EdgePollsPerSec, r.ViewerPollsPerSec, r.EdgeBytesPerPoll, r.EdgeHitRatio, r.CacheHitRatio, r.CacheStatus)
	fmt.Fprintf(w, "origin    %.1f polls/s (%.2f per stream-second); streams per pull node %v\n",
		r.OriginPollsPerSec, r.OriginPollsPerStreamSec, r.PullStreams)
	fmt.Fprintf(w, "sends     %.0f/s accepted, %.0f taps/s; streams per push node %v\n", r.SendsPerSec, r.TapsPerSec, r.PushStreams)
	fmt.Fprintf(w, "redis     %.0f commands/s (scripts' calls included; %.0f top-level), %.0f ms of command time a second\n",
		r.RedisCommandsPerSec, r.RedisTopLevelPerSec, r.RedisUsecPerSec/1000)
	cmds := make([]string, 0, len(r.RedisByCommand))
	for c := range r.RedisByCommand {
		cmds = append(cmds, c)
	}
	sort.Slice(cmds, func(i, j int) bool { return r.RedisByCommand[cmds[i]] > r.RedisByCommand[cmds[j]] })
	for _, c := range cmds {
		fmt.Fprintf(w, "            %-12s %8.1f/s\n", c, r.RedisByCommand[c])
	}
	fmt.Fprintf(w, "idle      redis %.1f commands/s per pull node, %.1f per push node, with nobody watching\n", r.IdleRedisPerPull, r.IdleRedisPerPush)
	names := make([]string, 0, len(r.Cores))
	for n := range r.Cores {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprint(w, "cores    ")
	for _, n := range names {
		fmt.Fprintf(w, " %s %.3f", n, r.Cores[n])
	}
	fmt.Fprintf(w, "\nviewers   poll errors %d, gap answers %d; freshness p99 (first poll, worst stream) %.0f ms\n", r.PollErrors, r.Gaps, r.FreshFirstP99MS)
	fmt.Fprintf(w, "delivered %.4f (%d counted of %d taps accepted), worst viewer %.4f, mismatched seconds %d; sends refused %d, failed %d\n",
		r.Delivered, r.Counted, r.TapsAccepted, r.WorstViewer, r.Mismatches, r.RateLimited, r.SendErrors)
}

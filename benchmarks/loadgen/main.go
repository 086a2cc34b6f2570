// Command loadgen measures a running emojicast process on this machine the
// way its audience uses it.
//
// It runs two stages. In the clients stage, viewers watch a stream and poll
// it exactly as docs/api.md's clients do (cursor = max(cursor, now), next_ms
// later with +-10% jitter, on a keep-alive connection each or a new
// connection per poll) while senders tap; it reports polls/s, poll latency,
// bytes per poll on the wire (headers included), taps/s accepted, freshness
// (a tap's 202 to the first poll that shows it) and the delivered fraction
// (counts seen over taps accepted). In the ceiling stage, pollers poll a busy
// stream back to back, alternating between the process and a minimal
// fasthttp server that answers every request with a copy of one of its poll
// answers (same bytes, same headers), and it reports the poll path's
// throughput as a ratio of that ceiling.
//
// With -spread N it runs the spread stage alone instead: N viewers, each on
// its own keep-alive connection, poll every next_ms with jitter as API
// clients do, in alternating phases against the process and the constant
// server (each a process of its own, so that 10,000 viewers fit the
// open-files limit of each), and it reports both servers' CPU per
// viewer-second and resident memory per viewer from /proc, and their
// ratios. With -spread-idle the stream stays quiet, and after the rounds
// one reaction is sent and timed to half and all of the audience.
//
// It talks only to loopback addresses and stops by itself. See
// benchmarks/README.md for how the published figures were made.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/emojicast/emojicast/server"
)

const (
	modeKeepAlive = "keepalive"
	modeNewConn   = "newconn"

	bodyV1      = "v1"
	bodyCompact = "compact"
)

// maxStage bounds each stage, so a run always ends soon.
const maxStage = time.Minute

type config struct {
	addr      string
	viewers   int
	senders   int
	duration  time.Duration
	warmup    time.Duration
	mode      string
	body      string
	sendEvery time.Duration
	maxCount  int
	drain     time.Duration
	ceiling   time.Duration
	conns     int
	rounds    int
	stream    string
	users     string
	jsonOut   bool

	spread           int
	spreadPhase      time.Duration
	spreadRounds     int
	spreadIdle       bool
	constKeepBuffers bool
	pid              int
}

func (c *config) keepAlive() bool { return c.mode == modeKeepAlive }

func parseConfig(args []string) (*config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "host:port of the emojicast process under test (loopback only)")
	fs.IntVar(&c.viewers, "viewers", 1000, "viewers polling the stream in the clients stage")
	fs.IntVar(&c.senders, "senders", 100, "senders tapping the stream, in both stages")
	fs.DurationVar(&c.duration, "duration", 8*time.Second, "how long the clients stage measures, after the warm-up")
	fs.DurationVar(&c.warmup, "warmup", 7*time.Second, "how long senders tap before measuring: viewers of the stream while it was quiet come back only after the quiet next_ms")
	fs.StringVar(&c.mode, "mode", modeKeepAlive, "keepalive: one connection per viewer; newconn: a new connection per poll")
	fs.StringVar(&c.body, "body", bodyV1, "the poll body viewers ask for: v1, or compact (v=2, docs/api.md)")
	fs.DurationVar(&c.sendEvery, "send-every", time.Second, "mean time between one sender's sends (+-50% jitter)")
	fs.IntVar(&c.maxCount, "max-count", 5, "most taps in one send (each send batches 1 to max-count)")
	fs.DurationVar(&c.drain, "drain", 8*time.Second, "after the senders stop, how long viewers may take to see every accepted tap")
	fs.DurationVar(&c.ceiling, "ceiling", 10*time.Second, "length of the ceiling stage, split over its rounds; 0 skips it")
	fs.IntVar(&c.conns, "conns", 32, "pollers polling back to back in the ceiling stage")
	fs.IntVar(&c.rounds, "rounds", 10, "ceiling rounds, each one phase against emojicast and one against the constant server")
	fs.IntVar(&c.spread, "spread", 0, "run the spread stage alone with this many viewers, each on its own keep-alive connection polling every next_ms (0: the clients and ceiling stages instead)")
	fs.DurationVar(&c.spreadPhase, "spread-phase", 15*time.Second, "measured length of each spread phase, after its warm-up")
	fs.IntVar(&c.spreadRounds, "spread-rounds", 2, "spread rounds, each one phase against emojicast and one against the constant server (at least 2)")
	fs.BoolVar(&c.spreadIdle, "spread-idle", false, "spread stage on a quiet stream (no senders), then time the first reaction reaching the audience")
	fs.BoolVar(&c.constKeepBuffers, "constant-keep-idle-buffers", server.DefaultKeepIdleBuffers, "the constant server keeps idle connections' buffers, as emojicast's --keep-idle-buffers")
	fs.IntVar(&c.pid, "pid", 0, "process id of the emojicast process under test, whose /proc the spread stage reads (0: the process listening on -addr)")
	fs.StringVar(&c.stream, "stream", "", "stream id prefix (default: bench-<time>, so runs never share counts)")
	fs.StringVar(&c.users, "user-prefix", "", "prefix of the senders' user ids, so that generators run side by side (or one after another) send as different users")
	fs.BoolVar(&c.jsonOut, "json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.stream == "" {
		c.stream = "bench-" + strconv.FormatInt(time.Now().Unix(), 36)
	}
	return &c, c.validate()
}

func (c *config) validate() error {
	host, _, err := net.SplitHostPort(c.addr)
	if err != nil {
		return fmt.Errorf("invalid -addr %q: %w", c.addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-addr %q is not a loopback address: loadgen only loads this machine", c.addr)
	}
	switch {
	case c.mode != modeKeepAlive && c.mode != modeNewConn:
		return fmt.Errorf("-mode must be %s or %s", modeKeepAlive, modeNewConn)
	case c.body != bodyV1 && c.body != bodyCompact:
		return fmt.Errorf("-body must be %s or %s", bodyV1, bodyCompact)
	case c.viewers < 1 || c.senders < 1 || c.conns < 1 || c.rounds < 1 || c.maxCount < 1 || c.maxCount > 20:
		return errors.New("-viewers, -senders, -conns and -rounds must be at least 1, -max-count 1 to 20")
	case c.duration <= 0 || c.duration > maxStage || c.warmup < 0 || c.warmup > maxStage ||
		c.ceiling < 0 || c.ceiling > maxStage || c.drain > maxStage:
		return fmt.Errorf("-duration, -warmup, -ceiling and -drain must be at most %v", maxStage)
	case c.spread < 0 || c.spread > 0 && c.spreadRounds < 2 || c.spreadPhase <= 0 || c.spreadPhase > maxStage:
		return fmt.Errorf("-spread must be at least 0, with -spread-rounds at least 2 and -spread-phase up to %v", maxStage)
	case c.sendEvery <= 0:
		return errors.New("-send-every must be positive")
	}
	return c.checkFiles()
}

// checkFiles refuses loads that would run out of file descriptors: every
// keep-alive viewer, sender and poller holds a socket.
func (c *config) checkFiles() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil
	}
	need := 2*c.senders + c.conns + 64 // two stages of senders, pollers, spare
	if c.keepAlive() {
		need += c.viewers
	}
	need = max(need, c.spread+c.senders+64)
	if uint64(need) > lim.Cur {
		return fmt.Errorf("this load needs about %d open files; the limit is %d", need, lim.Cur)
	}
	return nil
}

type report struct {
	Addr     string         `json:"addr"`
	Mode     string         `json:"mode"`
	Body     string         `json:"body"`
	Viewers  int            `json:"viewers"`
	Senders  int            `json:"senders"`
	Clients  *clientsReport `json:"clients,omitempty"`
	Ceiling  *ceilingReport `json:"ceiling,omitempty"`
	Spread   *spreadReport  `json:"spread,omitempty"`
	Finished time.Time      `json:"finished"`
}

func run(c *config) (*report, error) {
	r := &report{Addr: c.addr, Mode: c.mode, Body: c.body, Viewers: c.viewers, Senders: c.senders}
	var err error
	if c.spread > 0 {
		if r.Spread, err = runSpread(c, c.stream+"-spread"); err != nil {
			return nil, fmt.Errorf("spread stage: %w", err)
		}
		r.Finished = time.Now().UTC()
		return r, nil
	}
	if r.Clients, err = runClients(c, c.stream+"-clients"); err != nil {
		return nil, fmt.Errorf("clients stage: %w", err)
	}
	if c.ceiling > 0 {
		if r.Ceiling, err = runCeiling(c, c.stream+"-ceiling"); err != nil {
			return nil, fmt.Errorf("ceiling stage: %w", err)
		}
	}
	r.Finished = time.Now().UTC()
	return r, nil
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-serve-constant" {
		if err := serveConstant(); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen constant server:", err)
			os.Exit(1)
		}
		return
	}
	c, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	r, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	if c.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
		return
	}
	r.print(os.Stdout)
}

// Command fleet runs the scaled test of docs/capacity.md on this machine: a
// real redis-server, pull and push emojicast processes on it, the shipped
// edge (deploy/nginx.conf, rendered and run by nginx) in front of them, and
// the audience in load generator processes of their own (benchmarks/loadgen,
// one per stream), all on loopback. Over a measured window it reports what
// the capacity plan extrapolates from: polls/s at the edge and at the
// origin, the edge's hit ratio, Redis commands/s (INFO commandstats
// deltas), the CPU each process used, and the fraction of accepted taps the
// viewers saw.
//
// Run it from the repository root while holding the machine's load lock:
//
//	flock "${EMOJICAST_LOAD_LOCK:-.loadtest.lock}" go run ./benchmarks/fleet -out /tmp/fleet.json
//
// It builds emojicast and the load generator, starts everything on free
// ports, stops everything it started when it ends, and takes about two
// minutes. benchmarks/README.md ("A fleet behind the edge") has the
// figures; model.go predicts them from the unit costs of two smaller
// calibration runs, and docs/capacity.md extrapolates with it.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

type config struct {
	viewers, streams, senders int
	pull, push                int
	warmup, window            time.Duration
	out                       string
	nginx, redis, conf        string
}

func parseConfig(args []string) (*config, error) {
	var c config
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.IntVar(&c.viewers, "viewers", 10000, "viewers in all, spread evenly over the streams (each holds a keep-alive connection to the edge)")
	fs.IntVar(&c.streams, "streams", 10, "streams, one load generator process each")
	fs.IntVar(&c.senders, "senders", 20, "senders per stream (each taps 1 to 5 about once a second)")
	fs.IntVar(&c.pull, "pull", 2, "pull processes behind the edge")
	fs.IntVar(&c.push, "push", 2, "push processes behind the edge")
	fs.DurationVar(&c.warmup, "warmup", 15*time.Second, "from the start of the load to the measured window: viewers watch, senders start, every stream turns busy")
	fs.DurationVar(&c.window, "window", 30*time.Second, "the measured window")
	fs.StringVar(&c.out, "out", "", "also write the report as JSON to this file")
	fs.StringVar(&c.nginx, "nginx", "nginx", "the nginx binary")
	fs.StringVar(&c.conf, "nginx-conf", "", "the edge's configuration template (default: the repository's deploy/nginx.conf)")
	fs.StringVar(&c.redis, "redis-server", "redis-server", "the redis-server binary")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case c.streams < 1 || c.viewers < c.streams || c.senders < 1 || c.pull < 1 || c.push < 1:
		return nil, errors.New("-streams, -senders, -pull and -push must be at least 1, -viewers at least -streams")
	case c.warmup < 10*time.Second || c.window < 5*time.Second || c.warmup+c.window > time.Minute:
		// The load generator measures at most a minute after its own warm-up.
		return nil, errors.New("-warmup must be at least 10s, -window at least 5s, and both together at most 1m")
	}
	return &c, nil
}

func main() {
	c, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "emojicast-fleet-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
	f := &fleet{cfg: c, dir: dir}
	// Ctrl-C stops everything started so far, as the end of a run does.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		f.stop()
		os.RemoveAll(dir)
		os.Exit(130)
	}()
	r, err := f.run()
	f.stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		fmt.Fprintln(os.Stderr, "fleet: logs kept in", dir)
		os.Exit(1)
	}
	os.RemoveAll(dir)
	r.print(os.Stdout)
	if c.out != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(c.out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "fleet:", err)
			os.Exit(1)
		}
		fmt.Println("report written to", filepath.Clean(c.out))
	}
}

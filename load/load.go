// Package load measures how busy a process is against its configured
// budget, so that the fleet degrades by polling less and shedding sends
// instead of failing: pull nodes stretch next_ms by the overload factor,
// push nodes answer 503 past it.
package load

import (
	"math"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// Options configures a Meter. A zero budget is not enforced.
type Options struct {
	// MaxRPS is the requests per second the process is sized for.
	MaxRPS float64
	// MaxCPU is the share of the process's CPUs (GOMAXPROCS, which follows
	// a container's CPU limit) it may use, 0 to 1.
	MaxCPU float64
}

// Meter counts requests and reads CPU time once a second. Request and
// Factor are safe for concurrent use and never block.
type Meter struct {
	opts     Options
	requests atomic.Int64
	_        [56]byte // keep the hot counter off the line the readers use
	factor   atomic.Uint64
	rps      atomic.Uint64
	cpu      atomic.Uint64

	// Owned by the goroutine that calls update.
	lastAt   time.Time
	lastReqs int64
	lastCPU  time.Duration
	stop     chan struct{}
	done     chan struct{}
}

// New returns a Meter; Start it to measure.
func New(opts Options) *Meter {
	return &Meter{opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
}

// Request counts one request.
func (m *Meter) Request() { m.requests.Add(1) }

// Factor returns the load divided by the budget, smoothed over a few
// seconds: above 1 the process is over budget. It is 0 with no budget.
func (m *Meter) Factor() float64 { return math.Float64frombits(m.factor.Load()) }

// RPS returns the measured requests per second.
func (m *Meter) RPS() float64 { return math.Float64frombits(m.rps.Load()) }

// CPU returns the measured share of the process's CPUs (GOMAXPROCS) in use, 0 to 1.
func (m *Meter) CPU() float64 { return math.Float64frombits(m.cpu.Load()) }

// Start measures once a second until Stop.
func (m *Meter) Start() {
	m.lastAt, m.lastCPU = time.Now(), processCPU()
	go func() {
		defer close(m.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case now := <-tick.C:
				m.update(now, m.requests.Load(), processCPU())
			case <-m.stop:
				return
			}
		}
	}()
}

// Stop stops measuring.
func (m *Meter) Stop() {
	close(m.stop)
	<-m.done
}

// update folds one measurement into the smoothed factor.
func (m *Meter) update(now time.Time, requests int64, cpu time.Duration) {
	elapsed := now.Sub(m.lastAt).Seconds()
	if elapsed <= 0 {
		return
	}
	rps := float64(requests-m.lastReqs) / elapsed
	// GOMAXPROCS, not NumCPU: it follows a container's CPU limit, which is
	// the budget the process really has.
	share := (cpu - m.lastCPU).Seconds() / elapsed / float64(runtime.GOMAXPROCS(0))
	m.lastAt, m.lastReqs, m.lastCPU = now, requests, cpu
	var f float64
	if m.opts.MaxRPS > 0 {
		f = rps / m.opts.MaxRPS
	}
	if m.opts.MaxCPU > 0 {
		f = max(f, share/m.opts.MaxCPU)
	}
	// Half-life of about a second: fast enough to protect the node, slow
	// enough that next_ms does not flap with every burst of polls.
	const alpha = 0.5
	smoothed := alpha*f + (1-alpha)*m.Factor()
	m.factor.Store(math.Float64bits(smoothed))
	m.rps.Store(math.Float64bits(rps))
	m.cpu.Store(math.Float64bits(share))
}

// processCPU returns the CPU time the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

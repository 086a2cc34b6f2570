package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ramp is how long viewers take to arrive: each watches at a random moment
// within it.
const ramp = time.Second

// maxViewerPairs bounds how many viewers the one-viewer freshness is
// computed over: every (viewer, tap) pair of a big audience is too many,
// and viewers are alike.
const maxViewerPairs = 500

// clientsReport is what the audience of one stream got while senders
// tapped. Polls, latency, bytes, taps/s and freshness are of the measured
// window, after the warm-up; delivery is of every tap accepted.
type clientsReport struct {
	Seconds     float64 `json:"seconds"`
	Polls       int     `json:"polls"`
	PollsPerSec float64 `json:"polls_per_sec"`
	PollErrors  int     `json:"poll_errors"`
	// PollRetries are polls and watches sent again at once on a new
	// connection after the kept-alive one turned out closed (client.do).
	PollRetries int `json:"poll_retries"`
	// PollsTotal counts the polls answered in the whole stage, warm-up
	// and drain included: what a cache in front saw of the audience.
	PollsTotal   int     `json:"polls_total"`
	Gaps         int     `json:"gaps"`
	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP99MS float64 `json:"latency_p99_ms"`
	// Bytes per poll that crossed the socket, headers included.
	ResponseBytes     float64 `json:"response_bytes"`
	ResponseBodyBytes float64 `json:"response_body_bytes"`
	RequestBytes      float64 `json:"request_bytes"`
	// Busy answers, ones listing seconds, by how many they list: [0] one,
	// [1] two, [2] three or more. A viewer polling every next_ms gets one
	// new second, or two when its interval spanned two seals.
	Busy [3]busyAnswers `json:"busy"`

	Sends        int     `json:"sends"`         // warm-up included
	TapsAccepted int64   `json:"taps_accepted"` // warm-up included
	TapsPerSec   float64 `json:"taps_per_sec"`  // in the measured window
	RateLimited  int     `json:"rate_limited"`
	SendErrors   int     `json:"send_errors"`

	// Freshness is from a send's 202 to a poll showing its second: the
	// first poll of the whole audience, and each viewer's own first poll.
	FreshFirstP50MS  float64 `json:"freshness_first_p50_ms"`
	FreshFirstP99MS  float64 `json:"freshness_first_p99_ms"`
	FreshViewerP50MS float64 `json:"freshness_viewer_p50_ms"`
	FreshViewerP99MS float64 `json:"freshness_viewer_p99_ms"`
	// PublishLag is from the end of a second to the first poll that showed
	// it: the seal delay, the sync tick and the wait for a poll.
	PublishLagP50MS float64 `json:"publish_lag_p50_ms"`
	PublishLagP99MS float64 `json:"publish_lag_p99_ms"`

	Counted         int64   `json:"counted"` // reactions in the seconds the audience saw
	Delivered       float64 `json:"delivered"`
	WorstViewer     float64 `json:"delivered_worst_viewer"`
	Mismatches      int     `json:"mismatches"`
	UnmatchedCounts int64   `json:"unmatched"` // accepted but never seen, or seen but never accepted
}

// busyAnswers sums the busy answers that listed a number of seconds.
type busyAnswers struct {
	Polls int     `json:"polls"`
	Mean  float64 `json:"mean_bytes"`
	Max   int64   `json:"max_bytes"`
}

// runClients plays the viewers and senders of one stream: viewers arrive,
// senders tap for the configured duration, then viewers keep polling until
// they have seen every accepted tap or the drain time runs out.
func runClients(cfg *config, stream string) (*clientsReport, error) {
	reg := newRegistry()
	stop := make(chan struct{})
	var watched atomic.Int64
	viewers := make([]*viewer, cfg.viewers)
	var vwg sync.WaitGroup
	for i := range viewers {
		v := newViewer("v"+strconv.Itoa(i), newClient(cfg.addr, cfg.keepAlive()), reg, uint64(i), cfg.body == bodyCompact)
		viewers[i] = v
		vwg.Go(func() { v.run(stream, ramp, stop, func() { watched.Add(1) }) })
	}
	stopViewers := sync.OnceFunc(func() {
		close(stop)
		vwg.Wait()
	})
	defer stopViewers()
	if !waitFor(func() bool { return watched.Load() == int64(len(viewers)) }, 30*time.Second) {
		stopViewers()
		return nil, fmt.Errorf("only %d of %d viewers could watch the stream: %w", watched.Load(), len(viewers), firstErr(viewers))
	}

	senders, start, end, err := runSenders(cfg, stream, "s", cfg.warmup+cfg.duration, nil)
	if err != nil {
		return nil, err
	}
	start = start.Add(cfg.warmup)
	var accepted int64
	for _, s := range senders {
		for _, sd := range s.sends {
			accepted += sd.weight
		}
	}
	waitFor(func() bool {
		for _, v := range viewers {
			if v.countedNow() < accepted {
				return false
			}
		}
		return true
	}, cfg.drain)
	stopViewers()
	return summarize(viewers, senders, reg, start, end), nil
}

// runSenders has cfg.senders senders watch stream, then tap for d or until
// stop closes. It returns them with the time the tapping began and ended.
func runSenders(cfg *config, stream, prefix string, d time.Duration, stop <-chan struct{}) (senders []*sender, start, end time.Time, err error) {
	senders = make([]*sender, cfg.senders)
	begin, done := make(chan struct{}), make(chan struct{})
	var watched atomic.Int64
	var wg sync.WaitGroup
	for i := range senders {
		s := newSender(cfg.users+prefix+strconv.Itoa(i), newClient(cfg.addr, true), uint64(i)<<20)
		senders[i] = s
		wg.Go(func() {
			for s.watch(stream) != nil {
				s.errors++
				if !sleep(time.Second, done) {
					return
				}
			}
			watched.Add(1)
			select {
			case <-begin:
				s.run(cfg.sendEvery, cfg.maxCount, done)
			case <-done:
			}
		})
	}
	ok := waitFor(func() bool { return watched.Load() == int64(len(senders)) }, 30*time.Second)
	close(begin)
	start = time.Now()
	if ok {
		sleep(d, stop)
	}
	close(done)
	wg.Wait()
	if !ok {
		return nil, start, start, fmt.Errorf("only %d of %d senders could watch the stream", watched.Load(), len(senders))
	}
	return senders, start, time.Now(), nil
}

// firstErr returns the last error of the first viewer that had one.
func firstErr(viewers []*viewer) error {
	for _, v := range viewers {
		if v.lastErr != nil {
			return v.lastErr
		}
	}
	return errors.New("no error recorded")
}

// waitFor polls cond until it holds or timeout passes, and reports which.
func waitFor(cond func() bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// summarize reports the polls, sends and freshness of the measured window
// from start to end, and the delivery of every tap accepted.
func summarize(viewers []*viewer, senders []*sender, reg *registry, start, end time.Time) *clientsReport {
	r := &clientsReport{Seconds: end.Sub(start).Seconds()}
	summarizePolls(r, viewers, start, end)
	var inWindow int64
	for _, s := range senders {
		r.Sends += len(s.sends)
		r.RateLimited += s.limited
		r.SendErrors += s.errors
		for _, sd := range s.sends {
			r.TapsAccepted += sd.weight
			if !sd.accepted.Before(start) {
				inWindow += sd.weight
			}
		}
	}
	r.TapsPerSec = float64(inWindow) / r.Seconds
	summarizeDelivery(r, viewers, senders, reg, start)
	return r
}

// summarizePolls reports the polls answered between start and end.
func summarizePolls(r *clientsReport, viewers []*viewer, start, end time.Time) {
	var lat []time.Duration
	var read, body, sent int64
	var busyRead [3]int64
	for _, v := range viewers {
		r.PollErrors += v.errors
		r.PollRetries += v.cl.retries
		r.PollsTotal += len(v.polls)
		r.Gaps += v.gaps
		for _, p := range v.polls {
			if p.done.Before(start) || p.done.After(end) {
				continue
			}
			lat = append(lat, p.latency)
			read += p.wire.read
			sent += p.wire.sent
			body += int64(p.body)
			if p.seconds > 0 {
				i := min(p.seconds, len(r.Busy)) - 1
				r.Busy[i].Polls++
				r.Busy[i].Max = max(r.Busy[i].Max, p.wire.read)
				busyRead[i] += p.wire.read
			}
		}
	}
	r.Polls = len(lat)
	if r.Polls == 0 {
		return
	}
	r.PollsPerSec = float64(r.Polls) / end.Sub(start).Seconds()
	r.LatencyP50MS = ms(percentile(lat, 50))
	r.LatencyP99MS = ms(percentile(lat, 99))
	r.ResponseBytes = float64(read) / float64(r.Polls)
	r.ResponseBodyBytes = float64(body) / float64(r.Polls)
	r.RequestBytes = float64(sent) / float64(r.Polls)
	for i := range r.Busy {
		if r.Busy[i].Polls > 0 {
			r.Busy[i].Mean = float64(busyRead[i]) / float64(r.Busy[i].Polls)
		}
	}
}

// summarizeDelivery compares what the audience saw with what was accepted,
// and how soon it saw the taps accepted from start on.
func summarizeDelivery(r *clientsReport, viewers []*viewer, senders []*sender, reg *registry, start time.Time) {
	r.Counted, r.Mismatches = reg.total, reg.mismatches
	if r.TapsAccepted == 0 {
		return
	}
	r.Delivered = float64(r.Counted) / float64(r.TapsAccepted)
	r.WorstViewer = r.Delivered
	for _, v := range viewers {
		r.WorstViewer = min(r.WorstViewer, float64(v.countedNow())/float64(r.TapsAccepted))
	}

	ts := make([]int64, 0, len(reg.seconds))
	for t := range reg.seconds {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	totals := make([]int64, len(ts))
	index := make(map[int64]int, len(ts))
	for i, t := range ts {
		totals[i] = reg.seconds[t].total
		index[t] = i
	}
	var sends []send
	for _, s := range senders {
		sends = append(sends, s.sends...)
	}
	pieces, unmatched := assign(sends, totals)
	var matched int64
	var lags []time.Duration
	first, each := new(histogram), new(histogram)
	for i, t := range ts {
		if seen := reg.seconds[t].first; !seen.Before(start) {
			lags = append(lags, seen.Sub(time.Unix(t+1, 0)))
		}
		for _, p := range pieces[i] {
			matched += p.weight
			if !p.accepted.Before(start) {
				first.add(reg.seconds[t].first.Sub(p.accepted), p.weight)
			}
		}
	}
	// Seen but never accepted (a send whose 202 was lost) shows as counted
	// beyond what was matched.
	r.UnmatchedCounts = unmatched + r.Counted - matched
	for _, v := range viewers[:min(len(viewers), maxViewerPairs)] {
		for _, s := range v.seen {
			for _, p := range pieces[index[s.t]] {
				if !p.accepted.Before(start) {
					each.add(s.at.Sub(p.accepted), p.weight)
				}
			}
		}
	}
	r.FreshFirstP50MS, r.FreshFirstP99MS = ms(first.percentile(50)), ms(first.percentile(99))
	r.FreshViewerP50MS, r.FreshViewerP99MS = ms(each.percentile(50)), ms(each.percentile(99))
	r.PublishLagP50MS, r.PublishLagP99MS = ms(percentile(lags, 50)), ms(percentile(lags, 99))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

package main

import (
	"fmt"
	"io"
	"strings"
)

// The targets that a load run can check.
const (
	targetRatio      = 0.8  // poll throughput over the constant-slice ceiling, keep-alive
	targetBusyBytes  = 400  // a busy stream's poll answer on the wire, headers included
	targetFreshP99MS = 2000 // freshness p99, first poll that shows a tap
	targetDelivered  = 1.0  // counts seen over taps accepted, sampling off
)

func (r *report) print(w io.Writer) {
	if r.Spread != nil {
		r.Spread.print(w, r.Addr)
		return
	}
	c := r.Clients
	fmt.Fprintf(w, "loadgen against %s: %d viewers (%s, %s body), %d senders\n\n", r.Addr, r.Viewers, r.Mode, r.Body, r.Senders)
	fmt.Fprintf(w, "clients stage, %.1f s measured after the warm-up\n", c.Seconds)
	fmt.Fprintf(w, "  polls           %d (%.0f/s), errors %d, retried on a closed connection %d, gap answers %d\n", c.Polls, c.PollsPerSec, c.PollErrors, c.PollRetries, c.Gaps)
	fmt.Fprintf(w, "  poll latency    p50 %.2f ms, p99 %.2f ms\n", c.LatencyP50MS, c.LatencyP99MS)
	fmt.Fprintf(w, "  bytes per poll  answer %.0f B on the wire (body %.0f B, headers %.0f B), request %.0f B\n",
		c.ResponseBytes, c.ResponseBodyBytes, c.ResponseBytes-c.ResponseBodyBytes, c.RequestBytes)
	for i, b := range c.Busy {
		label := []string{"1 second", "2 seconds", "3+ seconds"}[i]
		fmt.Fprintf(w, "  %-15s %d answers: mean %.0f B, max %d B on the wire\n", "  "+label, b.Polls, b.Mean, b.Max)
	}
	fmt.Fprintf(w, "  taps accepted   %.0f/s measured; %d in %d sends with the warm-up; rate-limited %d, errors %d\n", c.TapsPerSec, c.TapsAccepted, c.Sends, c.RateLimited, c.SendErrors)
	fmt.Fprintf(w, "  freshness       first poll that shows a tap: p50 %.0f ms, p99 %.0f ms\n", c.FreshFirstP50MS, c.FreshFirstP99MS)
	fmt.Fprintf(w, "                  one viewer's first poll:     p50 %.0f ms, p99 %.0f ms\n", c.FreshViewerP50MS, c.FreshViewerP99MS)
	fmt.Fprintf(w, "  publish lag     end of a second to the first poll showing it: p50 %.0f ms, p99 %.0f ms\n", c.PublishLagP50MS, c.PublishLagP99MS)
	fmt.Fprintf(w, "  delivered       %.4f (%d counted of %d accepted), worst viewer %.4f, mismatched seconds %d\n",
		c.Delivered, c.Counted, c.TapsAccepted, c.WorstViewer, c.Mismatches)
	if k := r.Ceiling; k != nil {
		fmt.Fprintf(w, "\nceiling stage, %s, %d pollers, %d rounds of %.1f s per server\n", k.Mode, k.Conns, k.Rounds, k.PhaseSeconds)
		for _, t := range []struct {
			name string
			t    targetReport
		}{{"emojicast", k.Emojicast}, {"constant slice", k.Constant}} {
			fmt.Fprintf(w, "  %-15s median %.0f polls/s (%s)\n", t.name, t.t.Median, floats(t.t.PollsPerSec, "%.0f"))
			fmt.Fprintf(w, "  %-15s p50 %.2f ms, p99 %.2f ms, %.0f B per answer, server CPU %.2f us per poll, errors %d\n",
				"", t.t.LatencyP50MS, t.t.LatencyP99MS, t.t.ResponseBytes, t.t.CPUPerPollUS, t.t.Errors)
		}
		fmt.Fprintf(w, "  ratio           %.3f of the ceiling (rounds: %s)\n", k.Ratio, floats(k.RoundRatios, "%.3f"))
		fmt.Fprintf(w, "  CPU ratio       %.3f (constant server's CPU per poll over emojicast's)\n", k.CPURatio)
	}
	fmt.Fprintln(w, "\ntargets")
	for _, t := range r.targets() {
		fmt.Fprintf(w, "  %-4s %s\n", t.verdict, t.what)
	}
}

type targetCheck struct {
	verdict string // ok, MISS
	what    string
}

func (r *report) targets() []targetCheck {
	c := r.Clients
	steady := max(c.Busy[0].Max, c.Busy[1].Max)
	check := func(ok bool, format string, args ...any) targetCheck {
		v := "ok"
		if !ok {
			v = "MISS"
		}
		return targetCheck{v, fmt.Sprintf(format, args...)}
	}
	out := []targetCheck{
		check(c.Busy[0].Polls > 0 && steady < targetBusyBytes,
			"busy poll answer listing 1 or 2 seconds, as a viewer polling every next_ms gets: max %d B on the wire (target < %d B)", steady, targetBusyBytes),
		check(c.FreshFirstP99MS < targetFreshP99MS, "freshness p99 %.0f ms to the first poll that shows a tap (target < %d ms; one viewer's p99: %.0f ms)", c.FreshFirstP99MS, targetFreshP99MS, c.FreshViewerP99MS),
		check(c.Delivered == targetDelivered && c.WorstViewer == targetDelivered, "delivered %.4f, worst viewer %.4f (target 1.0 with sampling off)", c.Delivered, c.WorstViewer),
	}
	if k := r.Ceiling; k != nil && k.Mode == modeKeepAlive {
		out = append(out, check(k.Ratio >= targetRatio, "poll throughput %.3f of the constant-slice ceiling (target >= %.1f, keep-alive)", k.Ratio, targetRatio))
	}
	return out
}

func floats(xs []float64, format string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(s, " ")
}

func (s *spreadReport) print(w io.Writer, addr string) {
	quiet := "a busy stream"
	if s.Idle {
		quiet = "a quiet stream"
	}
	fmt.Fprintf(w, "spread stage against %s: %d viewers on their own keep-alive connections, %s, next_ms %d +-10%%\n", addr, s.Viewers, quiet, s.NextMS)
	fmt.Fprintf(w, "%d rounds of %.0f s measured per server, interleaved\n", s.Rounds, s.PhaseSeconds)
	for _, t := range []struct {
		name string
		t    spreadTarget
	}{{"emojicast", s.Emojicast}, {"constant slice", s.Constant}} {
		fmt.Fprintf(w, "  %-15s CPU per viewer-second median %.1f us (%s), %.1f us per poll, %.3f polls per viewer-second\n",
			t.name, t.t.MedianCPUUS, floats(t.t.CPUPerViewerUS, "%.1f"), t.t.CPUPerPollUS, t.t.PollsPerViewerSec)
		fmt.Fprintf(w, "  %-15s RSS per viewer median %.0f B (%s) over a base of %.1f MB, errors %d\n",
			"", t.t.MedianRSSPerViewer, floats(t.t.RSSPerViewer, "%.0f"), float64(t.t.BaseRSS)/1e6, t.t.Errors)
	}
	fmt.Fprintf(w, "  ratios          emojicast over the constant server: CPU %.3f, RSS %.3f\n", s.CPURatio, s.RSSRatio)
	if r := s.Reach; r != nil && r.Error != "" {
		fmt.Fprintf(w, "  reach           not measured: %s\n", r.Error)
	} else if r != nil {
		fmt.Fprintf(w, "  reach           first reaction after %.0f s quiet (next_ms %d): half the audience in %.0f ms, all in %.0f ms (%d of %d saw it)\n",
			r.QuietSeconds, r.NextMS, r.HalfMS, r.AllMS, r.Saw, r.Viewers)
	}
}

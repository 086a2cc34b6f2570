package e2e

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// The soak's exact checker: per stream, emoji and second, the taps the
// push nodes answered 202 against what each viewer was shown.
//
// Each push node taps its own emojis, so a (stream, emoji) cell is one
// node's taps on one stream. For each viewer and cell, seconds the viewer
// was told were lost (gap) are set aside; in the others, what was shown in
// the second it was accepted in matches first. What is left is explained,
// in this order, or is a failure:
//   - shown up to soakMaxLate seconds later than accepted: a count written
//     after its second was sealed, carried into the oldest open second, or
//     a request that straddled a second boundary ("late", allowed);
//   - shown without a 202 behind it: a send whose connection broke, which
//     may have counted once ("unsure", allowed up to the unsure sends);
//     else counted twice ("duplicated");
//   - accepted and never shown: taps a push process killed with SIGKILL
//     had answered 202 within its last flush interval before the kill
//     ("lost by a SIGKILLed push", allowed up to its accept rate × the
//     flush interval); else "lost".

// soakReport is the checker's verdict.
type soakReport struct {
	rows  []soakRow
	total soakRow
	kills []soakKillRow
	errs  []string
}

// soakRow is one stream's tally; the taps columns are the worst viewer's.
type soakRow struct {
	stream                        string
	viewers                       int
	accepted, unsureSent          int64
	late, maxLate                 int64
	killLost, lost, dup, unsureIn int64
	gapSeconds, gapTaps           int64
	twice, disagree               int
}

// soakKillRow is one push process killed with SIGKILL.
type soakKillRow struct {
	node        string
	at          time.Duration
	rate, bound float64
	lost        int64
}

// viewerTally is what one viewer's check found.
type viewerTally struct {
	late, maxLate, lost, dup, unsureIn, gapTaps int64
	killLost                                    []int64
	examples                                    []string
	// first is the first cell and second that failed, traced in full.
	first    soakCell
	firstSec int64
}

func (s *soak) check(through int64) soakReport {
	l := s.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	windows := s.killWindows()
	var rep soakReport
	for _, kill := range s.kills {
		rate := s.acceptRate(kill)
		// What it accepted since its last flush reached the store: a flush
		// interval and the write in flight. Taps come 2 to a send: the
		// bound is rounded up to whole sends.
		bound := math.Ceil(rate*(soakFlush+soakFlushWrite).Seconds()/soakCount) * soakCount
		rep.kills = append(rep.kills, soakKillRow{node: s.pushes[kill.node].name, at: kill.start.Sub(s.start), rate: rate, bound: bound})
	}
	for _, stream := range s.streams {
		row := soakRow{stream: stream}
		var viewers []*recorder
		for _, v := range s.viewers {
			if v.stream.ID == stream {
				viewers = append(viewers, v)
			}
		}
		row.viewers = len(viewers)
		killLost := make([]int64, len(s.kills)) // the worst viewer's, per kill
		traced := false
		for c, secs := range l.accepted {
			if c.stream == stream {
				for _, n := range secs {
					row.accepted += n
				}
			}
		}
		for c, secs := range l.unsure {
			if c.stream == stream {
				for _, n := range secs {
					row.unsureSent += n
				}
			}
		}
		for _, v := range viewers {
			v.mu.Lock()
			vt := s.checkViewer(v, through, windows)
			if v.gaveUp != nil {
				rep.errs = append(rep.errs, fmt.Sprintf("viewer %s of %s: its poll loop gave up: %v", v.name, stream, v.gaveUp))
			}
			if len(v.dupSeconds) > 0 {
				rep.errs = append(rep.errs, fmt.Sprintf("viewer %s of %s was shown seconds %v twice", v.name, stream, v.dupSeconds))
			}
			if vt.firstSec != 0 && !traced {
				traced = true // one trace per stream: its viewers read one store
				rep.errs = append(rep.errs, s.trace(v, vt.first, vt.firstSec))
			}
			row.twice += len(v.dupSeconds)
			for _, g := range v.gaps {
				row.gapSeconds += g[1] - g[0]
			}
			v.mu.Unlock()
			row.late, row.maxLate = max(row.late, vt.late), max(row.maxLate, vt.maxLate)
			row.lost, row.dup, row.unsureIn = max(row.lost, vt.lost), max(row.dup, vt.dup), max(row.unsureIn, vt.unsureIn)
			row.gapTaps += vt.gapTaps
			var lostInKills int64
			for k, n := range vt.killLost {
				lostInKills += n
				killLost[k] = max(killLost[k], n)
			}
			row.killLost = max(row.killLost, lostInKills)
			if vt.lost > 0 || vt.dup > 0 {
				rep.errs = append(rep.errs, fmt.Sprintf("viewer %s of %s: %d taps answered 202 never shown, without a gap and not a killed push node's last; %d shown that were never accepted: %s",
					v.name, stream, vt.lost, vt.dup, strings.Join(vt.examples, "; ")))
			}
		}
		for k, n := range killLost {
			rep.kills[k].lost += n
		}
		row.disagree = disagreements(viewers, through)
		if row.disagree > 0 {
			rep.errs = append(rep.errs, fmt.Sprintf("stream %s: viewers were shown different counts for %d seconds", stream, row.disagree))
		}
		rep.rows = append(rep.rows, row)
		rep.total.add(row)
	}
	for _, k := range rep.kills {
		if float64(k.lost) > k.bound {
			rep.errs = append(rep.errs, fmt.Sprintf("%s killed at %v lost %d taps it had answered 202; at most %.0f (%.0f taps/s × (%v + %v)) were not yet flushed",
				k.node, k.at.Round(100*time.Millisecond), k.lost, k.bound, k.rate, soakFlush, soakFlushWrite))
		}
	}
	if rep.total.accepted < 5000 {
		rep.errs = append(rep.errs, fmt.Sprintf("only %d taps were accepted: the traffic did not flow", rep.total.accepted))
	}
	return rep
}

func (r *soakRow) add(o soakRow) {
	r.stream = "all"
	r.viewers += o.viewers
	r.accepted += o.accepted
	r.unsureSent += o.unsureSent
	r.late += o.late
	r.maxLate = max(r.maxLate, o.maxLate)
	r.killLost += o.killLost
	r.lost += o.lost
	r.dup += o.dup
	r.unsureIn += o.unsureIn
	r.gapSeconds += o.gapSeconds
	r.gapTaps += o.gapTaps
	r.twice += o.twice
	r.disagree += o.disagree
}

// killWindows returns, per kill, the taps the killed node answered 202 in
// its last flush interval (and soakKillGrace) before it died, by cell and
// second: those it may not have flushed. l.mu is held.
func (s *soak) killWindows() []map[soakCell]map[int64]int64 {
	windows := make([]map[soakCell]map[int64]int64, len(s.kills))
	for k, kill := range s.kills {
		w := map[soakCell]map[int64]int64{}
		from := kill.start.Add(-soakFlush - soakKillGrace)
		for _, e := range s.ledger.events {
			if e.node == kill.node && !e.end.Before(from) && !e.end.After(kill.end) {
				if w[e.cell] == nil {
					w[e.cell] = map[int64]int64{}
				}
				w[e.cell][e.sec] += e.n
			}
		}
		windows[k] = w
	}
	return windows
}

// acceptRate is the killed node's accepted taps per second over the 5 s
// before the kill. l.mu is held.
func (s *soak) acceptRate(kill pushKill) float64 {
	const span = 5 * time.Second
	var n int64
	for _, e := range s.ledger.events {
		if e.node == kill.node && !e.end.Before(kill.start.Add(-span)) && e.end.Before(kill.start) {
			n += e.n
		}
	}
	return float64(n) / span.Seconds()
}

// checkViewer matches one viewer's seconds against the ledger, cell by
// cell. l.mu and v.mu are held.
func (s *soak) checkViewer(v *recorder, through int64, windows []map[soakCell]map[int64]int64) viewerTally {
	l := s.ledger
	vt := viewerTally{killLost: make([]int64, len(windows))}
	// checkCell takes what it explains out of the windows: this viewer's copy.
	own := make([]map[soakCell]map[int64]int64, len(windows))
	for k, w := range windows {
		own[k] = map[soakCell]map[int64]int64{}
		for c, secs := range w {
			own[k][c] = maps.Clone(secs)
		}
	}
	emojis := map[string]bool{}
	for _, m := range []map[soakCell]map[int64]int64{l.accepted, l.unsure} {
		for c := range m {
			if c.stream == v.stream.ID {
				emojis[c.emoji] = true
			}
		}
	}
	for _, counts := range v.seen {
		for e := range counts {
			emojis[e] = true
		}
	}
	for _, e := range slices.Sorted(maps.Keys(emojis)) {
		s.checkCell(v, soakCell{v.stream.ID, e}, through, own, &vt)
	}
	return vt
}

// soakUnit is a number of taps in a second.
type soakUnit struct{ sec, n int64 }

func (s *soak) checkCell(v *recorder, c soakCell, through int64, windows []map[soakCell]map[int64]int64, vt *viewerTally) {
	l := s.ledger
	var deficits, surplus []soakUnit
	for sec := v.stream.Since + 1; sec <= through; sec++ {
		accepted, shown := l.accepted[c][sec], v.seen[sec][c.emoji]
		if v.inGap(sec) {
			vt.gapTaps += accepted
			continue
		}
		m := min(accepted, shown)
		if accepted > m {
			deficits = append(deficits, soakUnit{sec, accepted - m})
		}
		if shown > m {
			surplus = append(surplus, soakUnit{sec, shown - m})
		}
	}
	// Shown later than accepted: a count carried into the oldest open
	// second comes from the seconds just before it, so the newest
	// shortfall first. (Oldest first would let a carry after an outage
	// cover for the taps a killed push node lost seconds before it.)
	for i := range surplus {
		u := &surplus[i]
		for j := len(deficits) - 1; j >= 0 && u.n > 0; j-- {
			d := &deficits[j]
			if d.n == 0 || d.sec >= u.sec {
				continue
			}
			if u.sec-d.sec > soakMaxLate {
				break
			}
			k := min(u.n, d.n)
			u.n, d.n = u.n-k, d.n-k
			vt.late += k
			vt.maxLate = max(vt.maxLate, u.sec-d.sec)
		}
	}
	// Shown without a 202: a send whose answer was lost, at most once.
	unsure := maps.Clone(l.unsure[c])
	for _, u := range surplus {
		for sec := u.sec; u.n > 0 && sec >= u.sec-soakMaxLate; sec-- {
			k := min(u.n, unsure[sec])
			u.n -= k
			unsure[sec] -= k
			vt.unsureIn += k
		}
		if u.n > 0 {
			vt.failed(c, u.sec)
			vt.dup += u.n
			vt.example(fmt.Sprintf("second %d %s: %d shown that no send accounts for", u.sec, c.emoji, u.n))
		}
	}
	// Accepted, never shown: a killed push node's unflushed taps, or lost.
	for _, d := range deficits {
		for k, w := range windows {
			take := min(d.n, w[c][d.sec])
			if take > 0 {
				w[c][d.sec] -= take
			}
			d.n -= take
			vt.killLost[k] += take
		}
		if d.n > 0 {
			vt.failed(c, d.sec)
			vt.lost += d.n
			if len(vt.examples) < maxExamples {
				vt.example(fmt.Sprintf("second %d %s: %d of %d accepted never shown (shown %d; Redis history has %d)",
					d.sec, c.emoji, d.n, l.accepted[c][d.sec], v.seen[d.sec][c.emoji], s.storeHistory(c.stream, d.sec)[c.emoji]))
			}
		}
	}
}

// maxExamples is how many explanations of a failure a viewer's check keeps.
const maxExamples = 5

// example keeps the first few explanations of a failure.
func (vt *viewerTally) example(s string) {
	if len(vt.examples) < maxExamples {
		vt.examples = append(vt.examples, s)
	}
}

// failed notes the first cell and second that failed.
func (vt *viewerTally) failed(c soakCell, sec int64) {
	if vt.firstSec == 0 {
		vt.first, vt.firstSec = c, sec
	}
}

// trace shows, second by second around a failure, what was accepted, what
// the viewer was shown, and what Redis holds in the second's count key
// and in its history: where the taps went. v.mu and l.mu are held.
func (s *soak) trace(v *recorder, c soakCell, at int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "trace of %s %s around second %d, as viewer %s saw it, the seconds where something moved (second: accepted 202 / unsure / shown / Redis count key / Redis history):",
		c.stream, c.emoji, at, v.name)
	rows := 0
	for sec := at - soakMaxLate; sec <= at+soakMaxLate && rows < 40; sec++ {
		accepted, unsure, shown := s.ledger.accepted[c][sec], s.ledger.unsure[c][sec], v.seen[sec][c.emoji]
		count := s.storeCount(c.stream, sec)[c.emoji]
		hist := s.storeHistory(c.stream, sec)[c.emoji]
		// The seconds where something moved: not shown as accepted, or
		// not as Redis holds it.
		if accepted != shown || unsure != 0 || count != shown || hist != shown {
			rows++
			gap := ""
			if v.inGap(sec) {
				gap = " (told gap)"
			}
			fmt.Fprintf(&b, "\n    %d: %d / %d / %d / %d / %d%s", sec, accepted, unsure, shown, count, hist, gap)
		}
	}
	return b.String()
}

// disagreements counts the seconds two viewers of a stream were both
// shown, neither told gap, with different counts: every pull node must
// publish a second the same.
func disagreements(viewers []*recorder, through int64) int {
	bad := map[int64]bool{}
	for i, a := range viewers {
		for _, b := range viewers[i+1:] {
			a.mu.Lock()
			b.mu.Lock()
			for sec := max(a.stream.Since, b.stream.Since) + 1; sec <= through; sec++ {
				if a.inGap(sec) || b.inGap(sec) {
					continue
				}
				if !maps.Equal(a.seen[sec], b.seen[sec]) {
					bad[sec] = true
				}
			}
			b.mu.Unlock()
			a.mu.Unlock()
		}
	}
	return len(bad)
}

// table renders the report as Markdown, for the log and for
// benchmarks/README.md.
func (r soakReport) table() string {
	var b strings.Builder
	b.WriteString("| stream | viewers | accepted | shown late (max s) | lost by SIGKILLed push | lost | duplicated | unsure sent / counted | told gap (s, taps) | seconds shown twice | seconds viewers disagree |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, row := range append(slices.Clone(r.rows), r.total) {
		fmt.Fprintf(&b, "| %s | %d | %d | %d (%d) | %d | %d | %d | %d / %d | %d, %d | %d | %d |\n",
			row.stream, row.viewers, row.accepted, row.late, row.maxLate, row.killLost, row.lost, row.dup,
			row.unsureSent, row.unsureIn, row.gapSeconds, row.gapTaps, row.twice, row.disagree)
	}
	b.WriteString("\n| push killed | at | accept rate (taps/s) | may lose (rate × (flush interval + write), in whole sends) | lost |\n|---|---|---|---|---|\n")
	for _, k := range r.kills {
		fmt.Fprintf(&b, "| %s | %.1f s | %.0f | %.0f | %d |\n", k.node, k.at.Seconds(), k.rate, k.bound, k.lost)
	}
	verdict := "PASS"
	if len(r.errs) > 0 {
		verdict = fmt.Sprintf("FAIL (%d findings)", len(r.errs))
	}
	fmt.Fprintf(&b, "\nverdict: %s\n", verdict)
	return b.String()
}

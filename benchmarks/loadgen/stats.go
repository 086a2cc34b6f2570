package main

import (
	"slices"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of ds by nearest
// rank, sorting ds in place; 0 when ds is empty.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	rank := int(p/100*float64(len(ds))+0.999999) - 1
	return ds[min(max(rank, 0), len(ds)-1)]
}

// median returns the median of xs, sorting xs in place; 0 when empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// histogram counts weighted durations in one-millisecond bins up to a
// minute, for distributions with too many samples to keep one by one.
type histogram struct {
	bins  [60_000]int64
	total int64
}

func (h *histogram) add(d time.Duration, weight int64) {
	ms := min(max(d.Milliseconds(), 0), int64(len(h.bins)-1))
	h.bins[ms] += weight
	h.total += weight
}

// percentile returns the upper edge of the bin holding the p-th percentile.
func (h *histogram) percentile(p float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	want := int64(p / 100 * float64(h.total))
	var sum int64
	for ms, n := range h.bins {
		sum += n
		if sum > want || sum == h.total {
			return time.Duration(ms+1) * time.Millisecond
		}
	}
	return time.Duration(len(h.bins)) * time.Millisecond
}

// piece is part of a send that landed in one second.
type piece struct {
	accepted time.Time
	weight   int64
}

// assign splits the accepted sends over the seconds the audience saw, in
// order: the server puts each send in the second of its clock when it
// handled it, so in send order the first totals[0] reactions are second 0's,
// the next totals[1] second 1's, and so on. Sends are ordered by the middle
// of their round trip, the best guess of when the server handled them; two
// sends in flight across a second boundary at once may swap, which shifts
// at most those two. unmatched is what was accepted but never seen.
func assign(sends []send, totals []int64) (pieces [][]piece, unmatched int64) {
	sends = slices.Clone(sends)
	slices.SortFunc(sends, func(a, b send) int { return midpoint(a).Compare(midpoint(b)) })
	pieces = make([][]piece, len(totals))
	i, left := 0, int64(0)
	if len(sends) > 0 {
		left = sends[0].weight
	}
	for j, need := range totals {
		for need > 0 && i < len(sends) {
			take := min(need, left)
			pieces[j] = append(pieces[j], piece{accepted: sends[i].accepted, weight: take})
			need -= take
			left -= take
			if left == 0 {
				i++
				if i < len(sends) {
					left = sends[i].weight
				}
			}
		}
	}
	if i < len(sends) {
		unmatched = left
		for _, s := range sends[i+1:] {
			unmatched += s.weight
		}
	}
	return pieces, unmatched
}

func midpoint(s send) time.Time { return s.start.Add(s.accepted.Sub(s.start) / 2) }

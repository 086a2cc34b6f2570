package pull

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/emojicast/emojicast/store"
)

// topEvery is how often a node reports its busiest streams for the
// operators' view; well within store.TopTTL.
const topEvery = 2 * time.Second

// reportTop reports the node's busiest streams to the store, at most every
// topEvery, when the store keeps such reports. It runs on the syncer
// goroutine, which owns the streams' control state.
func (p *Node) reportTop(ctx context.Context, sc *syncScratch) {
	m, ok := p.opts.Store.(store.TopStreams)
	now := p.opts.Clock.Now()
	if !ok || now.Sub(p.topReported) < topEvery {
		return
	}
	p.topReported = now
	top := sc.top[:0]
	maxDivisor := int64(1)
	for _, st := range sc.streams {
		ctl := st.advice.Load()
		maxDivisor = max(maxDivisor, ctl.divisor)
		top = append(top, store.StreamStats{
			ID: st.id, Viewers: ctl.viewers, Sample: 1 / float64(ctl.divisor),
			TapsPerS: round2(st.audience.tapsPerS), CommentsPerS: round2(st.audience.commentsPerS),
		})
	}
	slices.SortFunc(top, func(a, b store.StreamStats) int {
		return cmp.Or(cmp.Compare(b.Viewers, a.Viewers), cmp.Compare(b.TapsPerS, a.TapsPerS), strings.Compare(a.ID, b.ID))
	})
	sc.top = top
	p.maxDivisor.Store(maxDivisor)
	if err := m.ReportTop(ctx, p.opts.NodeID, top[:min(len(top), store.MaxTopStreams)]); err != nil {
		p.metrics.controlErrors.Inc()
		p.logSyncError(err)
	}
}

// round2 keeps two decimals: the view needs no more, and reports stay small.
func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

package push

import (
	"context"
	"time"

	"github.com/emojicast/emojicast/ratelimit"
	"github.com/emojicast/emojicast/store"
)

// The per-user and per-address limits hold across the push fleet: every
// FlushInterval each node adds what each key near its limit used since it
// was last exchanged to the key's record in the store (one script per
// shard, pipelined), charged from when it began counting it, and takes
// back the fleet's TAT of the key. A key within a quarter of its limit on
// this node (ratelimit.KeptShare) stays here and costs the store nothing:
// most senders tap far below their limit. A client spreading sends over N
// nodes gets at most the limit, N quarters of it (what each node keeps)
// and (N-1) intervals' worth of it (what nodes allow between exchanges)
// over any window.

// limitsLoop shares the limits until Stop.
func (p *Node) limitsLoop() {
	tick := time.NewTicker(p.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			p.shareLimits()
		case <-p.stop:
			return
		}
	}
}

// shareLimits runs one exchange of every shared limiter. What a failed
// exchange carried is not retried: the fleet forgets those uses, erring
// toward letting clients through.
func (p *Node) shareLimits() {
	ctx, cancel := context.WithTimeout(p.life, p.opts.FlushTimeout)
	defer cancel()
	var keys []string
	var uses []store.LimitUse
	failed := false
	for _, sl := range p.shared {
		keys, uses = keys[:0], uses[:0]
		now := p.opts.Clock.Now()
		sl.Limiter.Usage(now.UnixNano(), func(k string, u ratelimit.Use) {
			keys = append(keys, k)
			uses = append(uses, store.LimitUse{Used: u.Used, Since: u.Since})
		})
		if len(keys) == 0 {
			continue
		}
		tats, err := p.sharer.ShareLimits(ctx, sl.Name, now, keys, uses)
		if err != nil {
			failed = true
			p.metrics.limitShareErrors.Inc()
			continue
		}
		for i, k := range keys {
			sl.Limiter.Merge(k, tats[i], now.UnixNano())
		}
	}
	if failed && !p.shareFailing {
		p.opts.Logger.Warn("cannot share rate limits with the fleet; limiting on this node alone until it works again")
	} else if !failed && p.shareFailing {
		p.opts.Logger.Info("sharing rate limits with the fleet again")
	}
	p.shareFailing = failed
}

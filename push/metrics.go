package push

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/internal/promreg"
)

// metrics are what this package counts, registered on the Registerer
// its options name.
type metrics struct {
	// emojicast_moderation_refused_total's reasons, resolved once.
	refusedClosed, refusedBanned, refusedEmoji, refusedCommentsOff, refusedSlowMode prometheus.Counter

	tapsAccepted      prometheus.Counter
	reactionsCounted  prometheus.Counter
	unadvertised      prometheus.Counter
	sendsDeduplicated prometheus.Counter
	rateLimited       prometheus.Counter
	addrLimited       prometheus.Counter
	overloaded        prometheus.Counter
	droppedReactions  prometheus.Counter
	unknownDropped    prometheus.Counter
	droppedComments   prometheus.Counter
	comments          *prometheus.CounterVec
	flushErrors       prometheus.Counter
	divisorErrors     prometheus.Counter
	limitShareErrors  prometheus.Counter
	flushDuration     prometheus.Histogram
}

// newMetrics registers the metrics on reg; nil registers nowhere.
func newMetrics(reg prometheus.Registerer) *metrics {
	refused := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "emojicast_moderation_refused_total",
		Help: "Sends and comments refused by stream settings and bans: closed, banned, emoji, comments_off, slow_mode.",
	}, []string{"reason"}))
	return &metrics{
		refusedClosed:      refused.WithLabelValues("closed"),
		refusedBanned:      refused.WithLabelValues("banned"),
		refusedEmoji:       refused.WithLabelValues("emoji"),
		refusedCommentsOff: refused.WithLabelValues("comments_off"),
		refusedSlowMode:    refused.WithLabelValues("slow_mode"),
		tapsAccepted: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_taps_accepted_total",
			Help: "Taps accepted (a send with count n is n taps).",
		})),
		reactionsCounted: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_reactions_counted_total",
			Help: "Reactions added to the counts: accepted taps weighted by 1/sample.",
		})),
		unadvertised: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_unadvertised_samples_total",
			Help: "Sends stating a sample the fleet did not advertise for the stream in the last 60 s, or that the node could not check, counted as their taps once.",
		})),
		sendsDeduplicated: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_sends_deduplicated_total",
			Help: "Sends answered 202 without being counted again: their id was counted in the last 2 minutes.",
		})),
		rateLimited: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_rate_limited_total",
			Help: "Sends refused with 429 because the user, or the address group of self-service ids, exceeded their rate.",
		})),
		addrLimited: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_address_weight_limited_total",
			Help: "Sends refused with 429 because the address group of self-service ids exceeded its weighted taps.",
		})),
		overloaded: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_overloaded_total",
			Help: "Sends refused with 503 because the node was over its load budget or its stream limit.",
		})),
		droppedReactions: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_reactions_dropped_total",
			Help: "Accepted reactions dropped because a store was unreachable for longer than the backlog holds.",
		})),
		unknownDropped: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_unknown_reactions_dropped_total",
			Help: "Reactions of batches dropped from a backlog because a write of theirs had an unknown outcome (maybe counted) longer ago than the store remembers batch ids, less a minute: retried, they could count twice.",
		})),
		droppedComments: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_comments_dropped_total",
			Help: "Accepted comments dropped because a store was unreachable for longer than the backlog holds.",
		})),
		comments: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emojicast_push_comments_total",
			Help: "Comments by what became of them: accepted (broadcast), shed (over the stream's budget), rate_limited (429), invalid (400).",
		}, []string{"result"})),
		flushErrors: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_flush_errors_total",
			Help: "Failed writes of a batch to a store (the batch stays in the backlog).",
		})),
		divisorErrors: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_divisor_refresh_errors_total",
			Help: "Failed reads of the streams' sample divisors from the store (the last known ones stay in use).",
		})),
		limitShareErrors: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_limit_share_errors_total",
			Help: "Failed exchanges of the per-user and per-address limits with the fleet (each node limits on its own until the next succeeds).",
		})),
		flushDuration: promreg.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "emojicast_push_flush_duration_seconds",
			Help:    "Time to write one batch to a store.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		})),
	}
}

// The results of a comment, as labels of emojicast_push_comments_total.
const (
	resultAccepted    = "accepted"
	resultShed        = "shed"
	resultRateLimited = "rate_limited"
	resultInvalid     = "invalid"
)

func (mt *metrics) commentsBy(result string) prometheus.Counter {
	return mt.comments.WithLabelValues(result)
}

// gaugeNodes holds, per registry, its live push nodes, which its gauges
// sum over: a process exposes the gauges whether or not it runs a push
// node (0 then), as the docs say.
var gaugeNodes sync.Map // prometheus.Registerer -> *sync.Map of *Push

// RegisterGauges registers the push gauges on reg, once per registry, and
// returns the set of nodes they sum over. emojicast registers them in
// every process; a node registers itself there while it runs.
func RegisterGauges(reg prometheus.Registerer) *sync.Map {
	v, loaded := gaugeNodes.LoadOrStore(reg, new(sync.Map))
	nodes := v.(*sync.Map)
	if loaded {
		return nodes
	}
	promreg.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_push_backlog_deltas",
		Help: "Per-second counts and comments waiting to be written to the stores.",
	}, func() float64 {
		n := 0
		nodes.Range(func(k, _ any) bool { n += k.(*Node).Backlog(); return true })
		return float64(n)
	}))
	promreg.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_push_stores_unreachable",
		Help: "Stores this process writes to whose last write failed (their counts wait in the backlog).",
	}, func() float64 {
		n := 0
		nodes.Range(func(k, _ any) bool {
			for _, t := range k.(*Node).targets {
				if !t.healthy.Load() {
					n++
				}
			}
			return true
		})
		return float64(n)
	}))
	promreg.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_push_active_streams",
		Help: "Streams with sums waiting for the next flush.",
	}, func() float64 {
		n := 0
		nodes.Range(func(k, _ any) bool { n += k.(*Node).agg.len(); return true })
		return float64(n)
	}))
	return nodes
}

// registerGauges counts the node in its registry's gauges until
// unregisterGauges.
func registerGauges(p *Node) {
	if p.opts.Registerer != nil {
		RegisterGauges(p.opts.Registerer).Store(p, struct{}{})
	}
}

func unregisterGauges(p *Node) {
	if p.opts.Registerer != nil {
		RegisterGauges(p.opts.Registerer).Delete(p)
	}
}

package push

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	tapsAccepted = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_taps_accepted_total",
		Help: "Taps accepted (a send with count n is n taps).",
	})
	reactionsCounted = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_reactions_counted_total",
		Help: "Reactions added to the counts: accepted taps weighted by 1/sample.",
	})
	unadvertised = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_unadvertised_samples_total",
		Help: "Sends stating a sample the fleet did not advertise for the stream in the last 60 s, or that the node could not check, counted as their taps once.",
	})
	sendsDeduplicated = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_sends_deduplicated_total",
		Help: "Sends answered 202 without being counted again: their id was counted in the last 2 minutes.",
	})
	rateLimited = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_rate_limited_total",
		Help: "Sends refused with 429 because the user, or the address group of self-service ids, exceeded their rate.",
	})
	addrLimited = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_address_weight_limited_total",
		Help: "Sends refused with 429 because the address group of self-service ids exceeded its weighted taps.",
	})
	overloaded = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_overloaded_total",
		Help: "Sends refused with 503 because the node was over its load budget or its stream limit.",
	})
	droppedReactions = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_reactions_dropped_total",
		Help: "Accepted reactions dropped because a store was unreachable for longer than the backlog holds.",
	})
	unknownDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_unknown_reactions_dropped_total",
		Help: "Reactions of batches dropped from a backlog because a write of theirs had an unknown outcome (maybe counted) longer ago than the store remembers batch ids, less a minute: retried, they could count twice.",
	})
	droppedComments = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_comments_dropped_total",
		Help: "Accepted comments dropped because a store was unreachable for longer than the backlog holds.",
	})
	comments = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "emojicast_push_comments_total",
		Help: "Comments by what became of them: accepted (broadcast), shed (over the stream's budget), rate_limited (429), invalid (400).",
	}, []string{"result"})
	flushErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_flush_errors_total",
		Help: "Failed writes of a batch to a store (the batch stays in the backlog).",
	})
	divisorErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_divisor_refresh_errors_total",
		Help: "Failed reads of the streams' sample divisors from the store (the last known ones stay in use).",
	})
	limitShareErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_limit_share_errors_total",
		Help: "Failed exchanges of the per-user and per-address limits with the fleet (each node limits on its own until the next succeeds).",
	})
	flushDuration = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "emojicast_push_flush_duration_seconds",
		Help:    "Time to write one batch to a store.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
	})
)

// The results of a comment, as labels of emojicast_push_comments_total.
const (
	resultAccepted    = "accepted"
	resultShed        = "shed"
	resultRateLimited = "rate_limited"
	resultInvalid     = "invalid"
)

func commentsBy(result string) prometheus.Counter { return comments.WithLabelValues(result) }

// nodes holds the live push nodes of this process, for the gauges.
var nodes sync.Map // *Push -> struct{}

func init() {
	promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_push_backlog_deltas",
		Help: "Per-second counts and comments waiting to be written to the stores.",
	}, func() float64 {
		n := 0
		nodes.Range(func(k, _ any) bool { n += k.(*Push).Backlog(); return true })
		return float64(n)
	})
	promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_push_stores_unreachable",
		Help: "Stores this process writes to whose last write failed (their counts wait in the backlog).",
	}, func() float64 {
		n := 0
		nodes.Range(func(k, _ any) bool {
			for _, t := range k.(*Push).targets {
				if !t.healthy.Load() {
					n++
				}
			}
			return true
		})
		return float64(n)
	})
	promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_push_active_streams",
		Help: "Streams with sums waiting for the next flush.",
	}, func() float64 {
		n := 0
		nodes.Range(func(k, _ any) bool { n += k.(*Push).agg.len(); return true })
		return float64(n)
	})
}

func registerGauges(p *Push) { nodes.Store(p, struct{}{}) }

func unregisterGauges(p *Push) { nodes.Delete(p) }

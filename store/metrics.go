package store

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/internal/promreg"
)

// metrics are what this package counts, registered on the Registerer
// its options name.
type metrics struct {
	lateCarried         prometheus.Counter
	lateCommentsCarried prometheus.Counter
	commentsDropped     prometheus.Counter
	retractionsDropped  prometheus.Counter
	evictedStreams      prometheus.Counter
	historyEvicted      prometheus.Counter
	aheadClamped        prometheus.Counter
	tryAgainGiveUps     prometheus.Counter
	replicaWaitFailures prometheus.Counter
}

// newMetrics registers the metrics on reg; nil registers nowhere.
func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		lateCarried: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_store_late_reactions_carried_total",
			Help: "Reactions that reached the store after their second was sealed and were carried into the oldest unsealed second.",
		})),
		lateCommentsCarried: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_store_late_comments_carried_total",
			Help: "Comments that reached the store after their second was sealed and were carried into the oldest unsealed second.",
		})),
		commentsDropped: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_store_comments_dropped_total",
			Help: "Accepted comments dropped because every second they could spill into, up to MaxCommentSpill past the oldest open one, already held the most comments a second may.",
		})),
		retractionsDropped: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_store_retractions_dropped_total",
			Help: "Comment retractions dropped because their second already held the most comments and retractions it may.",
		})),
		evictedStreams: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_store_streams_evicted_total",
			Help: "Streams dropped from the in-memory store because it held its maximum number of streams.",
		})),
		historyEvicted: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_store_history_seconds_evicted_total",
			Help: "Sealed seconds the in-memory store dropped from its history before their time because the history held its byte budget.",
		})),
		aheadClamped: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_store_ahead_reactions_clamped_total",
			Help: "Reactions written for a second more than 30 s past the open one (a push node whose clock is far ahead), added to the open second instead.",
		})),
		tryAgainGiveUps: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_store_tryagain_exhausted_total",
			Help: "Redis scripts still answered TRYAGAIN (a slot migrating) after 2 s of retries; the write or read fails and is retried by its caller.",
		})),
		replicaWaitFailures: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_store_replica_wait_failures_total",
			Help: "Writes Redis took that WAIT did not confirm on --redis-min-replicas replicas in time; the writer keeps them and retries.",
		})),
	}
}

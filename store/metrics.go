package store

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	lateCarried = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_store_late_reactions_carried_total",
		Help: "Reactions that reached the store after their second was sealed and were carried into the oldest unsealed second.",
	})
	lateCommentsCarried = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_store_late_comments_carried_total",
		Help: "Comments that reached the store after their second was sealed and were carried into the oldest unsealed second.",
	})
	commentsDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_store_comments_dropped_total",
		Help: "Comments dropped because their second already held the most comments a second may (late comments carried into a full second).",
	})
	retractionsDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_store_retractions_dropped_total",
		Help: "Comment retractions dropped because their second already held the most comments and retractions it may.",
	})
	evictedStreams = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_store_streams_evicted_total",
		Help: "Streams dropped from the in-memory store because it held its maximum number of streams.",
	})
	historyEvicted = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_store_history_seconds_evicted_total",
		Help: "Sealed seconds the in-memory store dropped from its history before their time because the history held its byte budget.",
	})
)

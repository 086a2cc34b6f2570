package danmaku

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	filterFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "emojicast_push_comment_filter_failures_total",
		Help: "Comments the word filter failed on, by reason (error, panic, timeout, or busy: too many slow calls under way) and outcome (masked: sent masked whole; shed: not sent).",
	}, []string{"reason", "outcome"})
	commentLoadErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_push_comment_load_errors_total",
		Help: "Failed reports or reads of the fleet's comment load (the last known figures stay in use).",
	})
	slowModeFallbacks = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "emojicast_push_slow_mode_fallbacks_total",
		Help: "Comments to streams in slow mode that this node let through on its own record because the store did not take the user's turn in time (timeout, error) or too many comments waited for it (busy).",
	}, []string{"reason"})
)

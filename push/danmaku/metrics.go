package danmaku

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/internal/promreg"
)

// metrics are what this package counts, registered on the Registerer
// its options name.
type metrics struct {
	filterFailures    *prometheus.CounterVec
	commentLoadErrors prometheus.Counter
	slowModeFallbacks *prometheus.CounterVec
}

// newMetrics registers the metrics on reg; nil registers nowhere.
func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		filterFailures: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emojicast_push_comment_filter_failures_total",
			Help: "Comments the word filter failed on, by reason (error, panic, timeout, or busy: too many slow calls under way) and outcome (masked: sent masked whole; shed: not sent).",
		}, []string{"reason", "outcome"})),
		commentLoadErrors: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_push_comment_load_errors_total",
			Help: "Failed reports or reads of the fleet's comment load (the last known figures stay in use).",
		})),
		slowModeFallbacks: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emojicast_push_slow_mode_fallbacks_total",
			Help: "Comments to streams in slow mode that this node let through on its own record because the store did not take the user's turn in time (timeout, error) or too many comments waited for it (busy).",
		}, []string{"reason"})),
	}
}

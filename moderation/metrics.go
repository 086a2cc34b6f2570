package moderation

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/internal/promreg"
)

// metrics are what Rules count, registered on Options.Registerer.
type metrics struct {
	refreshErrors prometheus.Counter
	lastRefresh   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		refreshErrors: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_moderation_refresh_errors_total",
			Help: "Failed reads of the stream settings and bans from the store (the last known ones stay in force).",
		})),
		lastRefresh: promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "emojicast_moderation_last_refresh_timestamp_seconds",
			Help: "When this process last read the moderation version from the store, Unix seconds.",
		})),
	}
}

// slowModeEvicted counts what a SlowMode forgets early, on reg.
func slowModeEvicted(reg prometheus.Registerer) prometheus.Counter {
	return promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_moderation_slow_mode_evicted_total",
		Help: "Users forgotten by slow mode before their period passed, because it remembered its maximum.",
	}))
}

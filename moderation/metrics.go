package moderation

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	refreshErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_moderation_refresh_errors_total",
		Help: "Failed reads of the stream settings and bans from the store (the last known ones stay in force).",
	})
	lastRefresh = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "emojicast_moderation_last_refresh_timestamp_seconds",
		Help: "When this process last read the moderation version from the store, Unix seconds.",
	})
	slowModeEvicted = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_moderation_slow_mode_evicted_total",
		Help: "Users forgotten by slow mode before their period passed, because it remembered its maximum.",
	})
	// Refused counts sends and comments refused by moderation, by reason.
	Refused = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "emojicast_moderation_refused_total",
		Help: "Sends and comments refused by stream settings and bans: closed, banned, emoji, comments_off, slow_mode.",
	}, []string{"reason"})
)

package comment

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/internal/promreg"
)

// reloadErrors counts failed reloads of the word file, on reg.
func reloadErrors(reg prometheus.Registerer) prometheus.Counter {
	return promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_comment_filter_reload_errors_total",
		Help: "Failed reloads of the blocked-word file (the last good list stays in use).",
	}))
}

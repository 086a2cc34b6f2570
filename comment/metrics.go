package comment

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var reloadErrors = promauto.NewCounter(prometheus.CounterOpts{
	Name: "emojicast_comment_filter_reload_errors_total",
	Help: "Failed reloads of the blocked-word file (the last good list stays in use).",
})

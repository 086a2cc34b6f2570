package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/internal/promreg"
)

// metrics are what this package counts, registered on the Registerer
// its options name.
type metrics struct {
	actions      *prometheus.CounterVec
	unauthorized prometheus.Counter
}

// newMetrics registers the metrics on reg; nil registers nowhere.
func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		actions: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emojicast_admin_actions_total",
			Help: "Admin API calls with a valid token, by action (list_streams, get_stream, put_settings, ban, unban, retract_comment) and result (ok, refused: 4xx, failed: 5xx).",
		}, []string{"action", "result"})),
		unauthorized: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_admin_unauthorized_total",
			Help: "Admin API calls refused with 401: no token or a wrong one.",
		})),
	}
}

package admin

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	actions = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "emojicast_admin_actions_total",
		Help: "Admin API calls with a valid token, by action (list_streams, get_stream, put_settings, ban, unban, retract_comment) and result (ok, refused: 4xx, failed: 5xx).",
	}, []string{"action", "result"})
	unauthorized = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_admin_unauthorized_total",
		Help: "Admin API calls refused with 401: no token or a wrong one.",
	})
)

package server

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/internal/promreg"
)

// metrics are what this package counts, registered on the Registerer
// its options name.
type metrics struct {
	// resolved holds each (route, status)'s series once used, and
	// routeSent each route's, so the request path hashes no label values.
	resolved  [numMetricRoutes][600]atomic.Pointer[routeStatus]
	routeSent [numMetricRoutes]prometheus.Counter

	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	bytesSent      *prometheus.CounterVec
	parseErrors    prometheus.Counter
	openConns      prometheus.Gauge
	connsAccepted  prometheus.Counter
	connsReclaimed prometheus.Counter
	connsRefused   *prometheus.CounterVec
	ipLimited      *prometheus.CounterVec
}

// newMetrics registers the metrics on reg; nil registers nowhere.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emojicast_http_requests_total",
			Help: "HTTP requests by route and status.",
		}, []string{"route", "status"})),
		latency: promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "emojicast_http_request_duration_seconds",
			Help:    "Time to handle an HTTP request, by route and status, from parsed request to response ready.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10),
		}, []string{"route", "status"})),
		bytesSent: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emojicast_http_response_body_bytes_total",
			Help: "Response body bytes sent, by route.",
		}, []string{"route"})),
		parseErrors: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_http_unreadable_requests_total",
			Help: "Requests fasthttp could not read: malformed, too large or too slow.",
		})),
		openConns: promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "emojicast_http_open_connections",
			Help: "Client connections open.",
		})),
		connsAccepted: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_http_connections_accepted_total",
			Help: "Client connections accepted within the limits; a fast rise at steady traffic means clients or proxies do not keep connections alive.",
		})),
		connsReclaimed: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_http_connections_reclaimed_total",
			Help: "Connections closed at max_conns to make room for a new one, because they had waited longest (at least 1 s) for their client.",
		})),
		connsRefused: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emojicast_http_connections_refused_total",
			Help: "Connections refused at accept: max_conns (503), max_conns_per_ip (429), dropped (closed unanswered while too many refusals were being written).",
		}, []string{"reason"})),
		ipLimited: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emojicast_http_client_ip_limited_total",
			Help: "Requests refused with 429 because their client address exceeded its rate, by limit (send, watch, poll: per stream; admin: wrong admin tokens).",
		}, []string{"limit"})),
	}
	for r := range numMetricRoutes {
		m.routeSent[r] = m.bytesSent.WithLabelValues(metricRouteName(r))
	}
	return m
}

// routeStatus holds the resolved metrics of one (route, status), so the
// request path does not hash label values.
type routeStatus struct {
	count prometheus.Counter
	dur   prometheus.Observer
}

// The metrics' route label is the API route, but for sends: a POST to
// /v1/streams/{stream}/reactions is "send", so that route="reactions"
// counts polls only and a shed send is no failed poll (the poll error
// alert reads it).
const (
	metricSend      = api.NumRoutes // the label index of sends
	numMetricRoutes = api.NumRoutes + 1
)

func metricRouteName(r int) string {
	if r == metricSend {
		return "send"
	}
	return api.Route(r).String()
}

// metricRoute returns the label index of a request of route.
func metricRoute(route api.Route, ctx *fasthttp.RequestCtx) int {
	if route == api.RouteReactions && ctx.IsPost() {
		return metricSend
	}
	return int(route)
}

func (m *metrics) observe(route int, status int, d time.Duration, bodyLen int) {
	if status < 100 || status >= 600 {
		status = 599
	}
	slot := &m.resolved[route][status]
	rs := slot.Load()
	if rs == nil {
		code := strconv.Itoa(status)
		name := metricRouteName(route)
		rs = &routeStatus{
			count: m.requests.WithLabelValues(name, code),
			dur:   m.latency.WithLabelValues(name, code),
		}
		slot.Store(rs)
	}
	rs.count.Inc()
	rs.dur.Observe(d.Seconds())
	m.routeSent[route].Add(float64(bodyLen))
}

// newMetricsHandler serves what gather collects, in Prometheus's text
// format, counting its own scrapes on reg as promhttp.Handler does.
func newMetricsHandler(reg prometheus.Registerer, gather prometheus.Gatherer) fasthttp.RequestHandler {
	h := promhttp.HandlerFor(gather, promhttp.HandlerOpts{})
	if reg != nil {
		h = promhttp.InstrumentMetricHandler(reg, h)
	}
	return fasthttpadaptor.NewFastHTTPHandler(h)
}

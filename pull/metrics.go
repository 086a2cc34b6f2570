package pull

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/internal/promreg"
)

// metrics are what this package counts, registered on the Registerer
// its options name.
type metrics struct {
	edgePolls        prometheus.Counter
	bodiesEncoded    prometheus.Counter
	bodiesAssembled  prometheus.Counter
	piecesEncoded    prometheus.Counter
	notModified      prometheus.Counter
	pollsRefused     prometheus.Counter
	secondsPublished prometheus.Counter
	streamsEvicted   prometheus.Counter
	unknownEmojis    prometheus.Counter
	historyServed    *prometheus.CounterVec
	historyDropped   *prometheus.CounterVec
	historyErrors    prometheus.Counter
	syncErrors       prometheus.Counter
	controlErrors    prometheus.Counter
	syncDuration     prometheus.Histogram
}

// newMetrics registers the metrics on reg; nil registers nowhere.
func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		edgePolls: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_pull_edge_polls_total",
			Help: "Polls the edges reported in their log feed (cache hits included) of a stream this node serves; each client counts at most --ip-viewers viewers.",
		})),
		bodiesEncoded: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_pull_bodies_encoded_total",
			Help: "Poll bodies of viewers who keep up encoded and gzipped whole (cache misses); every other poll is served from stored bytes or pieces.",
		})),
		bodiesAssembled: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_pull_bodies_assembled_total",
			Help: "Poll bodies assembled from pieces compressed once (cursors a few seconds or more behind).",
		})),
		piecesEncoded: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_pull_pieces_encoded_total",
			Help: "Body pieces (a second's bucket, a second's head) compressed; each at most once but for races.",
		})),
		notModified: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_pull_not_modified_total",
			Help: "Polls answered 304 Not Modified.",
		})),
		pollsRefused: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_pull_streams_refused_total",
			Help: "Polls and watches refused with 503 because the node serves its maximum number of streams.",
		})),
		secondsPublished: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_pull_seconds_published_total",
			Help: "Non-empty stream seconds published into rings.",
		})),
		streamsEvicted: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_pull_streams_evicted_total",
			Help: "Streams dropped because nobody polled them for the idle time, or, when the node serves its maximum, for twice their poll interval.",
		})),
		unknownEmojis: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_pull_unknown_emoji_counts_total",
			Help: "Counts from the store for emojis not in this node's set (nodes configured with different sets).",
		})),
		historyServed: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emojicast_pull_history_served_total",
			Help: "History answers by kind: sealed (whole sealed minutes, read from the store), cached (the same, from the node's cache) and partial (max-age=1).",
		}, []string{"kind"})),
		historyDropped: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emojicast_pull_history_cache_dropped_total",
			Help: "Sealed history answers the node's cache dropped: expired (kept their max-age) or full (pushed out by newer ones at the cache's byte or entry bound).",
		}, []string{"reason"})),
		historyErrors: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_pull_history_errors_total",
			Help: "History requests answered 503 because the store could not be read.",
		})),
		syncErrors: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_pull_sync_errors_total",
			Help: "Syncs with the store that failed.",
		})),
		controlErrors: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_pull_control_errors_total",
			Help: "Control steps that could not read or report the fleet's viewer and sample figures.",
		})),
		syncDuration: promreg.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "emojicast_pull_sync_duration_seconds",
			Help:    "Time of one sync with the store.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		})),
	}
}

// gaugeNodes holds, per registry, its live pull nodes, which its gauges
// go over: a process exposes the gauges whether or not it runs a pull
// node (0 then), as the docs say.
var gaugeNodes sync.Map // prometheus.Registerer -> *sync.Map of *Pull

// RegisterGauges registers the pull gauges on reg, once per registry, and
// returns the set of nodes they go over. emojicast registers them in
// every process; a node registers itself there while it runs.
func RegisterGauges(reg prometheus.Registerer) *sync.Map {
	v, loaded := gaugeNodes.LoadOrStore(reg, new(sync.Map))
	nodes := v.(*sync.Map)
	if loaded {
		return nodes
	}
	promreg.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_pull_active_streams",
		Help: "Streams this node keeps rings for.",
	}, func() float64 {
		n := 0
		nodes.Range(func(k, _ any) bool { n += k.(*Node).streams.len(); return true })
		return float64(n)
	}))
	promreg.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_pull_publish_lag_seconds",
		Help: "How far the newest second this process published is behind its clock: about 1 s plus the seal delay when healthy; it grows while the store is unreachable or slow.",
	}, func() float64 {
		lag := 0.0
		nodes.Range(func(k, _ any) bool { lag = max(lag, k.(*Node).publishLag().Seconds()); return true })
		return lag
	}))
	promreg.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_pull_sample_divisor_max",
		Help: "The largest sample divisor (1/sample) this process advertises for any stream, as of its last report of its busiest streams.",
	}, func() float64 {
		d := int64(1)
		nodes.Range(func(k, _ any) bool { d = max(d, k.(*Node).maxDivisor.Load()); return true })
		return float64(d)
	}))
	promreg.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_pull_sample_divisor_cap",
		Help: "The largest sample divisor this process may advertise (--max-divisor); 0 in a process without a pull node.",
	}, func() float64 {
		d := int64(0)
		nodes.Range(func(k, _ any) bool { d = max(d, k.(*Node).opts.MaxDivisor); return true })
		return float64(d)
	}))
	return nodes
}

// registerGauges counts the node in its registry's gauges until
// unregisterGauges.
func registerGauges(p *Node) {
	if p.opts.Registerer != nil {
		RegisterGauges(p.opts.Registerer).Store(p, struct{}{})
	}
}

func unregisterGauges(p *Node) {
	if p.opts.Registerer != nil {
		RegisterGauges(p.opts.Registerer).Delete(p)
	}
}

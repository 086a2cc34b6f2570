package pull

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	bodiesEncoded = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_pull_bodies_encoded_total",
		Help: "Poll bodies of viewers who keep up encoded and gzipped whole (cache misses); every other poll is served from stored bytes or pieces.",
	})
	bodiesAssembled = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_pull_bodies_assembled_total",
		Help: "Poll bodies assembled from pieces compressed once (cursors a few seconds or more behind).",
	})
	piecesEncoded = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_pull_pieces_encoded_total",
		Help: "Body pieces (a second's bucket, a second's head) compressed; each at most once but for races.",
	})
	notModified = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_pull_not_modified_total",
		Help: "Polls answered 304 Not Modified.",
	})
	pollsRefused = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_pull_streams_refused_total",
		Help: "Polls and watches refused with 503 because the node serves its maximum number of streams.",
	})
	secondsPublished = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_pull_seconds_published_total",
		Help: "Non-empty stream seconds published into rings.",
	})
	streamsEvicted = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_pull_streams_evicted_total",
		Help: "Streams dropped because nobody polled them for the idle time, or, when the node serves its maximum, for twice their poll interval.",
	})
	unknownEmojis = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_pull_unknown_emoji_counts_total",
		Help: "Counts from the store for emojis not in this node's set (nodes configured with different sets).",
	})
	historyServed = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "emojicast_pull_history_served_total",
		Help: "History answers by kind: sealed (whole sealed minutes, read from the store), cached (the same, from the node's cache) and partial (max-age=1).",
	}, []string{"kind"})
	historyDropped = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "emojicast_pull_history_cache_dropped_total",
		Help: "Sealed history answers the node's cache dropped: expired (kept their max-age) or full (pushed out by newer ones at the cache's byte or entry bound).",
	}, []string{"reason"})
	historyErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_pull_history_errors_total",
		Help: "History requests answered 503 because the store could not be read.",
	})
	syncErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_pull_sync_errors_total",
		Help: "Syncs with the store that failed.",
	})
	controlErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "emojicast_pull_control_errors_total",
		Help: "Control steps that could not read or report the fleet's viewer and sample figures.",
	})
	syncDuration = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "emojicast_pull_sync_duration_seconds",
		Help:    "Time of one sync with the store.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
	})
)

var nodes sync.Map // *Pull -> struct{}

func init() {
	promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_pull_active_streams",
		Help: "Streams this node keeps rings for.",
	}, func() float64 {
		n := 0
		nodes.Range(func(k, _ any) bool { n += k.(*Pull).streams.len(); return true })
		return float64(n)
	})
}

func init() {
	promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_pull_publish_lag_seconds",
		Help: "How far the newest second this process published is behind its clock: about 1 s plus the seal delay when healthy; it grows while the store is unreachable or slow.",
	}, func() float64 {
		lag := 0.0
		nodes.Range(func(k, _ any) bool { lag = max(lag, k.(*Pull).publishLag().Seconds()); return true })
		return lag
	})
	promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_pull_sample_divisor_max",
		Help: "The largest sample divisor (1/sample) this process advertises for any stream, as of its last report of its busiest streams.",
	}, func() float64 {
		d := int64(1)
		nodes.Range(func(k, _ any) bool { d = max(d, k.(*Pull).maxDivisor.Load()); return true })
		return float64(d)
	})
	promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "emojicast_pull_sample_divisor_cap",
		Help: "The largest sample divisor this process may advertise (--max-divisor); 0 in a process without a pull node.",
	}, func() float64 {
		d := int64(0)
		nodes.Range(func(k, _ any) bool { d = max(d, k.(*Pull).opts.MaxDivisor); return true })
		return float64(d)
	})
}

func registerGauges(p *Pull)   { nodes.Store(p, struct{}{}) }
func unregisterGauges(p *Pull) { nodes.Delete(p) }

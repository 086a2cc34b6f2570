package main

import (
	"fmt"
	"math"
	"strings"
)

// The model of docs/capacity.md: what a fleet costs, from unit costs. It
// takes its units from two calibration runs of this tool on a small fleet
// (one pull and one push node; 2 and 4 streams, each with the same
// audience and senders), must reproduce the figures of the scaled runs
// within Tolerances (model_test.go checks the recorded runs), and only
// then is used to extrapolate (Plan, whose table docs/capacity.md
// carries).

// Units are the unit costs the model is built from.
type Units struct {
	// PollIntervalS is the mean time between one viewer's polls of a
	// busy stream: next_ms 1000 with +-10% jitter, plus the poll's own
	// latency.
	PollIntervalS float64 `json:"poll_interval_s"`
	// RefillsPerStreamEdge is the origin polls per stream per edge per
	// second: about one per distinct cursor a second, whatever the
	// audience behind the edge.
	RefillsPerStreamEdge float64 `json:"refills_per_stream_edge"`
	// RedisPerPullNode and RedisPerPushNode are a node's Redis commands/s
	// with nobody watching (clock, horizon, moderation and divisor
	// refreshes, limit exchanges).
	RedisPerPullNode float64 `json:"redis_per_pull_node"`
	RedisPerPushNode float64 `json:"redis_per_push_node"`
	// RedisPerSendingPushNode is what a push node adds when it takes sends
	// at all, whatever the streams: its limit exchanges with the fleet
	// (a GET and a SET per user and address that sent in the last 250 ms;
	// the calibration's senders are the same 20 users on every stream).
	RedisPerSendingPushNode float64 `json:"redis_per_sending_push_node"`
	// RedisPushPerStream is the Redis commands per busy stream-second of
	// the push node that took its sends (its flush: counts, history, data
	// points); RedisPullPerStream those of the pull node that syncs it.
	RedisPushPerStream float64 `json:"redis_push_per_stream"`
	RedisPullPerStream float64 `json:"redis_pull_per_stream"`
	// RedisFixedCores and RedisCPUPerCommandUS are Redis's CPU: what it
	// spends whatever the load, and per command (scripts' calls counted
	// as commands), in µs. (The edge's CPU is not modelled: nginx's CPU
	// per poll falls as its load grows, 62 µs at 1,000 polls/s, 58 at
	// 2,000, 32 at 10,000, so no line through small runs predicts it.)
	RedisFixedCores      float64 `json:"redis_fixed_cores"`
	RedisCPUPerCommandUS float64 `json:"redis_cpu_per_command_us"`
	// TapsPerSend is the taps one accepted send carries.
	TapsPerSend float64 `json:"taps_per_send"`
	// Delivered is the fraction of accepted taps viewers saw.
	Delivered float64 `json:"delivered"`
}

// Load is a fleet and its audience.
type Load struct {
	Viewers, Streams, Edges, Pull, Push int
	// PushPerStream is how many push nodes take a stream's sends: 1 with
	// the edge's push upstream hashed on the stream (deploy/nginx.conf),
	// up to Push with round-robin, whenever a stream has more senders
	// than push nodes.
	PushPerStream float64
}

// Figures are what a run reports and the model predicts.
type Figures struct {
	EdgePollsPerSec     float64
	OriginPollsPerSec   float64
	HitRatio            float64
	RedisCommandsPerSec float64
	RedisCores          float64
	Delivered           float64
}

// Predict is the model: every figure is a sum of unit costs times what
// they scale with.
func Predict(u Units, l Load) Figures {
	edge := float64(l.Viewers) / u.PollIntervalS
	origin := float64(l.Streams*l.Edges) * u.RefillsPerStreamEdge
	// Push nodes that take any sends: every one, once there are as many
	// streams as nodes (or round-robin).
	sending := math.Min(float64(l.Push), float64(l.Streams)*l.PushPerStream)
	redis := float64(l.Pull)*u.RedisPerPullNode + float64(l.Push)*u.RedisPerPushNode +
		sending*u.RedisPerSendingPushNode +
		float64(l.Streams)*(l.PushPerStream*u.RedisPushPerStream+u.RedisPullPerStream)
	return Figures{
		EdgePollsPerSec:     edge,
		OriginPollsPerSec:   origin,
		HitRatio:            1 - origin/edge,
		RedisCommandsPerSec: redis,
		RedisCores:          u.RedisFixedCores + redis*u.RedisCPUPerCommandUS/1e6,
		Delivered:           u.Delivered,
	}
}

// pushWrites are the commands only a push node's flush runs
// (store/redis_add.lua): the part of a busy stream's Redis cost that
// repeats for every push node that took its sends.
var pushWrites = []string{"hincrby", "expire", "xadd", "zadd", "zremrangebyscore", "exists", "rpush", "llen", "hset"}

func pushWriteRate(r *report) float64 {
	n := 0.0
	for _, c := range pushWrites {
		n += r.RedisByCommand[c]
	}
	return n
}

// UnitsFrom derives the unit costs from two calibration runs that differ
// only in their streams (a has fewer): each stream busy, its sends on one
// push node and its polls on one pull node, behind one edge. What grows
// from a to b is per stream (split into the flush's writes, pushWrites,
// and the rest); what a has beyond that and the idle nodes is the sending
// push node's. Redis's CPU is split into fixed and per-command parts the
// same way.
func UnitsFrom(a, b *report) Units {
	ds := float64(b.Streams - a.Streams)
	perStream := (b.RedisCommandsPerSec - a.RedisCommandsPerSec) / ds
	pushPerStream := (pushWriteRate(b) - pushWriteRate(a)) / ds
	idle := func(r *report) float64 {
		return float64(r.Pull)*r.IdleRedisPerPull + float64(r.Push)*r.IdleRedisPerPush
	}
	redisPerCmd := (b.Cores["redis"] - a.Cores["redis"]) / (b.RedisCommandsPerSec - a.RedisCommandsPerSec)
	return Units{
		PollIntervalS:           float64(a.Viewers+b.Viewers) / (a.EdgePollsPerSec + b.EdgePollsPerSec),
		RefillsPerStreamEdge:    (a.OriginPollsPerSec + b.OriginPollsPerSec) / float64(a.Streams+b.Streams),
		RedisPerPullNode:        (a.IdleRedisPerPull + b.IdleRedisPerPull) / 2,
		RedisPerPushNode:        (a.IdleRedisPerPush + b.IdleRedisPerPush) / 2,
		RedisPerSendingPushNode: (a.RedisCommandsPerSec - idle(a) - float64(a.Streams)*perStream) / float64(a.Push),
		RedisPushPerStream:      pushPerStream,
		RedisPullPerStream:      perStream - pushPerStream,
		RedisFixedCores:         a.Cores["redis"] - a.RedisCommandsPerSec*redisPerCmd,
		RedisCPUPerCommandUS:    redisPerCmd * 1e6,
		TapsPerSend:             (a.TapsPerSec + b.TapsPerSec) / (a.SendsPerSec + b.SendsPerSec),
		Delivered:               math.Min(a.Delivered, b.Delivered),
	}
}

// loadOf is the fleet of a run: one edge.
func loadOf(r *report, pushPerStream float64) Load {
	return Load{Viewers: r.Viewers, Streams: r.Streams, Edges: 1, Pull: r.Pull, Push: r.Push, PushPerStream: pushPerStream}
}

// figuresOf are a run's measured figures.
func figuresOf(r *report) Figures {
	return Figures{
		EdgePollsPerSec:     r.EdgePollsPerSec,
		OriginPollsPerSec:   r.OriginPollsPerSec,
		HitRatio:            r.EdgeHitRatio,
		RedisCommandsPerSec: r.RedisCommandsPerSec,
		RedisCores:          r.Cores["redis"],
		Delivered:           r.Delivered,
	}
}

// Tolerances are how far a prediction may be from a measurement, as a
// fraction of the measurement (hit ratio and delivered: of 1 minus it,
// the misses, which is what the ratio is read for).
var Tolerances = Figures{
	EdgePollsPerSec:     0.05,
	OriginPollsPerSec:   0.25,
	HitRatio:            0.25,
	RedisCommandsPerSec: 0.20,
	RedisCores:          0.35,
	Delivered:           0,
}

// compare returns what of got is outside the tolerances around want.
func compare(got, want Figures) []string {
	var bad []string
	check := func(name string, g, w, tol float64) {
		if math.Abs(g-w) > tol*math.Abs(w)+1e-9 {
			bad = append(bad, fmt.Sprintf("%s: model %.4g, measured %.4g (tolerance %.0f%%)", name, g, w, tol*100))
		}
	}
	check("edge polls/s", got.EdgePollsPerSec, want.EdgePollsPerSec, Tolerances.EdgePollsPerSec)
	check("origin polls/s", got.OriginPollsPerSec, want.OriginPollsPerSec, Tolerances.OriginPollsPerSec)
	check("edge misses (1 - hit ratio)", 1-got.HitRatio, 1-want.HitRatio, Tolerances.HitRatio)
	check("Redis commands/s", got.RedisCommandsPerSec, want.RedisCommandsPerSec, Tolerances.RedisCommandsPerSec)
	check("Redis cores", got.RedisCores, want.RedisCores, Tolerances.RedisCores)
	check("undelivered (1 - delivered)", 1-got.Delivered, 1-want.Delivered, Tolerances.Delivered)
	return bad
}

// PlanLoad is the audience docs/capacity.md plans for, and planTaps its
// taps a second.
var PlanLoad = Load{Viewers: 10_000_000, Streams: 1000, Edges: 100, Pull: 3, Push: 6, PushPerStream: 1}

const planTaps = 1_000_000

// Limit sharing is not in Predict: the runs' senders are the same 20 users
// on every stream, so no run measures it per sender. It is measured per
// send by benchmarks/limits: users sending once a second, 1-5 taps each
// (the plan's 3.14 taps a send is 31% of the per-user limit), cost 0.63
// Redis commands a send (a GET and a SET per key handed over; a key within
// a quarter of its limit stays on its push node, ratelimit.KeptShare).
// A client address sending one viewer's taps (1 send/s of 50 allowed) is
// never handed over; addresses shared by many senders are, and are not in
// the figure.
const limitCommandsPerSend = 0.63

// Plan renders the model's figures for PlanLoad, with round-robin sends
// for comparison, as the Markdown table docs/capacity.md carries.
func Plan(u Units) string {
	hashed := Predict(u, PlanLoad)
	rr := PlanLoad
	rr.PushPerStream = float64(rr.Push)
	spread := Predict(u, rr)
	sends := planTaps / u.TapsPerSend
	limits := sends * limitCommandsPerSend
	var b strings.Builder
	fmt.Fprintf(&b, "| figure (%s viewers, %s streams, %s taps/s; %d edges, %d pull + %d push nodes) | value | from |\n",
		thousands(float64(PlanLoad.Viewers)), thousands(float64(PlanLoad.Streams)), thousands(planTaps), PlanLoad.Edges, PlanLoad.Pull, PlanLoad.Push)
	b.WriteString("|---|---|---|\n")
	row := func(what, v, from string) { fmt.Fprintf(&b, "| %s | %s | %s |\n", what, v, from) }
	row("polls/s at the edges", thousands(hashed.EdgePollsPerSec), "model")
	row("polls/s at the origin", thousands(hashed.OriginPollsPerSec), "model")
	row("edge hit ratio", fmt.Sprintf("%.5f", hashed.HitRatio), "model")
	row("Redis commands/s for streams and nodes, sends hashed on the stream", thousands(hashed.RedisCommandsPerSec), "model")
	row("the same, sends round-robin over the push nodes", thousands(spread.RedisCommandsPerSec), "model (an upper bound)")
	row(fmt.Sprintf("sends/s (%.2f taps a send)", u.TapsPerSend), thousands(sends), "model")
	row("Redis commands/s for sharing the send limits", thousands(limits), "sends/s × commands per send measured (benchmarks/limits)")
	row("Redis commands/s in all, sends hashed", thousands(hashed.RedisCommandsPerSec+limits), "sum")
	row("Redis CPU at the per-command cost measured here, cores", fmt.Sprintf("%.1f", u.RedisFixedCores+(hashed.RedisCommandsPerSec+limits)*u.RedisCPUPerCommandUS/1e6), "model (an upper bound)")
	row("delivered fraction", fmt.Sprintf("%.4f", hashed.Delivered), "model")
	return b.String()
}

// thousands formats v rounded to a whole number with comma separators.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", math.Round(v))
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

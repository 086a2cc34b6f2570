package main

import (
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestFleetSmoke runs a small fleet the way the scaled run does (two
// streams, 60 viewers, two pull and two push nodes behind the shipped
// edge) and checks that the report holds together: every accepted tap
// seen, polls answered mostly from the edge's cache, each stream's sends
// on one push node and its polls on one pull node, Redis counted.
func TestFleetSmoke(t *testing.T) {
	testutil.Long(t, "builds emojicast and the load generator, then runs a fleet for about 40 s")
	cfg := &config{viewers: 60, streams: 2, senders: 3, pull: 2, push: 2, warmup: 10 * time.Second, window: 5 * time.Second,
		nginx: testutil.NeedsProgram(t, "nginx", "/usr/sbin/nginx"), redis: testutil.NeedsProgram(t, "redis-server")}
	f := &fleet{cfg: cfg, dir: t.TempDir()}
	r, err := f.run()
	f.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	sum := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s
	}
	switch {
	case r.TapsAccepted == 0 || r.Delivered != 1 || r.WorstViewer != 1:
		t.Errorf("delivered %v (worst viewer %v) of %d taps accepted; want all of many", r.Delivered, r.WorstViewer, r.TapsAccepted)
	case r.EdgePollsPerSec < 20 || r.EdgeHitRatio < 0.5: // about 60; a busy machine polls later
		t.Errorf("%.0f polls/s at the edge, hit ratio %.3f; want about 60 (at least 20) and most from the cache", r.EdgePollsPerSec, r.EdgeHitRatio)
	case r.SendsPerSec <= 0 || r.TapsPerSec <= 0:
		t.Errorf("%v sends/s, %v taps/s read from the push nodes' metrics; want both counted", r.SendsPerSec, r.TapsPerSec)
	case r.OriginPollsPerSec <= 0 || r.RedisCommandsPerSec <= 0 || r.IdleRedisPerPull <= 0 || r.IdleRedisPerPush <= 0:
		t.Errorf("origin polls %v/s, Redis %v commands/s (idle %v per pull, %v per push); want all counted",
			r.OriginPollsPerSec, r.RedisCommandsPerSec, r.IdleRedisPerPull, r.IdleRedisPerPush)
	case sum(r.PullStreams) != 2 || sum(r.PushStreams) != 2:
		t.Errorf("streams per pull node %v, per push node %v; want each of the 2 streams on one of each", r.PullStreams, r.PushStreams)
	}
}

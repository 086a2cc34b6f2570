package server

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/load"
	"github.com/emojicast/emojicast/pull"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/store"
)

// oneAddressManyUsers lifts the per-address limits on sends and polls and
// the cap on viewers counted per address: these tests play thousands of
// viewers, all from the loopback address.
func oneAddressManyUsers(c *nodeConfig) {
	c.server.SendRatePerIP, c.server.SendBurstPerIP = 1e9, 1e9
	c.server.PollRatePerIP, c.server.PollBurstPerIP = 1e9, 1e9
	prev := c.pullOpts
	c.pullOpts = func(o *pull.Options) {
		o.ViewersPerAddress = 1e9
		if prev != nil {
			prev(o)
		}
	}
	prevPush := c.pushOpts
	c.pushOpts = func(o *push.Options) {
		o.AddrWeightRate, o.AddrWeightBurst = 1e9, 1e9
		o.GroupCommentRate, o.GroupCommentBurst = 1e9, 1e9
		if prevPush != nil {
			prevPush(o)
		}
	}
}

// startFleet starts n nodes sharing one store and one clock.
func startFleet(t *testing.T, n int, mods ...func(*nodeConfig)) []*node {
	clk := clock.NewManual(t0)
	st := store.NewMemory(store.MemoryOptions{Clock: clk})
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = startNode(t, append([]func(*nodeConfig){inFleet(st, clk)}, mods...)...)
	}
	return nodes
}

// waitFleet waits until every node published the second sealed at the
// clock's current time.
func waitFleet(t *testing.T, nodes []*node) {
	t.Helper()
	h := store.Horizon(nodes[0].clk.Now(), store.DefaultSealDelay)
	for _, n := range nodes {
		n.waitPublished(h)
	}
}

// simViewer is a viewer that polls over HTTP when its time comes, like a
// client: next_ms with +-10% jitter.
type simViewer struct {
	node   *node
	nextAt time.Time
	cursor int64
	rng    *rand.Rand
}

func (v *simViewer) poll(stream string) pollBody {
	since := v.cursor
	pb, _ := v.node.poll(stream, &since)
	v.cursor = max(v.cursor, pb.Now)
	jitter := 0.9 + 0.2*v.rng.Float64()
	v.nextAt = v.node.clk.Now().Add(time.Duration(float64(pb.NextMS)*jitter) * time.Millisecond)
	return pb
}

// pollDue has every viewer whose time came poll, from a few goroutines.
func pollDue(viewers []*simViewer, stream string, now time.Time) {
	var wg sync.WaitGroup
	ch := make(chan *simViewer)
	for range 16 {
		wg.Go(func() {
			for v := range ch {
				v.poll(stream)
			}
		})
	}
	for _, v := range viewers {
		if !now.Before(v.nextAt) {
			ch <- v
		}
	}
	close(ch)
	wg.Wait()
}

// TestViewerEstimateAcrossTwoPullNodes: 2,000 viewers polling over HTTP,
// split across two pull nodes, are estimated within 10% on both nodes.
func TestViewerEstimateAcrossTwoPullNodes(t *testing.T) {
	const total = 2000
	fleet := startFleet(t, 2, oneAddressManyUsers)
	clk := fleet[0].clk
	for _, n := range fleet {
		n.watch("show", "w")
	}
	waitFleet(t, fleet)
	viewers := make([]*simViewer, total)
	for i := range viewers {
		n := fleet[i%2]
		viewers[i] = &simViewer{node: n, cursor: n.pull.Horizon(), rng: rand.New(rand.NewPCG(uint64(i), 1)),
			nextAt: clk.Now().Add(time.Duration(i%1000) * time.Millisecond)}
	}
	// Simulated seconds in 100 ms steps, so polls spread over each second.
	for step := 1; step <= 120; step++ {
		pollDue(viewers, "show", clk.Now())
		clk.Add(100 * time.Millisecond)
		if step%10 == 0 {
			waitFleet(t, fleet)
		}
	}
	for i, n := range fleet {
		pb, _ := n.poll("show", nil)
		if math.Abs(float64(pb.Viewers-total)) > 0.1*total {
			t.Errorf("node %d estimates %d viewers; want %d within 10%%", i, pb.Viewers, total)
		}
	}
}

// TestPollIntervalFollowsActivity: a quiet stream is polled less often than
// a busy one, both within the configured bounds.
func TestPollIntervalFollowsActivity(t *testing.T) {
	n := startNode(t)
	n.newViewer("busy")
	n.newViewer("quiet")
	for i := range 12 {
		n.send("busy", fmt.Sprintf("u%d", i), "clap", 2)
		n.step()
	}
	busy, _ := n.poll("busy", nil)
	quiet, _ := n.poll("quiet", nil)
	if busy.NextMS != 1000 || quiet.NextMS != 5000 {
		t.Fatalf("next_ms busy %d, quiet %d; want 1000 and 5000", busy.NextMS, quiet.NextMS)
	}
}

// TestOverloadedNodeStretchesPollsAndShedsSends: past its request budget a
// node tells viewers to poll less often (never past the bound) and sheds
// part of the sends with 503 and Retry-After.
func TestOverloadedNodeStretchesPollsAndShedsSends(t *testing.T) {
	// The budget is low and the flood paced (about 260 requests a second
	// from 4 clients, a factor of about 5), so a busy machine still floods
	// past it and a fast one does not shed every send.
	meter := load.New(load.Options{MaxRPS: 50})
	meter.Start()
	defer meter.Stop()
	n := startNode(t, func(c *nodeConfig) {
		c.load = meter
		c.pullOpts = func(o *pull.Options) { o.MaxNextMS = 8000 }
		oneAddressManyUsers(c)
	})
	n.newViewer("s")
	n.send("s", "u0", "love", 1)
	n.step()
	calm, _ := n.poll("s", nil)
	if calm.NextMS != 1000 {
		t.Fatalf("next_ms %d before the flood; want 1000", calm.NextMS)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := &http.Client{Transport: rawTransport}
			for !stop.Load() {
				if resp, err := c.Get(n.url + "/healthz"); err == nil {
					resp.Body.Close()
				}
				time.Sleep(15 * time.Millisecond)
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()
	testutil.Eventually(t, 15*time.Second, "the meter sees the overload", func() bool { return meter.Factor() > 3 })
	n.step()
	busy, _ := n.poll("s", nil)
	if busy.NextMS <= 2*calm.NextMS || busy.NextMS > 8000 {
		t.Fatalf("next_ms %d at load factor %.1f; want stretched past %d and within the bound 8000", busy.NextMS, meter.Factor(), 2*calm.NextMS)
	}
	// Shed sends are counted as sends, not as failed polls: the poll
	// error alert (EmojicastPollErrors) reads route="reactions".
	const polls503, sends503 = `emojicast_http_requests_total{route="reactions",status="503"}`, `emojicast_http_requests_total{route="send",status="503"}`
	pollErrorsBefore, sendErrorsBefore := counterValue(t, n, polls503), counterValue(t, n, sends503)
	shed := 0
	for i := range 200 {
		r := n.do("POST", "/v1/streams/s/reactions", fmt.Sprintf(`{"emoji":"love","user":"f%d"}`, i), map[string]string{"Content-Type": jsonCT})
		if r.status == http.StatusServiceUnavailable {
			checkError(t, r, 503, "overloaded")
			if r.header.Get("Retry-After") == "" {
				t.Fatal("503 overloaded without Retry-After")
			}
			shed++
		} else if r.status != http.StatusAccepted {
			t.Fatalf("send under overload: %d %s", r.status, r.body)
		}
	}
	if shed == 0 || shed == 200 {
		t.Fatalf("%d of 200 sends shed at load factor %.1f; want some, not all", shed, meter.Factor())
	}
	if got := counterValue(t, n, sends503) - sendErrorsBefore; got != float64(shed) {
		t.Errorf("%s rose by %v; want the %d shed sends", sends503, got, shed)
	}
	if got := counterValue(t, n, polls503) - pollErrorsBefore; got != 0 {
		t.Errorf("%s rose by %v while only sends were shed; want 0", polls503, got)
	}
}

// tapper is a simulated viewer who taps; it forwards each tap with the
// probability the server advertises, by systematic sampling: every k-th tap
// from a random phase, which is unbiased and steadier than coin flips.
type tapper struct {
	user    string
	k       int64
	counter int64
}

func (tp *tapper) setDivisor(k int64, rng *rand.Rand) {
	if k != tp.k {
		tp.k, tp.counter = k, rng.Int64N(k)
	}
}

func (tp *tapper) forward() bool {
	tp.counter++
	return tp.counter%tp.k == 0
}

func sampleDivisor(sample float64) int64 { return int64(math.Round(1 / sample)) }

// sendInProcess calls the push handler directly, as the HTTP server would.
func sendInProcess(t *testing.T, p *push.Node, stream, user string, k int64) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.Header.SetContentType(jsonCT)
	sample := 1 / float64(k)
	ctx.Request.SetBodyString(fmt.Sprintf(`{"emoji":"fire","user":%q,"sample":%g}`, user, sample))
	p.HandleReactions(&ctx, []byte(stream), nil)
	if ctx.Response.StatusCode() != http.StatusAccepted {
		t.Fatalf("send: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

// pollInProcess calls the poll handler directly and returns the body.
func pollInProcess(t *testing.T, p *pull.Node, stream string, since int64) pollBody {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI(fmt.Sprintf("/v1/streams/%s/reactions?since=%d", stream, since))
	p.HandlePoll(&ctx, []byte(stream), nil)
	var pb pollBody
	if err := json.Unmarshal(ctx.Response.Body(), &pb); err != nil {
		t.Fatalf("%v: %s", err, ctx.Response.Body())
	}
	return pb
}

// TestSamplingBoundsSendsAndKeepsCountsHonest drives 50,000 viewers in
// process: 10,000 of them tap once a second. The push side must receive
// about the target of 2,000 sends a second once the divisor settled, and
// the counts must estimate the 10,000 taps a second within 5%.
func TestSamplingBoundsSendsAndKeepsCountsHonest(t *testing.T) {
	testutil.Long(t, "sends for seconds of wall clock")
	const (
		viewers = 50_000
		tappers = 10_000
		seconds = 25
		settle  = 10
	)
	n := startNode(t)
	n.newViewer("big")
	rng := rand.New(rand.NewPCG(7, 7))
	taps := make([]tapper, tappers)
	for i := range taps {
		taps[i] = tapper{user: fmt.Sprintf("t%d", i), k: 1}
	}
	cursor := n.pull.Horizon()
	var trueTaps, counted int64
	var forwardedAfterSettle []int
	for s := range seconds {
		// Every viewer polls once a second (next_ms 1000) and is told the
		// same sample; polls are what the viewer estimate counts.
		var body pollBody
		for i := range viewers {
			if i == 0 {
				body = pollInProcess(t, n.pull, "big", cursor)
			} else {
				var ctx fasthttp.RequestCtx
				ctx.Request.SetRequestURI(fmt.Sprintf("/v1/streams/big/reactions?since=%d", cursor))
				n.pull.HandlePoll(&ctx, []byte("big"), nil)
			}
		}
		for _, b := range body.Buckets {
			if b.T > cursor {
				counted += b.C["fire"]
			}
		}
		cursor = max(cursor, body.Now)
		k := sampleDivisor(body.Sample)
		forwarded := 0
		for i := range taps {
			taps[i].setDivisor(k, rng)
			trueTaps++
			if taps[i].forward() {
				sendInProcess(t, n.push, "big", taps[i].user, k)
				forwarded++
			}
		}
		if s >= settle {
			forwardedAfterSettle = append(forwardedAfterSettle, forwarded)
		}
		n.step()
	}
	n.step()
	n.step()
	last := pollInProcess(t, n.pull, "big", cursor)
	for _, b := range last.Buckets {
		if b.T > cursor {
			counted += b.C["fire"]
		}
	}
	mean := 0.0
	for _, f := range forwardedAfterSettle {
		mean += float64(f)
	}
	mean /= float64(len(forwardedAfterSettle))
	if mean < 0.8*2000 || mean > 1.2*2000 {
		t.Errorf("push received %.0f sends/s after settling (divisor %d); want about the target, 2000", mean, sampleDivisor(last.Sample))
	}
	if rel := math.Abs(float64(counted-trueTaps)) / float64(trueTaps); rel > 0.05 {
		t.Errorf("counts total %d for %d true taps: off by %.1f%%; want within 5%%", counted, trueTaps, 100*rel)
	}
	t.Logf("sends/s after settling %.0f, divisor %d, viewers %d, counted %d of %d taps", mean, sampleDivisor(last.Sample), last.Viewers, counted, trueTaps)
}

// TestSamplingOverHTTP runs 2,000 viewers over HTTP against a low target:
// half of them tap once a second, the push side must receive about the
// target and the counts must estimate the taps within 5%.
func TestSamplingOverHTTP(t *testing.T) {
	testutil.Long(t, "sends for seconds of wall clock")
	const (
		viewers = 2000
		target  = 100
		seconds = 16
		settle  = 8
	)
	n := startNode(t, func(c *nodeConfig) {
		c.pullOpts = func(o *pull.Options) { o.TargetSends = target }
		oneAddressManyUsers(c)
	})
	n.newViewer("s")
	rng := rand.New(rand.NewPCG(3, 3))
	sims := make([]*simViewer, viewers)
	taps := make([]tapper, viewers)
	for i := range sims {
		sims[i] = &simViewer{node: n, cursor: n.pull.Horizon(), rng: rand.New(rand.NewPCG(uint64(i), 2))}
		taps[i] = tapper{user: fmt.Sprintf("v%d", i), k: 1}
	}
	watcher := n.newViewer("s")
	var trueTaps int64
	var sendsAfterSettle []int
	for s := range seconds {
		// Tenths of a second, so viewers poll when their jittered time
		// comes, not in whole-second lumps.
		sends := 0
		for tenth := range 10 {
			pollDue(sims, "s", n.clk.Now())
			if tenth == 0 {
				pb := watcher.poll()
				k := sampleDivisor(pb.Sample)
				t.Logf("second %d: viewers %d, divisor %d, next_ms %d", s, pb.Viewers, k, pb.NextMS)
				for i := range taps {
					taps[i].setDivisor(k, rng)
				}
			}
			// Half the viewers tap once a second, a tenth of them per step.
			for i := 2 * tenth; i < viewers; i += 20 {
				trueTaps++
				if taps[i].forward() {
					body := fmt.Sprintf(`{"emoji":"wow","user":%q,"sample":%g}`, taps[i].user, 1/float64(taps[i].k))
					if r := n.do("POST", "/v1/streams/s/reactions", body, map[string]string{"Content-Type": jsonCT}); r.status != http.StatusAccepted {
						t.Fatalf("send: %d %s", r.status, r.body)
					}
					sends++
				}
			}
			n.clk.Add(100 * time.Millisecond)
		}
		if s >= settle {
			sendsAfterSettle = append(sendsAfterSettle, sends)
		}
		n.flush()
		n.waitPublished(store.Horizon(n.clk.Now(), store.DefaultSealDelay))
	}
	n.step()
	n.step()
	watcher.poll()
	var counted int64
	for _, c := range watcher.seen {
		counted += c["wow"]
	}
	mean := 0.0
	for _, f := range sendsAfterSettle {
		mean += float64(f)
	}
	mean /= float64(len(sendsAfterSettle))
	if mean < 0.7*target || mean > 1.3*target {
		t.Errorf("push received %.0f sends/s after settling; want about the target, %d", mean, target)
	}
	if rel := math.Abs(float64(counted-trueTaps)) / float64(trueTaps); rel > 0.05 {
		t.Errorf("counts total %d for %d true taps: off by %.1f%%; want within 5%%", counted, trueTaps, 100*rel)
	}
	t.Logf("sends/s after settling %.0f, counted %d of %d taps", mean, counted, trueTaps)
}

package e2e

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"

	"github.com/emojicast/emojicast/client"
	"github.com/emojicast/emojicast/internal/testutil"
)

// The weak-network test puts a real fault-injecting proxy (Toxiproxy's
// server, built from the module go.mod pins) between viewers built on
// client/ and emojicast, and checks that they come through latency,
// 64 kbit/s, timeouts, resets and a 30 s blackout with every second
// delivered once and only once, without a retry storm when the network
// returns.

// weakViewer is a recorder behind a weak link.
type weakViewer struct {
	*recorder
	link *weakLink
}

func newWeakViewer(t *testing.T, ctx context.Context, l *weakLink, stream string, i int) *weakViewer {
	t.Helper()
	user := fmt.Sprintf("%s-%d", l.name, i)
	return &weakViewer{recorder: newRecorder(t, ctx, user, stream, client.Options{Server: l.url, User: user}), link: l}
}

// check compares what the viewer delivered with the reference, second by
// second, from its first cursor to through.
func (v *weakViewer) check(t *testing.T, ref counts, through int64) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, g := range v.gaps {
		t.Errorf("viewer %s on %s: a gap (%d, %d]: seconds were lost", v.stream.User, v.link.name, g[0], g[1])
	}
	for _, s := range v.dupSeconds {
		t.Errorf("viewer %s on %s: second %d delivered twice", v.stream.User, v.link.name, s)
	}
	if v.gaveUp != nil {
		t.Errorf("viewer %s on %s: the poll loop gave up: %v", v.stream.User, v.link.name, v.gaveUp)
	}
	for s := v.stream.Since + 1; s <= through; s++ {
		if got, want := fmt.Sprint(v.seen[s]), fmt.Sprint(ref[s]); got != want {
			t.Errorf("viewer %s on %s, second %d: delivered %s; the stream had %s", v.stream.User, v.link.name, s, got, want)
		}
	}
}

// weakSender taps through a weak link and keeps what certainly counted
// and what may have.
type weakSender struct {
	accepted, unsure int64
}

func (ws *weakSender) run(ctx context.Context, t *testing.T, l *weakLink, stream string) {
	c, err := client.New(client.Options{Server: l.url, User: l.name + "-sender", RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Error(err)
		return
	}
	s, err := c.Watch(ctx, stream)
	if err != nil {
		return // ctx ended during a fault
	}
	for ctx.Err() == nil {
		n, err := s.Tap(ctx, "clap", 3)
		ws.accepted += int64(n)
		if err != nil {
			ws.unsure += int64(3 - n)
		}
		_ = sleep(ctx, 700*time.Millisecond)
	}
}

// pollRate samples how many polls an origin answered, every 250 ms.
type pollRate struct {
	mu      sync.Mutex
	samples []rateSample
}

type rateSample struct {
	at    time.Time
	polls float64
}

func (r *pollRate) run(ctx context.Context, p *proc) {
	for ctx.Err() == nil {
		s := rateSample{at: time.Now(), polls: originPolls(p)}
		r.mu.Lock()
		r.samples = append(r.samples, s)
		r.mu.Unlock()
		_ = sleep(ctx, 250*time.Millisecond)
	}
}

// perSecond returns the polls per second over each one-second window
// starting in [from, to), and the mean over the whole span.
func (r *pollRate) perSecond(from, to time.Time) (rates []float64, mean float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at := func(t time.Time) float64 {
		i := sort.Search(len(r.samples), func(i int) bool { return !r.samples[i].at.Before(t) })
		return r.samples[min(i, len(r.samples)-1)].polls
	}
	for t := from; t.Add(time.Second).Before(to) || t.Add(time.Second).Equal(to); t = t.Add(500 * time.Millisecond) {
		rates = append(rates, at(t.Add(time.Second))-at(t))
	}
	return rates, (at(to) - at(from)) / to.Sub(from).Seconds()
}

// TestWeakNetworks runs viewers and senders behind six weak links at once:
// latency 300 ms ± 200, 64 kbit/s with that latency, connections cut by
// timeouts, connections reset, and a 30 s blackout, once with packets
// vanishing (requests hang) and once with the network refusing
// connections. Every viewer must deliver each second of the stream once,
// with the counts a viewer on a perfect link saw; sends must count at most
// once; and the origin must see no burst of requests when the network
// returns.
func TestWeakNetworks(t *testing.T) {
	t.Parallel()
	testutil.Long(t, "a minute of lossy, slow and cut networks")
	tc := startToxiproxy(t)
	// Two origins, so the blackout crowd's request rate is measured alone.
	origin := startProc(t, "serve", "serve", "--log-level", "warn")
	dark := startProc(t, "serve-dark", "serve", "--log-level", "warn")
	ta := newTally()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	rate := &pollRate{}
	bg.Go(func() { rate.run(ctx, dark) })

	refs := map[*proc]*fleetViewer{origin: watchStream(t, origin, "weak"), dark: watchStream(t, dark, "dark")}
	tapCtx, stopTaps := context.WithCancel(ctx)
	var taps sync.WaitGroup
	for p, stream := range map[*proc]string{origin: "weak", dark: "dark"} {
		taps.Go(func() { tapSteadily(tapCtx, ta, p, stream) })
	}

	waitBusy(t, origin, "weak")
	waitBusy(t, dark, "dark")

	links := map[string]*weakLink{}
	for _, name := range []string{"latency", "slow", "timeouts", "resets"} {
		links[name] = newWeakLink(t, tc, name, origin)
	}
	for _, name := range []string{"blackhole", "refused"} {
		links[name] = newWeakLink(t, tc, name, dark)
	}
	links["latency"].toxic(t, "latency", "latency", toxiproxy.Attributes{"latency": 300, "jitter": 200})
	links["slow"].toxic(t, "latency", "latency", toxiproxy.Attributes{"latency": 300, "jitter": 200})
	links["slow"].toxic(t, "bandwidth", "bandwidth", toxiproxy.Attributes{"rate": 8}) // KB/s: 64 kbit/s

	streamOf := map[string]string{"latency": "weak", "slow": "weak", "timeouts": "weak", "resets": "weak", "blackhole": "dark", "refused": "dark"}
	crowd := map[string]int{"latency": 3, "slow": 3, "timeouts": 3, "resets": 3, "blackhole": 15, "refused": 15}
	var viewers []*weakViewer
	for name, n := range crowd {
		for i := range n {
			viewers = append(viewers, newWeakViewer(t, ctx, links[name], streamOf[name], i))
		}
	}
	for _, v := range viewers {
		bg.Go(func() { v.run(ctx) })
	}
	senders := map[string]*weakSender{}
	sendCtx, stopWeakSends := context.WithCancel(ctx)
	var sends sync.WaitGroup
	for name, l := range links {
		ws := &weakSender{}
		senders[name] = ws
		sends.Go(func() { ws.run(sendCtx, t, l, streamOf[name]) })
	}

	// Steady first, so the rate before the blackout is known.
	time.Sleep(6 * time.Second)
	blackoutStart := time.Now()
	links["blackhole"].toxic(t, "blackout", "timeout", toxiproxy.Attributes{"timeout": 0})
	if err := links["refused"].proxy.Disable(); err != nil {
		t.Fatal(err)
	}
	// Cut and reset connections now and then while the blackout lasts.
	for cycle := 0; time.Since(blackoutStart) < 30*time.Second; cycle++ {
		links["timeouts"].toxic(t, "cut", "timeout", toxiproxy.Attributes{"timeout": 1500})
		links["resets"].toxic(t, "reset", "reset_peer", toxiproxy.Attributes{"timeout": 200})
		time.Sleep(3 * time.Second)
		links["timeouts"].removeToxic(t, "cut")
		links["resets"].removeToxic(t, "reset")
		time.Sleep(2 * time.Second)
	}
	links["blackhole"].removeToxic(t, "blackout")
	if err := links["refused"].proxy.Enable(); err != nil {
		t.Fatal(err)
	}
	blackoutEnd := time.Now()
	stopWeakSends()
	sends.Wait()

	// Every viewer catches up with what the perfect link saw, through a
	// second after the network returned.
	through := blackoutEnd.Unix() + 1
	testutil.Eventually(t, 45*time.Second, "every viewer catches up", func() bool {
		for _, v := range viewers {
			if v.at() < through {
				return false
			}
		}
		return true
	})
	caughtUp := time.Now()
	time.Sleep(3 * time.Second) // the steady rate after the return
	stopTaps()
	taps.Wait()
	afterEnd := time.Now()

	for p, ref := range refs {
		testutil.Eventually(t, 20*time.Second, "the reference viewer passes the last tap", func() bool {
			_, c, _ := ref.snapshot()
			return c >= afterEnd.Unix()+2
		})
		seen, _, err := ref.snapshot()
		if err != nil {
			t.Fatalf("reference viewer of %s: %v", p.name, err)
		}
		ta.checkSeconds(t, "reference viewer of "+p.name, ref.stream, seen)
		for _, v := range viewers {
			if v.stream.ID == ref.stream {
				v.check(t, seen, through)
			}
		}
		checkWeakSends(t, p.name, seen, senders, streamOf, ref.stream)
	}

	before, beforeMean := rate.perSecond(blackoutStart.Add(-4*time.Second), blackoutStart)
	after, afterMean := rate.perSecond(blackoutEnd, afterEnd)
	_, duringMean := rate.perSecond(blackoutStart.Add(time.Second), blackoutEnd)
	peak := 0.0
	for _, r := range after {
		peak = max(peak, r)
	}
	// The crowd is told to poll once a second; the reference viewer polls
	// five times a second.
	steady := float64(crowd["blackhole"]+crowd["refused"]) + 5
	t.Logf("30 viewers behind the blackout links, polls/s at their origin (a reference viewer's 5/s included): %.1f before (1-s windows %v), %.1f during, %.1f after, at most %.0f in a 1-s window after; all caught up %.1f s after the network returned",
		beforeMean, before, duringMean, afterMean, peak, caughtUp.Sub(blackoutEnd).Seconds())
	logRetries(t, viewers, blackoutStart, blackoutEnd)
	if peak > 1.5*steady {
		t.Errorf("a retry storm: %.0f polls in one second after the network returned; the crowd's steady rate is %.0f/s", peak, steady)
	}
}

// checkWeakSends checks the taps sent through weak links: each counted at
// most once (no more than were sent and perhaps counted) and at least the
// ones the server acknowledged.
func checkWeakSends(t *testing.T, where string, seen counts, senders map[string]*weakSender, streamOf map[string]string, stream string) {
	t.Helper()
	var accepted, unsure int64
	for name, ws := range senders {
		if streamOf[name] == stream {
			accepted += ws.accepted
			unsure += ws.unsure
		}
	}
	got := seen.total()["clap"]
	t.Logf("%s: taps sent through weak links: %d acknowledged, %d unknown, %d counted", where, accepted, unsure, got)
	if got < accepted || got > accepted+unsure {
		t.Errorf("%s: %d claps counted; %d were acknowledged and %d more may have been", where, got, accepted, unsure)
	}
}

// logRetries reports how often the blackout crowds retried while the
// network was gone: a backoff keeps it to a few attempts per viewer.
func logRetries(t *testing.T, viewers []*weakViewer, from, to time.Time) {
	t.Helper()
	byLink := map[string][2]int{}
	for _, v := range viewers {
		v.mu.Lock()
		n := 0
		for _, at := range v.retries {
			if !at.Before(from) && at.Before(to) {
				n++
			}
		}
		v.mu.Unlock()
		c := byLink[v.link.name]
		byLink[v.link.name] = [2]int{c[0] + n, c[1] + 1}
	}
	secs := to.Sub(from).Seconds()
	for name, c := range byLink {
		t.Logf("%s: %d failed polls by %d viewers in %.0f s (%.2f per viewer per second)", name, c[0], c[1], secs, float64(c[0])/float64(c[1])/secs)
		if name == "refused" && float64(c[0])/float64(c[1]) > 12 {
			t.Errorf("%s: %.1f failed polls per viewer in %.0f s: the backoff does not hold", name, float64(c[0])/float64(c[1]), secs)
		}
	}
}

package push

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/store"
)

// samplingNode is a push node on a memory store whose fleet advertises
// divisor k for stream "s", and that has read it: one send stating no
// sample (counted once) and a flush made it.
func samplingNode(t *testing.T, k int64) (*Node, *faultyStore, *clock.Manual) {
	t.Helper()
	fs, clk := newFaulty()
	if k > 1 {
		if err := fs.ReportAudience(context.Background(), "pull-1", []store.AudienceReport{{Stream: "s", Viewers: 1000, Divisor: k}}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := New(Options{Targets: []Target{{Store: fs}}, Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if code, answer := send(p, `{"emoji":"love","user":"warm-up"}`); code != fasthttp.StatusAccepted {
		t.Fatalf("warm-up send: %d %s", code, answer)
	}
	p.Flush()
	return p, fs, clk
}

// send posts body to stream "s" and returns the status and answer.
func send(p *Node, body string) (int, string) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.SetBodyString(body)
	p.HandleReactions(&ctx, []byte("s"), nil)
	return ctx.Response.StatusCode(), string(ctx.Response.Body())
}

// counted flushes p and returns every reaction stream "s" counts.
func counted(t *testing.T, p *Node, fs *faultyStore, clk *clock.Manual) int64 {
	t.Helper()
	p.Flush()
	if !p.targets[0].sendQueued(context.Background()) {
		t.Fatal("flush failed")
	}
	return total(t, fs, clk)
}

// A push node that just started (a deploy, a restart, a scale-out) knows
// the fleet's divisor before it answers its first send for a stream: it
// neither weights a sampled tap by 1 nor tells the client to send every
// tap. (Before: counted 1, answered "sample":1.)
func TestNewNodeKnowsTheDivisorBeforeItsFirstAnswer(t *testing.T) {
	fs, clk := newFaulty()
	if err := fs.ReportAudience(context.Background(), "pull-1", []store.AudienceReport{{Stream: "s", Viewers: 1000, Divisor: 500}}); err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Targets: []Target{{Store: fs}}, Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	code, answer := send(p, `{"emoji":"love","count":1,"user":"u1","sample":0.002}`)
	if want := `{"status":"accepted","sample":0.002}`; code != fasthttp.StatusAccepted || answer != want {
		t.Errorf("first answer %d %s; want 202 %s", code, answer, want)
	}
	if n := counted(t, p, fs, clk); n != 500 {
		t.Errorf("one tap forwarded at sample 1/500 (advertised by the fleet) counted %d; want 500", n)
	}
}

// While the store cannot say, a node answers no sample at all (clients
// keep theirs) and weighs a stated one once: a claim it cannot check buys
// nothing. (Before: trusted up to the cap, 100.)
func TestNodeThatCannotReadTheDivisorAdvertisesNone(t *testing.T) {
	fs, clk := newFaulty()
	p, err := New(Options{Targets: []Target{{Store: unreadable{fs}}}, Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"emoji":"love","user":"u1","sample":0.1}`,
		`{"emoji":"love","user":"u2","sample":0.001}`,
		`{"emoji":"love","user":"u3"}`,
	} {
		code, answer := send(p, body)
		if code != fasthttp.StatusAccepted || answer != `{"status":"accepted"}` {
			t.Errorf("%s: answer %d %s; want 202 without a sample", body, code, answer)
		}
	}
	if n := counted(t, p, fs, clk); n != 3 {
		t.Errorf("counted %d; want 1 + 1 + 1", n)
	}
}

// unreadable is a store whose control figures cannot be read.
type unreadable struct{ *faultyStore }

func (unreadable) Audience(context.Context, []string) ([]store.Audience, error) {
	return nil, errInjected
}

// A send that states no sample (curl, an old app, a bot) counts as the
// taps it carries, whatever the fleet advertises. (Before: 50 times each.)
func TestSendStatingNoSampleCountsItsTaps(t *testing.T) {
	p, fs, clk := samplingNode(t, 50)
	for i := range 10 {
		if code, answer := send(p, fmt.Sprintf(`{"emoji":"love","count":2,"user":"u%d"}`, i)); code != fasthttp.StatusAccepted {
			t.Fatalf("send %d: %d %s", i, code, answer)
		}
	}
	if n := counted(t, p, fs, clk) - 1; n != 20 {
		t.Errorf("10 sends of 2 taps stating no sample under divisor 50 counted %d; want 20", n)
	}
}

// A client that states the advertised sample but forwards every tap, at
// 10 sends a second for 30 s, gains no more weighted taps than the
// per-user limit allows: 10/s x 30 s + burst 20. (Before: 3,000.)
func TestClaimedSampleIsBoundedByTheUserLimit(t *testing.T) {
	const k = 10
	p, fs, clk := samplingNode(t, k)
	start := clk.Now()
	accepted := 0
	for clk.Now().Sub(start) < 30*time.Second {
		if code, _ := send(p, `{"emoji":"love","user":"cheat","sample":0.1}`); code == fasthttp.StatusAccepted {
			accepted++
		}
		clk.Add(100 * time.Millisecond)
	}
	n := counted(t, p, fs, clk) - 1
	t.Logf("300 sends claiming sample 1/%d: %d accepted, %d weighted taps counted", k, accepted, n)
	if limit := int64(10*30 + 20); n > limit {
		t.Errorf("counted %d weighted taps; want at most the limit, %d", n, limit)
	}
	if n < 10*30*9/10 {
		t.Errorf("counted %d weighted taps; the user is owed about 300", n)
	}
}

// Honest users sampled at 1/k forward one tap in k, each weighing k: a
// user tapping at a tenth of the limit is almost never refused, even when
// one forwarded tap weighs five times the burst, and over a long run
// every forwarded tap counts.
func TestHonestSampledUserIsNotRefused(t *testing.T) {
	const k = 100
	p, fs, clk := samplingNode(t, k)
	rng := rand.New(rand.NewPCG(1, 2))
	forwarded, refused := 0, 0
	for range 20_000 { // about 20,000 taps at one a second
		clk.Add(time.Duration(rng.ExpFloat64() * float64(time.Second)))
		if rng.IntN(k) != 0 {
			continue
		}
		forwarded++
		if code, _ := send(p, `{"emoji":"love","user":"fan","sample":0.01}`); code != fasthttp.StatusAccepted {
			refused++
		}
	}
	n := counted(t, p, fs, clk) - 1
	t.Logf("%d forwarded, %d refused, %d counted", forwarded, refused, n)
	if refused*100 > forwarded {
		t.Errorf("%d of %d forwarded taps refused; want under 1%%", refused, forwarded)
	}
	if n != int64(k*(forwarded-refused)) {
		t.Errorf("counted %d; want %d", n, k*(forwarded-refused))
	}
}

// sendFrom posts body to stream "s" from the client address group key
// client and returns the status.
func sendFrom(p *Node, client, body string) int {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.SetBodyString(body)
	p.HandleReactions(&ctx, []byte("s"), []byte(client))
	return ctx.Response.StatusCode()
}

// One address group naming a fresh user per send, each stating the
// advertised sample, gets no more weighted taps counted than its own
// limit over any window, while another address is untouched. (Before:
// each new id could go into debt at its own weight, so the group's
// weight had no bound.)
func TestAddressGroupBoundsWeightWhateverIDs(t *testing.T) {
	const k = 50
	p, fs, clk := samplingNode(t, k)
	start := clk.Now()
	ids, refused := 0, 0
	for clk.Now().Sub(start) < 10*time.Second {
		for range 5 {
			ids++
			body := fmt.Sprintf(`{"emoji":"love","count":20,"sample":0.02,"user":"fresh%d"}`, ids)
			if sendFrom(p, "attacker", body) != fasthttp.StatusAccepted {
				refused++
			}
		}
		clk.Add(100 * time.Millisecond)
	}
	got := counted(t, p, fs, clk) - 1
	bound := int64(DefaultAddrWeightRate*10 + DefaultAddrWeightBurst)
	t.Logf("%d fresh ids from one address: %d refused, %d weighted taps counted (bound %d)", ids, refused, got, bound)
	if got > bound {
		t.Errorf("counted %d weighted taps; want at most the address group's limit, %d", got, bound)
	}
	if got < bound*8/10 {
		t.Errorf("counted %d weighted taps; the address group is owed about %d", got, bound)
	}
	if code := sendFrom(p, "neighbour", `{"emoji":"love","count":1,"sample":0.02,"user":"honest"}`); code != fasthttp.StatusAccepted {
		t.Errorf("another address's send: %d; want 202", code)
	}
}

// A send weighs at most the address group's burst: count 20 stated at
// the largest divisor would weigh 20,000 taps.
func TestSelfServiceSendWeighsAtMostTheGroupBurst(t *testing.T) {
	p, fs, clk := samplingNode(t, 1000)
	if code := sendFrom(p, "a", `{"emoji":"love","count":20,"sample":0.001,"user":"big"}`); code != fasthttp.StatusAccepted {
		t.Fatalf("send: %d", code)
	}
	if n := counted(t, p, fs, clk) - 1; n != DefaultAddrWeightBurst {
		t.Errorf("counted %d; want the group's burst, %d", n, DefaultAddrWeightBurst)
	}
}

// A full divisor table never means "trust the claim": the node cannot
// check a stated sample, so the send weighs its taps. (Before, review
// finding 3: one tap claiming 1/1000 on a stream whose divisor is 1
// counted 1000.)
func TestFullDivisorTableTrustsNoClaim(t *testing.T) {
	fs, clk := newFaulty()
	p, err := New(Options{Targets: []Target{{Store: fs}}, Clock: clk, Logger: quiet, MaxStreams: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.Header.SetContentType("application/json")
		ctx.Request.SetBodyString(`{"emoji":"love","user":"f"}`)
		p.HandleReactions(&ctx, []byte(fmt.Sprintf("filler%d", i)), nil)
		if code := ctx.Response.StatusCode(); code != fasthttp.StatusAccepted {
			t.Fatalf("filler: %d", code)
		}
	}
	// The aggregator forgets idle streams after 5 s; the divisor table
	// keeps them for a minute.
	for range 7 {
		clk.Add(time.Second)
		p.Flush()
	}
	code, answer := send(p, `{"emoji":"love","count":1,"user":"u1","sample":0.001}`)
	if n := counted(t, p, fs, clk); n != 1 {
		t.Errorf("answer %d %s; one tap claiming 1/1000 with the divisor table full counted %d; want 1", code, answer, n)
	}
}

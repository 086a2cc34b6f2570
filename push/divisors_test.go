package push

import (
	"context"
	"testing"

	"github.com/emojicast/emojicast/store"
)

func TestDivisorsWeighOnlyWhatTheFleetAdvertised(t *testing.T) {
	fs, _ := newFaulty()
	d := newDivisors(10, newMetrics(nil).divisorErrors)
	stream := []byte("s")
	const now = 1000
	sd := d.get(stream, now)
	for _, tc := range []struct{ claimed, want int64 }{{0, 1}, {1, 1}, {40, 1}, {5000, 1}} {
		// Unknown yet: a stated sample cannot be checked, so it weighs
		// the taps once, and nothing is advertised. (Before: trusted up
		// to the cap.)
		if w, cur, _ := d.weigh(sd, tc.claimed, now); w != tc.want || cur != 0 {
			t.Fatalf("unknown stream, claimed %d: weight %d, advertised %d; want %d, 0", tc.claimed, w, cur, tc.want)
		}
	}
	report := func(c store.AudienceReport) {
		t.Helper()
		c.Stream = "s"
		if err := fs.ReportAudience(context.Background(), "pull-1", []store.AudienceReport{c}); err != nil {
			t.Fatal(err)
		}
		if err := d.refresh(context.Background(), fs, now); err != nil {
			t.Fatal(err)
		}
	}
	report(store.AudienceReport{Divisor: 20})
	if w, cur, _ := d.weigh(sd, 20, now); w != 20 || cur != 20 {
		t.Fatalf("after the fleet chose 20: weight %d, advertised %d", w, cur)
	}
	report(store.AudienceReport{Divisor: 50, Previous: 20})
	for _, tc := range []struct {
		claimed, at, want int64
	}{
		{0, now, 1},                  // no stated sample: one tap is one tap
		{50, now, 50},                // the current one
		{20, now, 20},                // replaced a moment ago: a client still sampling at 1/20
		{7, now, 1},                  // never advertised: not believed
		{90, now, 1},                 // within 2x of the current one, but never advertised
		{25, now, 1},                 // below the current one, never advertised
		{1000, now, 1},               // a client claiming a tiny sample to inflate counts
		{20, now + recentFor + 1, 1}, // replaced too long ago
	} {
		if w, cur, _ := d.weigh(sd, tc.claimed, tc.at); w != tc.want || cur != 50 {
			t.Errorf("claimed %d at %d: weight %d, advertised %d; want %d, 50", tc.claimed, tc.at, w, cur, tc.want)
		}
	}
}

func TestDivisorsFirstReadKnowsTheReplacedDivisor(t *testing.T) {
	fs, _ := newFaulty()
	ctx := context.Background()
	for _, c := range []store.AudienceReport{{Stream: "s", Divisor: 12}, {Stream: "s", Divisor: 16, Previous: 12}} {
		if err := fs.ReportAudience(ctx, "pull-1", []store.AudienceReport{c}); err != nil {
			t.Fatal(err)
		}
	}
	d := newDivisors(10, newMetrics(nil).divisorErrors)
	sd := d.get([]byte("s"), 1000)
	d.read(context.Background(), sd, []byte("s"), fs, firstReadTimeout, 1000)
	for _, k := range []int64{16, 12} {
		if w, cur, _ := d.weigh(sd, k, 1000); w != k || cur != 16 {
			t.Errorf("a new node, claimed %d: weight %d, advertised %d; want %d, 16", k, w, cur, k)
		}
	}
}

func TestDivisorsAreBoundedAndForgetIdleStreams(t *testing.T) {
	fs, _ := newFaulty()
	d := newDivisors(2, newMetrics(nil).divisorErrors)
	d.get([]byte("a"), 1000)
	d.get([]byte("b"), 1000)
	if sd := d.get([]byte("c"), 1000); sd != nil || len(d.m) != 2 {
		t.Fatalf("a third stream past the bound: %v, %d entries", sd, len(d.m))
	}
	if w, cur, ok := d.weigh(nil, 30, 1000); w != 1 || cur != 0 || ok {
		t.Fatalf("a stream past the bound, claimed 30: weight %d, advertised %d, checked %v; want 1, 0, false", w, cur, ok)
	}
	d.get([]byte("b"), 1000+recentFor)
	if err := d.refresh(context.Background(), fs, 1000+recentFor+1); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.m["a"]; ok || len(d.m) != 1 {
		t.Fatalf("entries after a minute: %v; want only b", d.m)
	}
}

// A divisor the fleet advertised within the last 60 s is honoured however
// many times the fleet moved since: a stream whose audience leaves halves
// its divisor each step. (Before: only the last 4 were kept, and a send
// stating 1/1000 six steps later weighed 1.)
func TestDivisorsHonourEveryDivisorOfTheLastMinute(t *testing.T) {
	fs, _ := newFaulty()
	d := newDivisors(10, newMetrics(nil).divisorErrors)
	sd := d.get([]byte("s"), 1000)
	prev, now := int64(0), int64(1000)
	steps := []int64{1000, 500, 250, 125, 63, 32, 16, 8, 4, 2}
	for _, k := range steps {
		if err := fs.ReportAudience(context.Background(), "pull-1", []store.AudienceReport{{Stream: "s", Divisor: k, Previous: prev}}); err != nil {
			t.Fatal(err)
		}
		if err := d.refresh(context.Background(), fs, now); err != nil {
			t.Fatal(err)
		}
		prev = k
		now++
	}
	for _, k := range steps {
		if w, cur, ok := d.weigh(sd, k, now); w != k || cur != 2 || !ok {
			t.Errorf("divisor %d advertised within %d s: weight %d, advertised %d, checked %v; want %d, 2, true", k, now-1000, w, cur, ok, k)
		}
	}
	if w, _, _ := d.weigh(sd, 1000, 1001+recentFor+1); w != 1 { // replaced at 1001
		t.Errorf("divisor 1000 replaced over a minute ago: weight %d; want 1", w)
	}
}

// The list of replaced divisors stays bounded however often the fleet
// moves, dropping the oldest first.
func TestDivisorsRecentIsBounded(t *testing.T) {
	sd := &streamDivisor{}
	for i := range int64(3 * maxRecent) {
		sd.set(store.Audience{Divisor: 2 + i}, 1000)
	}
	if len(sd.recent) != maxRecent {
		t.Fatalf("%d replaced divisors kept; want %d", len(sd.recent), maxRecent)
	}
	if last := sd.recent[len(sd.recent)-1].k; last != 3*maxRecent {
		t.Errorf("newest kept %d; want %d", last, 3*maxRecent)
	}
}

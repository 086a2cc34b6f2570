package pull

import (
	"testing"
	"time"

	"github.com/emojicast/emojicast/store"
)

// TestViewerCountThroughArrivalsAndDepartures: a crowd that arrives at once
// and polls every 5 s is counted as itself, not five times over, and
// viewers who stop polling leave the count next_ms after their last poll.
func TestViewerCountThroughArrivalsAndDepartures(t *testing.T) {
	f := newFixture(t)
	f.poll("s", "")
	f.sync()
	st := f.p.streams.get([]byte("s"), f.p.initial, 0)
	const crowd = 1000
	counts := []int64{}
	for sec := range 20 {
		secStartMS := f.clk.Now().Unix() * 1000
		for v := range crowd {
			// Everyone arrives in the first second, then polls every 5 s,
			// spread over the second; the second half leaves after 10 s.
			if sec%5 == 0 && (sec < 10 || v < crowd/2) {
				st.presence.poll(secStartMS+int64(v%1000), 5000)
			}
		}
		f.clk.Add(time.Second)
		counts = append(counts, st.audience.localViewers(st, f.clk.Now()))
	}
	for sec, n := range counts {
		want := int64(crowd)
		if sec >= 10 {
			want = crowd / 2
		}
		if n != want {
			t.Fatalf("second %d: %d viewers; want %d (all counts: %v)", sec, n, want, counts)
		}
	}
}

// TestCompactViewersCountOnce: a viewer of a busy stream polling every 2 s,
// as its compact answers advise, is one viewer, not half of one.
func TestCompactViewersCountOnce(t *testing.T) {
	f := newFixture(t)
	f.poll("s", "")
	f.sync()
	st := f.p.streams.get([]byte("s"), f.p.initial, 0)
	const crowd = 100
	for sec := range 8 {
		f.add("s", "love", 30)
		if sec%2 == 0 {
			for range crowd {
				if r := f.poll("s", "?v=2"); r.Response.StatusCode() != 200 {
					t.Fatalf("poll: %d", r.Response.StatusCode())
				}
			}
		}
		f.step()
		if n := st.audience.localViewers(st, f.clk.Now()); sec > 0 && n < crowd {
			t.Fatalf("second %d: %d viewers; want %d polling every 2 s", sec, n, crowd)
		}
	}
}

func TestChooseDivisor(t *testing.T) {
	f := newFixture(t)
	f.p.opts.TargetSends = 2000
	f.p.opts.MaxDivisor = 1000
	for _, tc := range []struct {
		name    string
		perSec  float64 // sampled taps per second
		current int64
		want    int64
	}{
		{"10k taps/s for a target of 2k", 10_000, 5, 5},
		{"rises at most 2x a step", 10_000, 1, 2},
		{"within an eighth: kept", 17_000, 8, 8},
		{"a fifth over: raised", 10_500 * 1.15, 5, 7},
		{"falls at most by half", 1_000, 8, 4},
		{"under the target: everything forwarded", 50, 1, 1},
		{"capped", 1e9, 800, 1000},
		{"a fleet divisor above the cap comes down to it", 1e9, 5000, 1000},
	} {
		var sc streamAudience
		if got := f.p.chooseDivisor(&sc, tc.perSec, tc.current); got != tc.want {
			t.Errorf("%s: divisor %d; want %d", tc.name, got, tc.want)
		}
	}
	var fresh streamAudience
	if got := f.p.chooseDivisor(&fresh, -1, 7); got != 7 {
		t.Errorf("no demand known yet: divisor %d; want the fleet's 7 kept", got)
	}
	// Smoothed: one quiet second does not halve a busy stream's divisor.
	var sc streamAudience
	for range 30 {
		sc.sampled = 0
		f.p.chooseDivisor(&sc, 20_000, 10)
	}
	if got := f.p.chooseDivisor(&sc, 0, 10); got != 10 {
		t.Errorf("one second without sampled taps: divisor %d; want 10 kept", got)
	}
}

// A steady divisor is chosen once and reported once; the store must keep
// it for as long as the stream is served, not forget it DivisorTTL after
// it was chosen. (Before: the node advertised 1 again 61 s in.)
func TestSteadyDivisorIsNeverForgotten(t *testing.T) {
	f := newFixture(t)
	f.p.opts.TargetSends = 2000
	f.poll("s", "")
	f.sync()
	var trace []int64
	for range 130 {
		f.add("s", "love", 20_000)
		f.add("s", store.SampledTaps, 20_000)
		f.poll("s", "")
		f.step()
		st := f.p.streams.get([]byte("s"), f.p.initial, 0)
		trace = append(trace, st.advice.Load().divisor)
	}
	for i := 10; i < len(trace); i++ {
		if trace[i] != 10 {
			t.Fatalf("second %d: divisor %d; want a steady 10 (trace %v)", i, trace[i], trace)
		}
	}
}

func TestNextMSBounds(t *testing.T) {
	f := newFixture(t)
	sc := streamAudience{lastActive: 100}
	if got := f.p.nextMS(&sc, 105); got != f.p.opts.BusyNextMS {
		t.Errorf("active 5 s ago: %d; want busy %d", got, f.p.opts.BusyNextMS)
	}
	if got := f.p.nextMS(&sc, 111); got != f.p.opts.QuietNextMS {
		t.Errorf("quiet for 11 s: %d; want %d", got, f.p.opts.QuietNextMS)
	}
	if _, err := New(Options{Store: f.st, MaxNextMS: 120_000}); err == nil {
		t.Error("a MaxNextMS longer than the viewer count can follow was accepted")
	}
	if _, err := New(Options{Store: f.st, MinNextMS: 2000, BusyNextMS: 1000}); err == nil {
		t.Error("a busy interval under MinNextMS was accepted")
	}
}

// TestFloodingClientCountsAsFewViewers: one address polling a thousand
// times a second counts as at most ViewersPerAddress viewers, beside 50
// viewers that poll as told; another stream's count is its own.
func TestFloodingClientCountsAsFewViewers(t *testing.T) {
	f := newFixture(t)
	f.poll("s", "")
	f.sync()
	st := f.p.streams.get([]byte("s"), f.p.initial, 0)
	flooder := []byte{198, 51, 100, 7}
	honest := make([][]byte, 50)
	for i := range honest {
		honest[i] = []byte{203, 0, 113, byte(i)}
	}
	period := int(st.advice.Load().nextMS / 1000) // the honest poll as told
	for sec := range 4 * period {
		for range 1000 {
			f.pollFrom(flooder, "s", "")
		}
		for i, c := range honest {
			if sec%period == i%period {
				f.pollFrom(c, "s", "")
			}
		}
		f.clk.Add(time.Second)
		n := st.audience.localViewers(st, f.clk.Now())
		if sec >= period && (n < 50 || n > 50+int64(f.p.opts.ViewersPerAddress)) {
			t.Fatalf("second %d: %d viewers; want 50 honest plus at most %d for the flooder", sec, n, f.p.opts.ViewersPerAddress)
		}
	}
}

// TestQuietIntervalGrowsAndSnapsBack follows one stream's next_ms through
// a long quiet spell, a reaction and a second spell: quiet streams start
// at QuietNextMS, wait a tenth of their quiet spell once that is longer, up
// to QuietMaxNextMS, and the first reaction brings the busy interval back.
func TestQuietIntervalGrowsAndSnapsBack(t *testing.T) {
	f := newFixture(t)
	f.p.opts.QuietNextMS, f.p.opts.QuietMaxNextMS = 5000, 20_000
	nextAfter := func(seconds int) int64 {
		t.Helper()
		for range seconds {
			f.step()
			f.poll("s", "") // kept served
		}
		return decode(t, f.poll("s", "")).NextMS
	}
	f.poll("s", "")
	f.sync()
	for _, c := range []struct {
		after int   // more seconds of quiet
		want  int64 // next_ms then
	}{
		{12, 5000},   // quiet for 12 s: the quiet interval
		{38, 5000},   // 50 s: a tenth is the quiet interval
		{30, 8000},   // 80 s: a tenth
		{70, 15_000}, // 150 s
		{100, 20_000},
		{300, 20_000}, // capped
	} {
		if got := nextAfter(c.after); got != c.want {
			t.Fatalf("after %d more quiet seconds: next_ms %d; want %d", c.after, got, c.want)
		}
	}
	f.add("s", "clap", 1)
	if got := nextAfter(1); got != f.p.opts.BusyNextMS {
		t.Fatalf("after the first reaction: next_ms %d; want busy %d", got, f.p.opts.BusyNextMS)
	}
	// The next spell counts from that reaction, not from the first one.
	if got := nextAfter(12); got != 5000 {
		t.Fatalf("quiet again for 12 s: next_ms %d; want 5000", got)
	}
	if got := nextAfter(68); got != 8000 {
		t.Fatalf("80 s since the reaction's second: next_ms %d; want 8000", got)
	}
}

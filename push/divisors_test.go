package push

import (
	"context"
	"testing"

	"github.com/emojicast/emojicast/store"
)

func TestDivisorsFollowTheStoreAndRememberRecentOnes(t *testing.T) {
	fs, _ := newFaulty()
	d := newDivisors(10)
	stream := []byte("s")
	const now = 1000
	if w, cur := d.weight(stream, 0, now); w != 1 || cur != 1 {
		t.Fatalf("unknown stream: weight %d, current %d; want 1, 1", w, cur)
	}
	report := func(k int64) {
		t.Helper()
		if err := fs.ReportControl(context.Background(), "pull-1", []store.ControlReport{{Stream: "s", Divisor: k}}); err != nil {
			t.Fatal(err)
		}
		if err := d.refresh(context.Background(), fs, now); err != nil {
			t.Fatal(err)
		}
	}
	report(20)
	if w, cur := d.weight(stream, 0, now); w != 20 || cur != 20 {
		t.Fatalf("after the fleet chose 20: weight %d, current %d", w, cur)
	}
	report(50)
	for _, tc := range []struct {
		claimed, at, want int64
	}{
		{0, now, 50},                  // no claim: the current divisor
		{50, now, 50},                 // the current one
		{20, now, 20},                 // replaced a moment ago: a client still sampling at 1/20
		{1, now, 1},                   // the first one, also recent
		{7, now, 50},                  // never advertised: not believed
		{1000, now, 50},               // a client claiming a tiny sample to inflate counts
		{20, now + recentFor + 1, 50}, // replaced too long ago
	} {
		if w, _ := d.weight(stream, tc.claimed, tc.at); w != tc.want {
			t.Errorf("claimed %d at %d: weight %d; want %d", tc.claimed, tc.at, w, tc.want)
		}
	}
}

func TestDivisorsAreBoundedAndForgetIdleStreams(t *testing.T) {
	fs, _ := newFaulty()
	d := newDivisors(2)
	d.weight([]byte("a"), 0, 1000)
	d.weight([]byte("b"), 0, 1000)
	if w, _ := d.weight([]byte("c"), 0, 1000); w != 1 || len(d.m) != 2 {
		t.Fatalf("a third stream past the bound: weight %d, %d entries", w, len(d.m))
	}
	d.weight([]byte("b"), 0, 1000+recentFor)
	if err := d.refresh(context.Background(), fs, 1000+recentFor+1); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.m["a"]; ok || len(d.m) != 1 {
		t.Fatalf("entries after a minute: %v; want only b", d.m)
	}
}

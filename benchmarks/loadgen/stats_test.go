package main

import (
	"testing"
	"time"

	"github.com/valyala/fastjson"
)

var base = time.Unix(1_763_700_000, 0)

func at(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }

func TestAssignSplitsSendsOverSecondsInOrder(t *testing.T) {
	// Given out of order: assign orders by the middle of the round trip.
	sends := []send{
		{start: at(1900), accepted: at(1910), weight: 3},
		{start: at(100), accepted: at(110), weight: 2},
		{start: at(1200), accepted: at(1300), weight: 4},
	}
	pieces, unmatched := assign(sends, []int64{2, 5, 1})
	want := [][]piece{
		{{at(110), 2}},
		{{at(1300), 4}, {at(1910), 1}},
		{{at(1910), 1}},
	}
	if len(pieces) != len(want) {
		t.Fatalf("got %d seconds; want %d", len(pieces), len(want))
	}
	for i := range want {
		if len(pieces[i]) != len(want[i]) {
			t.Fatalf("second %d: %v; want %v", i, pieces[i], want[i])
		}
		for j := range want[i] {
			if !pieces[i][j].accepted.Equal(want[i][j].accepted) || pieces[i][j].weight != want[i][j].weight {
				t.Fatalf("second %d: %v; want %v", i, pieces[i], want[i])
			}
		}
	}
	if unmatched != 1 {
		t.Fatalf("unmatched = %d; want 1 (9 accepted, 8 seen)", unmatched)
	}
}

func TestAssignWithMoreSeenThanAccepted(t *testing.T) {
	pieces, unmatched := assign([]send{{start: at(0), accepted: at(5), weight: 2}}, []int64{3})
	if unmatched != 0 || len(pieces[0]) != 1 || pieces[0][0].weight != 2 {
		t.Fatalf("pieces %v, unmatched %d; want the 2 accepted matched, none left", pieces, unmatched)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {1, time.Millisecond}} {
		if got := percentile(ds, tc.p); got != tc.want {
			t.Errorf("p%v = %v; want %v", tc.p, got, tc.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func TestHistogramWeightsSamples(t *testing.T) {
	var h histogram
	h.add(100*time.Millisecond, 98)
	h.add(1500*time.Millisecond, 1)
	h.add(2500*time.Millisecond, 1)
	if got := h.percentile(50); got != 101*time.Millisecond {
		t.Errorf("p50 = %v; want 101ms (the bin's upper edge)", got)
	}
	if got := h.percentile(99); got != 2501*time.Millisecond {
		t.Errorf("p99 = %v; want 2501ms", got)
	}
	h.add(-time.Second, 1) // clamped, never out of range
	h.add(time.Hour, 1)
}

func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3 = %v; want 2", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 4 = %v; want 2.5", got)
	}
}

func TestParsePoll(t *testing.T) {
	var jp fastjson.Parser
	p, err := parsePoll(&jp, []byte(`{"now":10,"next_ms":1000,"sample":1,"viewers":3,"buckets":[{"t":9,"c":{"love":3,"fire":25},"burst":["fire"]},{"t":10,"c":{"like":1}}],"gap":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.now != 10 || p.nextMS != 1000 || !p.gap || len(p.buckets) != 2 || p.buckets[0] != (bucketTotal{9, 28}) || p.buckets[1] != (bucketTotal{10, 1}) {
		t.Fatalf("parsed %+v", p)
	}
	c, err := parsePoll(&jp, []byte(`[10,2000,1,3,[[9,4,[0,3,25]],[10,0,[1],["u","x"],["id"]]],1]`))
	if err != nil || c.now != 10 || c.nextMS != 2000 || !c.gap || len(c.buckets) != 2 || c.buckets[0] != (bucketTotal{9, 28}) || c.buckets[1] != (bucketTotal{10, 1}) {
		t.Fatalf("parsed compact %+v, %v", c, err)
	}
	for _, bad := range []string{`nope`, `{"next_ms":1000}`, `{"now":1,"next_ms":1000,"buckets":[{"c":{}}]}`, `{"now":1,"next_ms":1000,"buckets":[{"t":1}]}`,
		`[1,1000,1,1]`, `[0,1000,1,1,[]]`, `[1,1000,1,1,[[1,0]]]`, `[1,1000,1,1,[[1,0,5]]]`} {
		if _, err := parsePoll(&jp, []byte(bad)); err == nil {
			t.Errorf("parsePoll(%s) accepted it", bad)
		}
	}
}

func TestConfigStaysOnThisMachine(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:8080", "example.com:80", "0.0.0.0:8080", "8080"} {
		if _, err := parseConfig([]string{"-addr", addr}); err == nil {
			t.Errorf("-addr %s accepted", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:8080", "localhost:8080", "[::1]:8080"} {
		if _, err := parseConfig([]string{"-addr", addr}); err != nil {
			t.Errorf("-addr %s: %v", addr, err)
		}
	}
	if _, err := parseConfig([]string{"-duration", "2h"}); err == nil {
		t.Error("a two-hour stage accepted")
	}
}

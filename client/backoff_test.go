package client

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{}
	b.fillDefaults()
	ms := time.Millisecond
	for _, tc := range []struct {
		failure int
		r       float64
		want    time.Duration
	}{
		{1, 0.5, 500 * ms},
		{2, 0.5, 1000 * ms},
		{3, 0.5, 2000 * ms},
		{5, 0.5, 8000 * ms},
		{9, 0.5, 8000 * ms}, // capped at Max
		{0, 0.5, 500 * ms},  // before the first failure counts as the first
		{1, 0, 250 * ms},    // jitter 0.5 spreads 500ms over 250ms..750ms
		{1, 1, 750 * ms},
		{9, 0, 4000 * ms},
		{9, 1, 12000 * ms},
	} {
		if got := b.Delay(tc.failure, tc.r); got != tc.want {
			t.Errorf("Delay(%d, %v) = %v; want %v", tc.failure, tc.r, got, tc.want)
		}
	}
}

func TestBackoffDefaultsAndOverrides(t *testing.T) {
	b := Backoff{Initial: 2 * time.Second, Max: time.Second, Multiplier: 0.5, Jitter: 3}
	b.fillDefaults()
	want := Backoff{Initial: 2 * time.Second, Max: 2 * time.Second, Multiplier: 2, Jitter: 0.5}
	if b != want {
		t.Fatalf("fillDefaults = %+v; want %+v (Max raised to Initial, bad multiplier and jitter replaced)", b, want)
	}
}

// TestBackoffWaitHonoursRetryAfter: Retry-After is a floor that jitter only
// raises; a backoff already longer than it wins.
func TestBackoffWaitHonoursRetryAfter(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2, Jitter: 0.5}
	for _, tc := range []struct {
		failure    int
		retryAfter time.Duration
		r          float64
		want       time.Duration
	}{
		{1, 2 * time.Second, 0, 2 * time.Second},
		{1, 2 * time.Second, 0.5, 2500 * time.Millisecond},
		{1, 2 * time.Second, 1, 3 * time.Second},
		{8, 2 * time.Second, 0.5, 10 * time.Second}, // 100ms*2^7 capped at 10s
		{1, 0, 0.5, 100 * time.Millisecond},
	} {
		if got := b.Wait(tc.failure, tc.retryAfter, tc.r); got != tc.want {
			t.Errorf("Wait(%d, %v, %v) = %v; want %v", tc.failure, tc.retryAfter, tc.r, got, tc.want)
		}
	}
}

func TestPollWait(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		nextMS int64
		r      float64
		want   time.Duration
	}{
		{2000, 0.5, 2000 * ms},
		{2000, 0, 1800 * ms}, // -10%
		{2000, 1, 2200 * ms}, // +10%
		{1000, 0.25, 950 * ms},
		{0, 0.5, minPollWait},       // a next_ms of 0 must not spin
		{-5, 0.5, minPollWait},      // nor a negative one
		{600_000, 0.5, maxPollWait}, // ten minutes would leave the 60 s window
	} {
		if got := pollWait(tc.nextMS, 0.1, tc.r); got != tc.want {
			t.Errorf("pollWait(%d, 0.1, %v) = %v; want %v", tc.nextMS, tc.r, got, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"0", 0},
		{"-4", 0},
		{"soon", 0},
		{"999999", time.Hour}, // a broken proxy must not park the client for days
		{"Mon, 02 Jan 2006 15:04:05 GMT", 0},
	} {
		if got := parseRetryAfter(tc.in); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
	future := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	if got := parseRetryAfter(future); got < 80*time.Second || got > 90*time.Second {
		t.Errorf("parseRetryAfter(%q) = %v; want about 90s", future, got)
	}
}

func TestNewBuckets(t *testing.T) {
	in := []Bucket{{T: 105}, {T: 103}, {T: 101}, {T: 104}, {T: 104}, {T: 106}}
	got, cursor := newBuckets(in, 103)
	var ts []int64
	for _, b := range got {
		ts = append(ts, b.T)
	}
	if len(ts) != 3 || ts[0] != 104 || ts[1] != 105 || ts[2] != 106 || cursor != 106 {
		t.Fatalf("newBuckets(.., 103) = %v, cursor %d; want [104 105 106], 106: sorted, after the cursor, each once", ts, cursor)
	}
}

package client

import (
	"math"
	"time"
)

// Backoff is how long a client waits after failed requests. The n-th failure
// in a row waits Initial*Multiplier^(n-1), capped at Max, then spread
// uniformly over ±Jitter of itself, so that viewers who lost the network
// together do not all come back in the same instant. A Retry-After from the
// server is a floor: the client never comes back earlier than it was told.
type Backoff struct {
	// Initial is the wait after the first failure. Default: 500ms.
	Initial time.Duration
	// Max caps the wait before jitter. Default: 8s, so that a viewer back
	// from a 30 s network drop resumes within about 42 s of its cursor, well
	// inside the 60 s the server keeps.
	Max time.Duration
	// Multiplier grows the wait after each further failure. Default: 2.
	Multiplier float64
	// Jitter is the fraction the wait is spread over, from 0 to 1.
	// Default: 0.5 (a wait of 4s becomes 2s to 6s).
	Jitter float64
}

func (b *Backoff) fillDefaults() {
	if b.Initial <= 0 {
		b.Initial = 500 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 8 * time.Second
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Multiplier < 1 {
		b.Multiplier = 2
	}
	if b.Jitter <= 0 || b.Jitter > 1 {
		b.Jitter = 0.5
	}
}

// Delay returns the wait after the failure-th failure in a row (from 1),
// given r, a uniform random number in [0, 1): r = 0.5 is the wait without
// jitter.
func (b Backoff) Delay(failure int, r float64) time.Duration {
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(max(failure, 1)-1))
	d = min(d, float64(b.Max))
	return time.Duration(d * (1 + b.Jitter*(2*r-1)))
}

// Wait returns the wait after a failure: Delay, unless the server asked for
// more with Retry-After; that is honoured, with jitter only upward.
func (b Backoff) Wait(failure int, retryAfter time.Duration, r float64) time.Duration {
	d := b.Delay(failure, r)
	if retryAfter > 0 {
		d = max(d, time.Duration(float64(retryAfter)*(1+b.Jitter*r)))
	}
	return d
}

// The bounds of the wait between polls, whatever next_ms says: a client
// must not spin on a next_ms of 0, and must come back before its cursor
// leaves the 60 s window.
const (
	minPollWait = 100 * time.Millisecond
	maxPollWait = 30 * time.Second
)

// pollWait returns the wait before the next poll: next_ms spread uniformly
// over ±jitter of itself (docs/api.md: ±10%), within [minPollWait, maxPollWait].
func pollWait(nextMS int64, jitter, r float64) time.Duration {
	d := time.Duration(float64(nextMS) * float64(time.Millisecond) * (1 + jitter*(2*r-1)))
	return min(max(d, minPollWait), maxPollWait)
}

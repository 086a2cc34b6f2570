// Package clock is the time source of emojicast's per-second logic.
//
// Everything that decides which second a tap belongs to or which second is
// complete asks a Clock, so tests can drive seconds by hand instead of
// sleeping.
package clock

import (
	"sync"
	"time"
)

// Clock tells the current time.
type Clock interface {
	Now() time.Time
}

// Real is the system clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Manual is a Clock that only moves when told to. It is safe for concurrent use.
type Manual struct {
	mu  sync.Mutex
	now time.Time
}

// NewManual returns a Manual clock set to t.
func NewManual(t time.Time) *Manual { return &Manual{now: t} }

// Now returns the clock's current time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Add moves the clock forward by d and returns the new time.
func (m *Manual) Add(d time.Duration) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = m.now.Add(d)
	return m.now
}

// Set moves the clock to t.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = t
}

// Offset is the system clock moved by a fixed duration: a host whose clock
// is ahead (positive) or behind, for tests of a fleet with skewed clocks.
type Offset time.Duration

// Now returns time.Now() moved by the offset.
func (o Offset) Now() time.Time { return time.Now().Add(time.Duration(o)) }

var (
	_ Clock = Real{}
	_ Clock = (*Manual)(nil)
	_ Clock = Offset(0)
)

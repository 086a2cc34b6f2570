package store

import (
	"context"
	"time"
)

// memControl is one stream's shared control figures in a Memory store.
type memControl struct {
	viewers   map[string]nodeViewers // by pull node
	divisor   int64
	divisorAt time.Time
}

type nodeViewers struct {
	n  int64
	at time.Time
}

// divisorTTL is how long a chosen divisor outlives the last report that
// set it: longer than ControlTTL so push nodes keep weighting taps of a
// stream whose pull nodes restarted.
const divisorTTL = 60 * time.Second

// ReportControl implements Store.
func (m *Memory) ReportControl(_ context.Context, node string, reports []ControlReport) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Clock.Now()
	m.sweepControl(now)
	for _, r := range reports {
		c := m.control[r.Stream]
		if c == nil {
			if len(m.control) >= m.opts.MaxStreams {
				continue // full of streams reported within the TTL; this one waits
			}
			c = &memControl{viewers: make(map[string]nodeViewers, 2)}
			m.control[r.Stream] = c
		}
		c.viewers[node] = nodeViewers{n: r.Viewers, at: now}
		if r.Divisor > 0 {
			c.divisor, c.divisorAt = r.Divisor, now
		}
	}
	return nil
}

// Control implements Store.
func (m *Memory) Control(_ context.Context, streams []string) ([]Control, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Clock.Now()
	out := make([]Control, len(streams))
	for i, s := range streams {
		out[i].Divisor = 1
		c := m.control[s]
		if c == nil {
			continue
		}
		for _, v := range c.viewers {
			if now.Sub(v.at) <= ControlTTL {
				out[i].Viewers += v.n
			}
		}
		if c.divisor > 0 && now.Sub(c.divisorAt) <= divisorTTL {
			out[i].Divisor = c.divisor
		}
	}
	return out, nil
}

// sweepControl forgets expired reports, at most once a second.
func (m *Memory) sweepControl(now time.Time) {
	if now.Unix() == m.lastControlSweep {
		return
	}
	m.lastControlSweep = now.Unix()
	for s, c := range m.control {
		for node, v := range c.viewers {
			if now.Sub(v.at) > ControlTTL {
				delete(c.viewers, node)
			}
		}
		if len(c.viewers) == 0 && now.Sub(c.divisorAt) > divisorTTL {
			delete(m.control, s)
		}
	}
}

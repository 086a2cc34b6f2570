package store

import (
	"context"
	"slices"
	"strings"
	"time"
)

// memAudience is one stream's shared control figures in a Memory store.
type memAudience struct {
	viewers   map[string]nodeViewers // by pull node
	divisor   int64
	divisorAt time.Time // the last report of the stream
	prev      int64     // the divisor that divisor replaced
	prevAt    time.Time // when it was replaced
}

type nodeViewers struct {
	n  int64
	at time.Time
}

// ReportAudience implements Store.
func (m *Memory) ReportAudience(_ context.Context, node string, reports []AudienceReport) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Clock.Now()
	m.sweepAudience(now)
	for _, r := range reports {
		c := m.control[r.Stream]
		if c == nil {
			if len(m.control) >= m.opts.MaxStreams {
				continue // full of streams reported within the TTL; this one waits
			}
			c = &memAudience{viewers: make(map[string]nodeViewers, 2)}
			m.control[r.Stream] = c
		}
		c.viewers[node] = nodeViewers{n: r.Viewers, at: now}
		if r.Divisor > 0 {
			c.divisor = r.Divisor
			if r.Previous > 0 {
				c.prev, c.prevAt = r.Previous, now
			}
		}
		c.divisorAt = now
	}
	return nil
}

// Audience implements Store.
func (m *Memory) Audience(_ context.Context, streams []string) ([]Audience, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Clock.Now()
	out := make([]Audience, len(streams))
	for i, s := range streams {
		out[i].Divisor = 1
		c := m.control[s]
		if c == nil {
			continue
		}
		for _, v := range c.viewers {
			if now.Sub(v.at) <= AudienceTTL {
				out[i].Viewers += v.n
			}
		}
		if c.divisor > 0 && now.Sub(c.divisorAt) <= DivisorTTL {
			out[i].Divisor = c.divisor
			if c.prev > 0 && c.prev != c.divisor && now.Sub(c.prevAt) <= RecentFor {
				out[i].Previous = c.prev
			}
		}
	}
	return out, nil
}

// sweepAudience forgets expired reports, at most once a second.
func (m *Memory) sweepAudience(now time.Time) {
	if now.Unix() == m.lastAudienceSweep {
		return
	}
	m.lastAudienceSweep = now.Unix()
	for s, c := range m.control {
		for node, v := range c.viewers {
			if now.Sub(v.at) > AudienceTTL {
				delete(c.viewers, node)
			}
		}
		if len(c.viewers) == 0 && now.Sub(c.divisorAt) > DivisorTTL {
			delete(m.control, s)
		}
	}
}

type nodeLoad struct {
	offered int64
	at      time.Time
}

// ReportComments implements Store.
func (m *Memory) ReportComments(_ context.Context, node string, reports []CommentReport) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Clock.Now()
	m.sweepCommentLoad(now)
	m.pushNodes[node] = now
	for _, r := range reports {
		byNode := m.commentLoad[r.Stream]
		if byNode == nil {
			if len(m.commentLoad) >= m.opts.MaxStreams {
				continue // full of streams reported within the TTL; this one waits
			}
			byNode = make(map[string]nodeLoad, 2)
			m.commentLoad[r.Stream] = byNode
		}
		byNode[node] = nodeLoad{offered: r.Offered, at: now}
	}
	return nil
}

// CommentLoad implements Store.
func (m *Memory) CommentLoad(_ context.Context, streams []string) (CommentLoad, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Clock.Now()
	var out CommentLoad
	for node, at := range m.pushNodes {
		if now.Sub(at) <= CommentLoadTTL {
			out.Nodes = append(out.Nodes, node)
		}
	}
	slices.Sort(out.Nodes)
	out.Streams = make([][]NodeLoad, len(streams))
	for i, s := range streams {
		for node, l := range m.commentLoad[s] {
			if now.Sub(l.at) <= CommentLoadTTL {
				out.Streams[i] = append(out.Streams[i], NodeLoad{Node: node, Offered: l.offered})
			}
		}
		slices.SortFunc(out.Streams[i], func(a, b NodeLoad) int { return strings.Compare(a.Node, b.Node) })
	}
	return out, nil
}

// sweepCommentLoad forgets expired comment reports and push nodes, at most
// once a second.
func (m *Memory) sweepCommentLoad(now time.Time) {
	if now.Unix() == m.lastLoadSweep {
		return
	}
	m.lastLoadSweep = now.Unix()
	for node, at := range m.pushNodes {
		if now.Sub(at) > CommentLoadTTL {
			delete(m.pushNodes, node)
		}
	}
	for s, byNode := range m.commentLoad {
		for node, l := range byNode {
			if now.Sub(l.at) > CommentLoadTTL {
				delete(byNode, node)
			}
		}
		if len(byNode) == 0 {
			delete(m.commentLoad, s)
		}
	}
}

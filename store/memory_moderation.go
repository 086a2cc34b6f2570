package store

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"
)

// memModeration is the moderation data of a Memory store, under its mutex.
type memModeration struct {
	version  int64
	settings map[string]Settings
	bans     map[banKey]time.Time
	top      map[string]memTop // by pull node
}

type banKey struct{ stream, user string }

type memTop struct {
	streams []StreamStats
	at      time.Time
}

// ModerationVersion implements ModerationReader.
func (m *Memory) ModerationVersion(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.moderation.version, nil
}

// LoadModeration implements ModerationReader.
func (m *Memory) LoadModeration(context.Context) (Moderation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Clock.Now()
	md := &m.moderation
	out := Moderation{Version: md.version, Settings: make(map[string]Settings, len(md.settings))}
	for s, set := range md.settings {
		set.Emojis = slices.Clone(set.Emojis)
		out.Settings[s] = set
	}
	for k, until := range md.bans {
		if until.After(now) {
			out.Bans = append(out.Bans, Ban{Stream: k.stream, User: k.user, Until: until})
		}
	}
	sortBans(out.Bans)
	return out, nil
}

// PutSettings implements ModerationWriter.
func (m *Memory) PutSettings(_ context.Context, stream string, s Settings) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	md := &m.moderation
	if s.IsZero() {
		delete(md.settings, stream)
	} else {
		if _, ok := md.settings[stream]; !ok && len(md.settings) >= MaxModeratedStreams {
			return ErrModerationFull
		}
		s.Emojis = slices.Clone(s.Emojis)
		md.settings[stream] = s
	}
	md.version++
	return nil
}

// BanUser implements ModerationWriter.
func (m *Memory) BanUser(_ context.Context, b Ban) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	md := &m.moderation
	k := banKey{b.Stream, b.User}
	if _, ok := md.bans[k]; !ok && len(md.bans) >= MaxBans {
		now := m.opts.Clock.Now()
		for k, until := range md.bans {
			if !until.After(now) {
				delete(md.bans, k)
			}
		}
		if len(md.bans) >= MaxBans {
			return ErrModerationFull
		}
	}
	md.bans[k] = b.Until
	md.version++
	return nil
}

// UnbanUser implements ModerationWriter.
func (m *Memory) UnbanUser(_ context.Context, stream, user string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	md := &m.moderation
	k := banKey{stream, user}
	until, ok := md.bans[k]
	if !ok {
		return false, nil
	}
	delete(md.bans, k)
	md.version++
	return until.After(m.opts.Clock.Now()), nil
}

// Retract implements ModerationWriter. The comment also leaves the history.
func (m *Memory) Retract(ctx context.Context, stream, id string) error {
	m.mu.Lock()
	m.retractInHistory(stream, id, m.opts.Clock.Now().Unix())
	m.mu.Unlock()
	return m.Add(ctx, Batch{
		ID:          "retract-" + stream + "-" + id,
		Retractions: []Retraction{{Stream: stream, Second: m.opts.Clock.Now().Unix(), ID: id}},
	})
}

// ReportTop implements TopStreams.
func (m *Memory) ReportTop(_ context.Context, node string, streams []StreamStats) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Clock.Now()
	for n, t := range m.moderation.top {
		if now.Sub(t.at) > TopTTL {
			delete(m.moderation.top, n)
		}
	}
	m.moderation.top[node] = memTop{streams: slices.Clone(streams[:min(len(streams), MaxTopStreams)]), at: now}
	return nil
}

// Top implements TopStreams.
func (m *Memory) Top(_ context.Context, n int) ([]StreamStats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Clock.Now()
	var reports [][]StreamStats
	for _, t := range m.moderation.top {
		if now.Sub(t.at) <= TopTTL {
			reports = append(reports, t.streams)
		}
	}
	return mergeTop(reports, n), nil
}

func sortBans(bans []Ban) {
	slices.SortFunc(bans, func(a, b Ban) int {
		return cmp.Or(strings.Compare(a.Stream, b.Stream), strings.Compare(a.User, b.User))
	})
}

// sortTop sorts streams busiest first: by viewers, then by id.
func sortTop(s []StreamStats) {
	slices.SortFunc(s, func(a, b StreamStats) int {
		return cmp.Or(cmp.Compare(b.Viewers, a.Viewers), strings.Compare(a.ID, b.ID))
	})
}

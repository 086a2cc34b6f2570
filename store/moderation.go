package store

import (
	"errors"
	"time"
)

// Settings are an operator's settings of one stream. The zero value is a
// stream as the process's flags make it.
type Settings struct {
	// Emojis restricts the stream to these ids of the emoji set; empty
	// allows the whole set.
	Emojis []string `json:"emojis"`
	// CommentsOff refuses comments.
	CommentsOff bool `json:"comments_off,omitempty"`
	// CommentBudget is the most comments the stream broadcasts a second;
	// 0 is the push fleet's budget.
	CommentBudget int `json:"comment_budget,omitempty"`
	// SlowModeS is the least time in seconds between two comments of one
	// user; 0 is none.
	SlowModeS int `json:"slow_mode_s,omitempty"`
	// Closed refuses sends and comments; polls keep answering.
	Closed bool `json:"closed,omitempty"`
}

// IsZero reports whether s changes nothing, so a store need not keep it.
func (s *Settings) IsZero() bool {
	return len(s.Emojis) == 0 && !s.CommentsOff && s.CommentBudget == 0 && s.SlowModeS == 0 && !s.Closed
}

// Ban is a user banned from a stream until an instant.
type Ban struct {
	Stream string
	User   string
	Until  time.Time
}

// Moderation is every stream's settings and every live ban: what push
// nodes enforce. Version grows with every change, so nodes read the whole
// only when it moved.
type Moderation struct {
	Version  int64
	Settings map[string]Settings // by stream; streams without settings are absent
	Bans     []Ban
}

// StreamStats is one stream as a pull node sees it, for the operators' view
// of the busiest streams.
type StreamStats struct {
	ID           string  `json:"id"`
	Viewers      int64   `json:"viewers"`
	TapsPerS     float64 `json:"taps_per_s"`
	CommentsPerS float64 `json:"comments_per_s"`
	Sample       float64 `json:"sample"`
}

// Limits of the moderation data, so that no number of admin calls grows a
// store without bound.
const (
	// MaxModeratedStreams is the most streams with settings.
	MaxModeratedStreams = 10_000
	// MaxBans is the most live bans, over all streams.
	MaxBans = 100_000
	// MaxTopStreams is the most streams a pull node reports as its busiest.
	MaxTopStreams = 1000
	// TopTTL is how long a pull node's report of its busiest streams
	// counts: a node that stopped reporting drops out.
	TopTTL = 10 * time.Second
)

// ErrModerationFull is returned when a change would pass MaxModeratedStreams
// or MaxBans.
var ErrModerationFull = errors.New("store: too many moderated streams or bans")

// mergeTop merges the nodes' reports: a stream named by several nodes
// keeps the figures with the most viewers (viewers are the fleet's sum on
// every node; a node that synced later may know more). The result is
// sorted by viewers, then id, and cut to n.
func mergeTop(reports [][]StreamStats, n int) []StreamStats {
	byID := make(map[string]StreamStats)
	for _, rep := range reports {
		for _, s := range rep {
			if old, ok := byID[s.ID]; !ok || s.Viewers > old.Viewers {
				byID[s.ID] = s
			}
		}
	}
	out := make([]StreamStats, 0, len(byID))
	for _, s := range byID {
		out = append(out, s)
	}
	sortTop(out)
	if len(out) > n {
		out = out[:n]
	}
	return out
}

package push

import (
	"time"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/moderation"
)

// moderated returns the stream's moderation, or nil when it has none (or
// the node enforces none).
func (p *Node) moderated(stream []byte) *moderation.Stream {
	if p.opts.Moderation == nil {
		return nil
	}
	return p.opts.Moderation.Stream(stream)
}

// checkSend applies a moderated stream's rules to a send of emoji i.
func (mt *metrics) checkSend(m *moderation.Stream, user, group []byte, i int, now time.Time) *api.Error {
	switch {
	case m.Closed:
		mt.refusedClosed.Inc()
		return api.ErrStreamClosed
	case banned(m, user, group, now):
		mt.refusedBanned.Inc()
		return api.ErrBanned
	case !m.AllowsEmoji(i):
		mt.refusedEmoji.Inc()
		return api.ErrUnknownEmoji
	}
	return nil
}

// checkComment applies a moderated stream's rules to a comment, but for
// slow mode, which is checked once the user's own rate allowed it.
func (mt *metrics) checkComment(m *moderation.Stream, user, group []byte, now time.Time) *api.Error {
	switch {
	case m.Closed:
		mt.refusedClosed.Inc()
		return api.ErrStreamClosed
	case banned(m, user, group, now):
		mt.refusedBanned.Inc()
		return api.ErrBanned
	case m.CommentsOff:
		mt.refusedCommentsOff.Inc()
		return api.ErrCommentsOff
	}
	return nil
}

// banned reports whether the user, or the address group (clientip.AppendID;
// nil when unknown) it sends from, is banned from the stream.
func banned(m *moderation.Stream, user, group []byte, now time.Time) bool {
	ms := now.UnixMilli()
	return m.Banned(user, ms) || group != nil && m.Banned(group, ms)
}

// commentBudgetOf is a moderated stream's comment budget, 0 for the fleet's.
func commentBudgetOf(m *moderation.Stream) int {
	if m == nil {
		return 0
	}
	return m.CommentBudget
}

package danmaku

import (
	"sync"

	"github.com/emojicast/emojicast/store"
)

// pendingComments are the comments accepted since the last flush. They are
// bounded by the budget: at most Budget per stream and second.
type pendingComments struct {
	mu   sync.Mutex
	list []store.CommentAt
}

func (pc *pendingComments) add(c store.CommentAt) {
	pc.mu.Lock()
	pc.list = append(pc.list, c)
	pc.mu.Unlock()
}

func (pc *pendingComments) drain() []store.CommentAt {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	out := pc.list
	pc.list = nil
	return out
}

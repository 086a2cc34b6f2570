package moderation

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SlowMode remembers when each user last commented on each stream in slow
// mode, on one node. On its own it holds for one node only; push nodes
// share turns through the store and Remember what other nodes took. It is
// bounded:
// past MaxKeys it forgets the entries whose period has surely passed, then
// arbitrary ones (which lets those users comment early, never refuses
// anyone wrongly for longer than a period).
type SlowMode struct {
	mu      sync.Mutex
	last    map[string]int64 // stream "\x00" user -> Unix ns of the last comment
	maxKeys int
	evicted prometheus.Counter
}

// MaxSlowMode is the longest slow-mode period settings may ask for.
const MaxSlowMode = time.Hour

// NewSlowMode returns a SlowMode remembering at most maxKeys users, which
// counts the users it forgets early on reg (nil: nowhere).
func NewSlowMode(maxKeys int, reg prometheus.Registerer) *SlowMode {
	return &SlowMode{last: make(map[string]int64), maxKeys: max(maxKeys, 1), evicted: slowModeEvicted(reg)}
}

// Allow records a comment of user on stream at now (Unix ns) and returns 0,
// or returns how long the user must still wait when their last comment is
// less than period ago.
func (s *SlowMode) Allow(stream, user []byte, period time.Duration, now int64) time.Duration {
	key := make([]byte, 0, len(stream)+1+len(user))
	key = append(append(append(key, stream...), 0), user...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.last[string(key)]; ok {
		if wait := time.Duration(last + int64(period) - now); wait > 0 {
			return wait
		}
	} else if len(s.last) >= s.maxKeys {
		s.makeRoom(now)
	}
	s.last[string(key)] = now
	return 0
}

// Remember records that user's last comment on stream was at last (Unix
// ns), so that Allow refuses them until last + period: what another node
// took, learnt from the store.
func (s *SlowMode) Remember(stream, user []byte, last int64) {
	key := make([]byte, 0, len(stream)+1+len(user))
	key = append(append(append(key, stream...), 0), user...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.last[string(key)]; !ok && len(s.last) >= s.maxKeys {
		s.makeRoom(last)
	}
	s.last[string(key)] = last
}

func (s *SlowMode) makeRoom(now int64) {
	for k, at := range s.last {
		if now-at > int64(MaxSlowMode) {
			delete(s.last, k)
		}
	}
	for k := range s.last {
		if len(s.last) < s.maxKeys-s.maxKeys/8 {
			break
		}
		delete(s.last, k)
		s.evicted.Inc()
	}
}

// Package logthrottle keeps the logs of errors that repeat (a store that is
// down, a listener out of file descriptors, a failing word filter) to one
// line per interval, so an outage does not flood the log; the metrics next
// to each call count every occurrence.
package logthrottle

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// Throttle lets one message through per Every. The zero value with Every
// set is ready to use; it is safe for concurrent use.
type Throttle struct {
	Every time.Duration
	last  atomic.Int64 // Unix nanoseconds of the last message let through; 0: none yet
}

// Allow reports whether a message may be logged now, and if it may, counts
// it as logged: of concurrent callers, one gets true.
func (t *Throttle) Allow() bool {
	now := time.Now().UnixNano()
	last := t.last.Load()
	return (last == 0 || now-last >= int64(t.Every)) && t.last.CompareAndSwap(last, now)
}

// Warn logs msg and args at warning level on l, if Allow.
func (t *Throttle) Warn(l *slog.Logger, msg string, args ...any) {
	if t.Allow() {
		l.Warn(msg, args...)
	}
}

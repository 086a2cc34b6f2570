package logthrottle

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestOnePerInterval: within the interval one message of many goes out,
// even from concurrent callers; once the interval passed, the next one does.
func TestOnePerInterval(t *testing.T) {
	th := Throttle{Every: time.Hour}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if th.Allow() {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := allowed.Load(); got != 1 {
		t.Fatalf("%d messages let through within an hour; want 1", got)
	}

	th.last.Store(time.Now().Add(-th.Every).UnixNano())
	if !th.Allow() {
		t.Fatal("the interval passed and the next message was held back")
	}

	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	w := Throttle{Every: time.Hour}
	w.Warn(log, "first")
	w.Warn(log, "second")
	if got := buf.String(); !strings.Contains(got, "first") || strings.Contains(got, "second") {
		t.Fatalf("logged %q; want the first message only", got)
	}
}

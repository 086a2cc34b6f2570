package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/emojicast/emojicast/clock"
)

// testClockOffsetEnv moves a node's clock by a duration ("2s",
// "-300ms"): the fault-injection soak (e2e/soak_test.go) runs one push process
// whose host clock is ahead. It is for tests only: not a flag, not in
// --help, not part of the operations contract; a real fleet's clocks are
// what NTP makes them.
const testClockOffsetEnv = "EMOJICAST_TEST_CLOCK_OFFSET"

// hostClock returns the clock that assigns taps to seconds and times the
// send limits: the system clock, moved by testClockOffsetEnv when a test
// sets it.
func hostClock(log *slog.Logger) (clock.Clock, error) {
	v := os.Getenv(testClockOffsetEnv)
	if v == "" {
		return clock.Real{}, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("invalid %s=%q: %w", testClockOffsetEnv, v, err)
	}
	log.Warn("clock moved for a test: taps are assigned to seconds and sends limited by the system clock plus the offset", "env", testClockOffsetEnv, "offset", d)
	return clock.Offset(d), nil
}

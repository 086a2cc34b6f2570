//go:build !race

package testutil

// RaceEnabled reports whether the race detector is on. Under it sync.Pool
// drops items at random, so allocation counts of pooled paths are meaningless.
const RaceEnabled = false

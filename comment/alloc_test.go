//go:build !race

// The race detector makes sync.Pool drop what it is given, so allocations
// are pinned without it.

package comment

import (
	"strings"
	"testing"
)

// TestCleanAndMaskAllocateNothing: a comment with no blocked word is
// cleaned and masked without allocating, whatever its script.
func TestCleanAndMaskAllocateNothing(t *testing.T) {
	w := mustWords(t, reviewList)
	for _, text := range []string{
		"what a strike, best match of the season so far 🔥🔥",
		"오늘 경기 정말 최고였어요 " + strings.Repeat("흆", 50),
		"进球了！！！这是最好的比赛，没有之一",
		"5 goals in 10 min! @home $20",
	} {
		if n := testing.AllocsPerRun(100, func() {
			c, _ := Clean(text)
			_ = w.Mask(c)
		}); n != 0 {
			t.Errorf("cleaning and masking %q: %v allocations; want 0", text, n)
		}
	}
}

package danmaku

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/store"
)

// t0 is the tests' start: any whole second.
var t0 = time.Unix(1_763_700_000, 0)

// TestSeatsAddUpToTheBudget: every node computes its own seats from the
// same live nodes, and the seats add up to the budget, in every second; the
// seats that do not divide evenly go to every node in turn.
func TestSeatsAddUpToTheBudget(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 64} {
		var live []string
		for i := range n {
			live = append(live, fmt.Sprintf("node-%d", i))
		}
		extra := map[string]int{}
		for sec := int64(1000); sec < 1400; sec++ {
			sum := 0
			for _, node := range live {
				s := seats(30, live, node, "st", sec)
				sum += s
				if s > 30/n {
					extra[node]++
				}
			}
			if sum != 30 {
				t.Fatalf("%d nodes, second %d: seats add up to %d; want 30", n, sec, sum)
			}
		}
		if 30%n != 0 && len(extra) != n {
			t.Errorf("%d nodes: only %d of them ever got one of the seats left over", n, len(extra))
		}
	}
	if got := seats(30, nil, "me", "st", 1); got != 30 {
		t.Fatalf("a node alone (not yet listed) has %d seats; want 30", got)
	}
	if got := seats(30, []string{"other"}, "me", "st", 1); got != 15 {
		t.Fatalf("a node not yet listed beside one other has %d seats; want 15", got)
	}
}

// TestBudgetSplitsAcrossNodesFairly: two nodes each get half of 200
// comments a second; together they keep at most 30 a second, about 27, and
// a comment's chance is the same on either node and early or late.
func TestBudgetSplitsAcrossNodesFairly(t *testing.T) {
	a, b := newBudget(30, "a", 10, clock.Real{}), newBudget(30, "b", 10, clock.Real{})
	view := func(other int64) *fleetView {
		return &fleetView{nodes: []string{"a", "b"}, offered: map[string]int64{"s": other}, at: time.Now()}
	}
	a.fleet.Store(view(0))
	b.fleet.Store(view(0))
	var kept [2][2]int // [node][early, late]
	total := 0
	const seconds = 200
	for sec := int64(1); sec <= seconds; sec++ {
		n := 0
		for i := range 200 {
			node := []*budget{a, b}[i%2]
			keep, _, ok := node.admit([]byte("s"), sec, 0)
			if !ok {
				t.Fatal("budget refused a stream")
			}
			if keep {
				n++
				if sec > 1 {
					kept[i%2][i*2/200]++
				}
			}
		}
		if n > 30 {
			t.Fatalf("second %d kept %d; budget 30", sec, n)
		}
		total += n
		// What each node would read from the store: the other's last count.
		a.fleet.Store(view(100))
		b.fleet.Store(view(100))
	}
	if avg := float64(total) / seconds; avg < 26 || avg > 30 {
		t.Fatalf("kept %.1f a second on average; want about 27", avg)
	}
	for node := range 2 {
		for half := range 2 {
			// 199 seconds x 50 offers x p = 0.135: about 1343 each.
			if got := kept[node][half]; got < 1200 || got > 1490 {
				t.Errorf("node %d, half %d of the second kept %d; want about 1343", node, half, got)
			}
		}
	}
}

func TestBudgetIsBounded(t *testing.T) {
	b := newBudget(30, "a", 2, clock.Real{})
	for _, s := range []string{"x", "y"} {
		if _, _, ok := b.admit([]byte(s), 1, 0); !ok {
			t.Fatal("refused a stream under the bound")
		}
	}
	if _, _, ok := b.admit([]byte("z"), 1, 0); ok {
		t.Fatal("took a third stream past a bound of 2")
	}
	// Idle streams are forgotten when reported on.
	b.reports(1 + idleAfter + 1)
	if _, _, ok := b.admit([]byte("z"), 10, 0); !ok {
		t.Fatal("idle streams were not forgotten")
	}
}

// TestBudgetSecondsNeverReopen: a request that read the clock just before
// a second turned and arrives after the next second started is counted in
// the new second, so the old one's seats cannot be handed out again.
func TestBudgetSecondsNeverReopen(t *testing.T) {
	b := newBudget(30, "a", 10, clock.Real{})
	b.fleet.Store(&fleetView{nodes: []string{"a"}, at: time.Now()})
	kept := 0
	for i := range 200 {
		sec := int64(100 + i%2) // 100, 101, 100, 101...: requests straddling the turn
		keep, in, _ := b.admit([]byte("s"), sec, 0)
		if i > 0 && in != 101 {
			t.Fatalf("offer %d for second %d was counted in %d; want 101", i, sec, in)
		}
		if keep {
			kept++
		}
	}
	if kept > 31 { // second 100 kept the first offer, 101 the rest
		t.Fatalf("kept %d comments over two seconds with a budget of 30 and no rate known: seats were handed out again", kept)
	}
}

// TestBudgetJoinsBeforeTakingSeats: a node takes no seats before it read
// the fleet; alone it takes them at once; finding others, it waits until
// they have all counted it; and when it cannot read the fleet for longer
// than the others remember it, it takes none.
func TestBudgetJoinsBeforeTakingSeats(t *testing.T) {
	clk := clock.NewManual(t0)
	st := store.NewMemory(store.MemoryOptions{Clock: clk})
	ctx := context.Background()
	keeps := func(b *budget, sec int64) bool {
		keep, _, _ := b.admit([]byte("s"), sec, 0)
		return keep
	}
	a := newBudget(30, "a", 10, clk)
	if keeps(a, 1) {
		t.Fatal("a node that never read the fleet kept a comment")
	}
	if err := st.ReportComments(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	if err := a.refresh(ctx, st); err != nil {
		t.Fatal(err)
	}
	if !keeps(a, 2) {
		t.Fatal("a node alone did not keep the first comment of a second once it read the fleet")
	}
	b := newBudget(30, "b", 10, clk)
	if err := st.ReportComments(ctx, "b", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.refresh(ctx, st); err != nil {
		t.Fatal(err)
	}
	if keeps(b, 3) {
		t.Fatal("a node joining a live fleet took a seat before the others counted it")
	}
	clk.Add(2*commentLoadInterval + 10*time.Millisecond)
	if err := b.refresh(ctx, st); err != nil {
		t.Fatal(err)
	}
	if !keeps(b, 4) {
		t.Fatal("a joined node did not keep a comment after the wait")
	}
	stale := *b.fleet.Load()
	stale.at = clk.Now().Add(-store.CommentLoadTTL - time.Second)
	b.fleet.Store(&stale)
	if keeps(b, 5) {
		t.Fatal("a node that could not read the fleet for longer than the others remember it kept a comment")
	}
}

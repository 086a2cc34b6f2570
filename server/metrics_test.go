package server

import "testing"

// TestNodesInOneProcessCountApart: two nodes in one process, each on the
// registry it was given, count only their own requests, sends and
// connections, as two processes would.
func TestNodesInOneProcessCountApart(t *testing.T) {
	a, b := startNode(t), startNode(t)
	for range 3 {
		if code := a.send("s", "u1", "like", 1); code != 202 {
			t.Fatalf("send to a: %d; want 202", code)
		}
	}
	if code := b.send("s", "u2", "like", 2); code != 202 {
		t.Fatalf("send to b: %d; want 202", code)
	}
	for _, c := range []struct {
		sample string
		a, b   float64
	}{
		{"emojicast_push_taps_accepted_total", 3, 2},
		{`emojicast_http_requests_total{route="send",status="202"}`, 3, 1},
	} {
		if got := counterValue(t, a, c.sample); got != c.a {
			t.Errorf("node a: %s = %v; want %v", c.sample, got, c.a)
		}
		if got := counterValue(t, b, c.sample); got != c.b {
			t.Errorf("node b: %s = %v; want %v", c.sample, got, c.b)
		}
	}
}

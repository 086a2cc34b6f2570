package pull

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/clientip"
)

// TestEdgeFeedCountsOnce checks that with an edge feed the node counts the
// polls the edge reports like polls that reach it, and not the edge's own
// refills a second time, and that a report of a stream the node does not
// serve changes nothing.
func TestEdgeFeedCountsOnce(t *testing.T) {
	edge := netip.MustParseAddr("10.0.0.1")
	viewer := netip.MustParseAddr("192.0.2.7")
	// run plays three seconds of one stream and returns its viewers: each
	// second the edge refills once (a poll from edge), reports reported
	// polls, and direct viewers poll the node themselves.
	run := func(feed *clientip.Resolver, reported, direct int) (*Pull, int64) {
		f := newFixture(t)
		p, err := New(Options{Store: f.st, Clock: f.clk, Logger: slog.New(slog.DiscardHandler), EdgeFeed: feed})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		f.p = p
		pollFrom := func(a netip.Addr) body {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI("/v1/streams/s/reactions")
			ctx.SetRemoteAddr(&net.TCPAddr{IP: a.AsSlice(), Port: 4000})
			p.HandlePoll(&ctx, []byte("s"), nil)
			return decode(t, &ctx)
		}
		f.add("s", "like", 1)
		pollFrom(viewer)
		f.sync()
		for range 3 {
			if feed != nil {
				pollFrom(edge)
				if !p.CountEdgePolls([]byte("s"), int64(reported)) {
					t.Fatal("CountEdgePolls: the node does not serve s")
				}
			}
			for range direct {
				pollFrom(viewer)
			}
			f.step()
		}
		return p, pollFrom(edge).Viewers
	}
	_, want := run(nil, 0, 41)
	p, got := run(clientip.New([]netip.Prefix{netip.PrefixFrom(edge, 32)}), 40, 1)
	if got != want || want == 0 {
		t.Errorf("viewers = %d with 40 polls a second reported by the edge, 1 direct and the edge's refill; want %d, as for 41 direct polls", got, want)
	}
	if p.CountEdgePolls([]byte("other"), 5) || p.Serves([]byte("other")) {
		t.Error("a report of a stream the node does not serve was counted or opened it")
	}
}

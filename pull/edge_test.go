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
	run := func(feed *clientip.Resolver, reported, direct int) (*Node, int64) {
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
				for i := range reported {
					client := []byte{192, 0, 2, byte(i)}
					if !p.CountEdgePoll([]byte("s"), client, []byte{10, 0, 0, 1}) {
						t.Fatal("CountEdgePoll: the node does not serve s")
					}
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
		t.Errorf("viewers = %d with 40 clients' polls a second reported by the edge, 1 direct and the edge's refill; want %d, as for 41 direct polls", got, want)
	}
	if p.CountEdgePoll([]byte("other"), []byte{192, 0, 2, 1}, nil) || p.Serves([]byte("other")) {
		t.Error("a report of a stream the node does not serve was counted or opened it")
	}
}

// TestEdgeFeedBoundsEachClient: one client polling through the edge as
// fast as it likes counts at most ViewersPerAddress viewers, as its polls
// reaching the node would, and lines that name no client count at most
// one viewer per edge. (Before, review finding 6: one client on two
// connections made viewers 4,006.)
func TestEdgeFeedBoundsEachClient(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client []byte
		want   int64
	}{{"one client", []byte{192, 0, 2, 9}, DefaultViewersPerAddress}, {"no client named", nil, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			edge := netip.MustParseAddr("10.0.0.1")
			p, err := New(Options{Store: f.st, Clock: f.clk, Logger: slog.New(slog.DiscardHandler), EdgeFeed: clientip.New([]netip.Prefix{netip.PrefixFrom(edge, 32)})})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Stop)
			f.p = p
			pollFromEdge := func() int64 {
				var ctx fasthttp.RequestCtx
				ctx.Request.SetRequestURI("/v1/streams/s/reactions")
				ctx.SetRemoteAddr(&net.TCPAddr{IP: edge.AsSlice(), Port: 4000})
				p.HandlePoll(&ctx, []byte("s"), nil)
				return decode(t, &ctx).Viewers
			}
			f.add("s", "like", 1)
			pollFromEdge() // opens the stream; the edge's own polls never count
			f.sync()
			for range 3 {
				for range 2000 {
					p.CountEdgePoll([]byte("s"), tc.client, edge.AsSlice())
				}
				f.step()
			}
			if got := pollFromEdge(); got > tc.want || got == 0 {
				t.Errorf("viewers = %d after 2,000 polls a second reported for one client; want 1 to %d", got, tc.want)
			}
		})
	}
}

package pull

import (
	"hash/maphash"
	"net"

	"github.com/valyala/fasthttp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var edgePolls = promauto.NewCounter(prometheus.CounterOpts{
	Name: "emojicast_pull_edge_polls_total",
	Help: "Polls the edges reported in their log feed (cache hits included) that were counted as viewers of a stream this node serves.",
})

// CountEdgePolls counts n polls of stream id that an edge answered (from its
// cache or from any origin) as viewer arrivals now, each staying the
// stream's current next_ms, the same as a poll that reaches this node
// (control.go). Behind a CDN the origin sees about one poll per cursor per
// second whatever the audience; the edge's log sees them all. Only streams
// this node already serves are counted: the edge routes each stream's
// refills to one node, so that node serves it and the others ignore it,
// and nothing an edge reports makes the node hold more streams. It reports
// whether the node serves the stream.
func (p *Pull) CountEdgePolls(id []byte, n int64) bool {
	st := p.streams.lookup(id)
	if st == nil || n <= 0 {
		return false
	}
	nextMS := int64(unsyncedNextMS)
	if st.synced() {
		nextMS = st.ctl.Load().nextMS
	}
	st.presence.edgePolls(p.opts.Clock.Now().UnixMilli(), nextMS, n)
	edgePolls.Add(float64(n))
	return true
}

// countsPoll reports whether a poll from peer counts as a viewer here: not
// when an edge feed reports the edge's polls, or each would count twice.
func (p *Pull) countsPoll(ctx *fasthttp.RequestCtx) bool {
	if p.opts.EdgeFeed == nil {
		return true
	}
	ta, ok := ctx.RemoteAddr().(*net.TCPAddr)
	return !ok || !p.opts.EdgeFeed.Trusted(ta.AddrPort().Addr())
}

// edgePolls records n polls answered at nowMS with nextMS, like poll.
func (pr *presence) edgePolls(nowMS, nextMS, n int64) {
	pr.arrive[presenceSlot(nowMS/1000)].Add(n)
	pr.depart[presenceSlot((nowMS+nextMS)/1000)].Add(n)
}

// lookup returns the stream with the given id, nil if the node does not
// serve it.
func (r *registry) lookup(id []byte) *stream {
	sh := &r.shard[maphash.Bytes(r.seed, id)%registryShards]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.m[string(id)]
}

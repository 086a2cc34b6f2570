package pull

import (
	"hash/maphash"
	"net"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/clientip"
)

// CountEdgePoll counts one poll of stream id that an edge answered (from
// its cache or from any origin) as a viewer arrival now, staying the
// stream's current next_ms, the same as a poll that reaches this node
// (control.go): the client with the address key client counts at most
// ViewersPerAddress viewers per poll window, as its own polls would; a
// line naming no client counts at most one viewer per poll window for
// the edge with the address key edge. Behind a CDN the origin sees about
// one poll per cursor per second whatever the audience; the edge's log
// sees them all. Only streams this node already serves are counted: the
// edge routes each stream's refills to one node, so that node serves it
// and the others ignore it, and nothing an edge reports makes the node
// hold more streams. It reports whether the node serves the stream.
func (p *Node) CountEdgePoll(id, client, edge []byte) bool {
	st := p.streams.lookup(id)
	if st == nil {
		return false
	}
	nextMS := int64(unsyncedNextMS)
	if st.synced() {
		nextMS = st.advice.Load().nextMS
	}
	p.metrics.edgePolls.Inc()
	nowMS := p.opts.Clock.Now().UnixMilli()
	if client != nil {
		p.arrive(st, client, nowMS, nextMS, p.opts.ViewersPerAddress)
		return true
	}
	// A key no client's can equal: client keys are 4 or 7 bytes.
	var buf [1 + clientip.MaxKeyLen]byte
	p.arrive(st, append(append(buf[:0], 'e'), edge...), nowMS, nextMS, 1)
	return true
}

// countsPoll reports whether a poll from peer counts as a viewer here: not
// when an edge feed reports the edge's polls, or each would count twice.
func (p *Node) countsPoll(ctx *fasthttp.RequestCtx) bool {
	if p.opts.EdgeFeed == nil {
		return true
	}
	ta, ok := ctx.RemoteAddr().(*net.TCPAddr)
	return !ok || !p.opts.EdgeFeed.Trusted(ta.AddrPort().Addr())
}

// lookup returns the stream with the given id, nil if the node does not
// serve it.
func (r *registry) lookup(id []byte) *stream {
	sh := &r.shard[maphash.Bytes(r.seed, id)%registryShards]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.m[string(id)]
}

package server

import (
	"net"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/ratelimit"
)

// errIPRateLimited answers a client address over its rate.
var errIPRateLimited = api.NewError(fasthttp.StatusTooManyRequests, "rate_limited",
	"too many requests from your network address; retry after the number of seconds in Retry-After")

// ipLimits are the per-client-address limits: sends, and watches (which
// open a stream on the node). The per-user limit of sends is push's; this
// one also holds in open mode, where a client can claim a new user id per
// request.
type ipLimits struct {
	send, watch         *ratelimit.Limiter
	sendHits, watchHits prometheus.Counter
}

func newIPLimits(o *Options) ipLimits {
	send := o.SendLimiter
	if send == nil {
		send = ratelimit.New(o.SendRatePerIP, o.SendBurstPerIP, o.MaxClientIPs)
	}
	return ipLimits{
		send:      send,
		watch:     ratelimit.New(o.WatchRatePerIP, o.WatchBurstPerIP, o.MaxClientIPs),
		sendHits:  ipLimited.WithLabelValues("send"),
		watchHits: ipLimited.WithLabelValues("watch"),
	}
}

// clientIP returns the address of the client behind the request: the peer,
// or what a trusted proxy says in X-Forwarded-For.
func (s *Server) clientIP(ctx *fasthttp.RequestCtx) netip.Addr {
	var peer netip.Addr
	if ta, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		peer = ta.AddrPort().Addr()
	}
	if !s.proxies.Trusted(peer) {
		return peer.Unmap()
	}
	return s.proxies.Resolve(peer, ctx.Request.Header.PeekAll(fasthttp.HeaderXForwardedFor))
}

// allowSend takes a send from the client's allowance, or answers 429.
func (s *Server) allowSend(ctx *fasthttp.RequestCtx) bool {
	return s.allowIP(ctx, s.perIP.send, s.perIP.sendHits)
}

// allowWatch takes a watch from the client's allowance, or answers 429.
func (s *Server) allowWatch(ctx *fasthttp.RequestCtx) bool {
	return s.allowIP(ctx, s.perIP.watch, s.perIP.watchHits)
}

func (s *Server) allowIP(ctx *fasthttp.RequestCtx, l *ratelimit.Limiter, hits prometheus.Counter) bool {
	var buf [16]byte
	key := clientip.AppendKey(buf[:0], s.clientIP(ctx))
	wait := l.Allow(key, 1, s.opts.Clock.Now().UnixNano())
	if wait <= 0 {
		return true
	}
	hits.Inc()
	api.WriteRetryIn(ctx, errIPRateLimited, wait)
	return false
}

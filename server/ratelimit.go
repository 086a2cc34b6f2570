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

// ipLimits are the per-client-address limits: sends, watches (which open
// a stream on the node), and polls of each stream. The per-user limit of sends is push's; this
// one also holds in open mode, where a client can claim a new user id per
// request.
type ipLimits struct {
	send, watch, poll             *ratelimit.Limiter
	sendHits, watchHits, pollHits prometheus.Counter
}

func newIPLimits(o *Options) ipLimits {
	send := o.SendLimiter
	if send == nil {
		send = ratelimit.New(o.SendRatePerIP, o.SendBurstPerIP, o.MaxClientIPs)
	}
	return ipLimits{
		send:      send,
		watch:     ratelimit.New(o.WatchRatePerIP, o.WatchBurstPerIP, o.MaxClientIPs),
		poll:      ratelimit.New(o.PollRatePerIP, o.PollBurstPerIP, o.MaxClientIPs),
		sendHits:  ipLimited.WithLabelValues("send"),
		watchHits: ipLimited.WithLabelValues("watch"),
		pollHits:  ipLimited.WithLabelValues("poll"),
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

// allowSend takes a send from the allowance of the client with the
// address key client, or answers 429.
func (s *Server) allowSend(ctx *fasthttp.RequestCtx, client []byte) bool {
	return s.allowKey(ctx, s.perIP.send, s.perIP.sendHits, client)
}

// allowWatch takes a watch from the client's allowance, or answers 429.
func (s *Server) allowWatch(ctx *fasthttp.RequestCtx) bool {
	return s.allowIP(ctx, s.perIP.watch, s.perIP.watchHits)
}

// allowPoll takes a poll of stream from the allowance of the client with
// the address key client, or answers 429. It does not allocate unless it
// meets a new client.
func (s *Server) allowPoll(ctx *fasthttp.RequestCtx, client, stream []byte) bool {
	var buf [clientip.MaxKeyLen + 1 + 64]byte
	key := append(append(append(buf[:0], client...), '|'), stream...)
	return s.allowKey(ctx, s.perIP.poll, s.perIP.pollHits, key)
}

func (s *Server) allowIP(ctx *fasthttp.RequestCtx, l *ratelimit.Limiter, hits prometheus.Counter) bool {
	var buf [clientip.MaxKeyLen]byte
	return s.allowKey(ctx, l, hits, clientip.AppendKey(buf[:0], s.clientIP(ctx)))
}

func (s *Server) allowKey(ctx *fasthttp.RequestCtx, l *ratelimit.Limiter, hits prometheus.Counter, key []byte) bool {
	wait := l.Allow(key, 1, s.opts.Clock.Now().UnixNano())
	if wait <= 0 {
		return true
	}
	hits.Inc()
	api.WriteRetryIn(ctx, errIPRateLimited, wait)
	return false
}

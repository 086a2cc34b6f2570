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

// errAdminGuesses answers an address that sent too many wrong admin tokens.
var errAdminGuesses = api.NewError(fasthttp.StatusTooManyRequests, "rate_limited",
	"too many wrong admin tokens from your network address; retry after the number of seconds in Retry-After")

// The wrong admin tokens an address may send: a few at once (a typo, a
// rotated token), then a few a minute. An operator's tool with the right
// token is never charged; a guesser gets 5 tries a minute instead of
// thousands a second.
const (
	adminGuessBurst = 5
	adminGuessRate  = 5.0 / 60
)

// ipLimits are the per-client-address limits: sends, watches (which open
// a stream on the node), polls of each stream, and wrong admin tokens.
// The per-user limit of sends is push's; this one also holds in open
// mode, where a client can claim a new user id per request.
type ipLimits struct {
	send, watch, poll, admin                 *ratelimit.Limiter
	sendHits, watchHits, pollHits, adminHits prometheus.Counter
}

func newIPLimits(o *Options, m *metrics) ipLimits {
	send := o.SendLimiter
	if send == nil {
		send = ratelimit.New(o.SendRatePerIP, o.SendBurstPerIP, o.MaxClientIPs)
	}
	return ipLimits{
		send:      send,
		watch:     ratelimit.New(o.WatchRatePerIP, o.WatchBurstPerIP, o.MaxClientIPs),
		poll:      ratelimit.New(o.PollRatePerIP, o.PollBurstPerIP, o.MaxClientIPs),
		admin:     ratelimit.New(adminGuessRate, adminGuessBurst, o.MaxClientIPs),
		sendHits:  m.ipLimited.WithLabelValues("send"),
		watchHits: m.ipLimited.WithLabelValues("watch"),
		pollHits:  m.ipLimited.WithLabelValues("poll"),
		adminHits: m.ipLimited.WithLabelValues("admin"),
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
	return s.allowKey(ctx, s.perIP.send, s.perIP.sendHits, client, errIPRateLimited)
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
	return s.allowKey(ctx, s.perIP.poll, s.perIP.pollHits, key, errIPRateLimited)
}

// admin serves the operators' API to a client that has not sent too many
// wrong tokens lately. Every call takes a try from the client's
// allowance before its token is looked at, so concurrent guesses get no
// more than the burst, and a throttled client gets 429 whatever its
// token; a call with the right token gives the allowance back whole.
func (s *Server) admin(ctx *fasthttp.RequestCtx) {
	var buf [clientip.MaxKeyLen]byte
	key := clientip.AppendKey(buf[:0], s.clientIP(ctx))
	if !s.allowKey(ctx, s.perIP.admin, s.perIP.adminHits, key, errAdminGuesses) {
		return
	}
	s.opts.Admin(ctx)
	if ctx.Response.StatusCode() != fasthttp.StatusUnauthorized {
		s.perIP.admin.Forget(key)
	}
}

func (s *Server) allowIP(ctx *fasthttp.RequestCtx, l *ratelimit.Limiter, hits prometheus.Counter) bool {
	var buf [clientip.MaxKeyLen]byte
	return s.allowKey(ctx, l, hits, clientip.AppendKey(buf[:0], s.clientIP(ctx)), errIPRateLimited)
}

func (s *Server) allowKey(ctx *fasthttp.RequestCtx, l *ratelimit.Limiter, hits prometheus.Counter, key []byte, e *api.Error) bool {
	wait := l.Allow(key, 1, s.opts.Clock.Now().UnixNano())
	if wait <= 0 {
		return true
	}
	hits.Inc()
	api.WriteRetryIn(ctx, e, wait)
	return false
}

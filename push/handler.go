package push

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/token"
)

// MaxBody is the largest send body (docs/api.md: at most 1 KiB).
const MaxBody = 1024

var (
	bearerPrefix = []byte("Bearer ")
	mediaJSON    = []byte("application/json")
)

// HandleReactions serves POST /v1/streams/{stream}/reactions. stream is a
// valid stream id; client is the key of the client's address group
// (clientip.AppendKey), nil when unknown.
func (p *Node) HandleReactions(ctx *fasthttp.RequestCtx, stream, client []byte) {
	body, ok := p.readBody(ctx)
	if !ok {
		return
	}
	parser := parsers.Get()
	defer parsers.Put(parser)
	r, aerr := parseReaction(parser, body, p.opts.Emojis)
	if aerr != nil {
		api.WriteError(ctx, aerr)
		return
	}
	now := p.opts.Clock.Now()
	var userBuf [64]byte
	user, selfService, aerr := p.authenticate(ctx, userBuf[:0], stream, r.user, now)
	if aerr != nil {
		api.WriteError(ctx, aerr)
		return
	}
	var groupBuf [clientip.MaxIDLen]byte
	var group []byte
	if client != nil {
		group = clientip.AppendID(groupBuf[:0], client)
	}
	if m := p.moderated(stream); m != nil {
		if aerr := p.metrics.checkSend(m, user, group, r.emoji, now); aerr != nil {
			api.WriteError(ctx, aerr)
			return
		}
	}
	sec := now.Unix()
	k, current := p.weigh(stream, r.divisor, sec)
	var keyBuf [3 * 65]byte
	var idKey []byte
	if r.id != nil {
		idKey = append(append(append(append(append(keyBuf[:0], user...), 0), stream...), 0), r.id...)
		if !p.sendIDs.AllowPer(idKey, 1, sendIDWindow, now.UnixNano()) {
			// Counted already: a retry of a send whose answer was lost.
			p.metrics.sendsDeduplicated.Inc()
			writeAccepted(ctx, current)
			return
		}
	}
	weighted := r.count * k
	if selfService && client != nil {
		// Ids are free to make: what binds a person is the address group,
		// and no send weighs more than the group's burst.
		weighted = min(weighted, int64(p.opts.AddrWeightBurst))
	}
	wait := p.limitSend(user, client, selfService, r.count, weighted, k, now)
	if wait > 0 {
		p.forgetID(idKey)
		p.metrics.rateLimited.Inc()
		api.WriteRetryIn(ctx, api.ErrRateLimited, wait)
		return
	}
	var sampled int64
	if r.divisor > 0 {
		sampled = weighted
	}
	if err := p.agg.add(stream, sec, r.emoji, weighted, sampled); err != nil {
		if errors.Is(err, errTooManyStreams) {
			p.forgetID(idKey)
			p.metrics.overloaded.Inc()
			api.WriteRetry(ctx, api.ErrOverloaded, 1)
			return
		}
		panic("BUG: unexpected aggregator error: " + err.Error())
	}
	p.metrics.tapsAccepted.Add(float64(r.count))
	p.metrics.reactionsCounted.Add(float64(weighted))
	writeAccepted(ctx, current)
}

// weigh returns the weight of a send that states divisor (0: none) to
// stream in second sec, and the divisor to advertise in its answer.
func (p *Node) weigh(stream []byte, divisor, sec int64) (k, current int64) {
	sd := p.divisors.get(stream, sec)
	if sd != nil && sd.current.Load() == 0 {
		// The first send of a stream new to this node: learn the fleet's
		// divisor before weighting or advertising anything.
		p.divisors.read(p.life, sd, stream, p.targets[0].store, firstReadTimeout, sec)
	}
	k, current, checked := p.divisors.weigh(sd, divisor, sec)
	if !checked && sd != nil {
		// Pull nodes may advertise a divisor a moment before this node's
		// background read sees it: ask the store (once a second a stream).
		p.divisors.read(p.life, sd, stream, p.targets[0].store, firstReadTimeout, sec)
		k, current, checked = p.divisors.weigh(sd, divisor, sec)
	}
	if !checked {
		p.metrics.unadvertised.Inc()
	}
	return k, current
}

// limitSend takes a send from its user's allowance and, for self-service
// ids, from its address group's weight, and returns how long to wait when
// either is spent.
func (p *Node) limitSend(user, client []byte, selfService bool, count, weighted, k int64, now time.Time) time.Duration {
	var wait time.Duration
	if k == 1 {
		wait = p.users.Allow(user, int(count), now.UnixNano())
	} else {
		wait = p.users.AllowDebt(user, weighted, now.UnixNano())
	}
	if wait <= 0 && selfService && client != nil {
		if wait = p.addrWeights.Allow(client, int(weighted), now.UnixNano()); wait > 0 {
			p.metrics.addrLimited.Inc()
		}
	}
	return wait
}

// firstReadTimeout bounds the read of a new stream's divisor in a send;
// past it the send is weighted as if the divisor were unknown.
const firstReadTimeout = 250 * time.Millisecond

// sendIDWindow is how long a send's id is remembered: a client retries a
// send whose answer it lost within seconds, never minutes later.
const sendIDWindow = 2 * time.Minute

// maxSendIDs bounds the ids remembered; past it the oldest are forgotten.
const maxSendIDs = 200_000

// forgetID forgets the id of a send that was refused after all, so that
// its retry is counted.
func (p *Node) forgetID(key []byte) {
	if key != nil {
		p.sendIDs.Forget(key)
	}
}

// readBody applies what every POST of push checks before reading its
// body: the load budget, a JSON Content-Type and the size limit. It
// answers and returns false when one fails.
func (p *Node) readBody(ctx *fasthttp.RequestCtx) ([]byte, bool) {
	if wait, shed := p.shed(); shed {
		p.metrics.overloaded.Inc()
		api.WriteRetry(ctx, api.ErrOverloaded, wait)
		return nil, false
	}
	if !isJSON(ctx.Request.Header.ContentType()) {
		api.WriteError(ctx, api.ErrUnsupportedMedia)
		return nil, false
	}
	body := ctx.Request.Body()
	if len(body) > MaxBody {
		api.WriteError(ctx, api.ErrBodyTooLarge)
		return nil, false
	}
	return body, true
}

// shed decides whether to refuse a send because the process is over its
// load budget: at factor f it refuses a share 1-1/f of sends, so the
// accepted rate stays at the budget instead of collapsing, and tells the
// client to come back in about f seconds.
func (p *Node) shed() (retryAfter int64, refuse bool) {
	if p.opts.Load == nil {
		return 0, false
	}
	f := p.opts.Load.Factor()
	if f <= 1 || rand.Float64() >= 1-1/f {
		return 0, false
	}
	return min(int64(math.Ceil(f)), 10), true
}

// authenticate returns the user a send is from: from the token when tokens
// are on (an anonymous token of ours, or the application's JWT), else from
// the body. selfService reports whether the client could have made the id
// up itself (the open mode, or an anonymous token from watch): then the
// id binds nobody, and the client's address group is what limits it.
func (p *Node) authenticate(ctx *fasthttp.RequestCtx, dst, stream, bodyUser []byte, now time.Time) (user []byte, selfService bool, aerr *api.Error) {
	if p.opts.Signer == nil && p.opts.JWT == nil {
		if bodyUser == nil {
			return nil, true, api.ErrInvalidUser
		}
		return bodyUser, true, nil
	}
	tok, ok := cutBearer(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	if !ok {
		return nil, false, api.ErrUnauthorized
	}
	tok = bytes.TrimSpace(tok)
	var err error
	switch {
	case p.opts.Signer != nil && token.IsAnonymous(tok):
		user, err = p.opts.Signer.Verify(dst, tok, stream, now)
		selfService = true
	case p.opts.JWT != nil:
		user, err = p.opts.JWT.Verify(dst, tok, stream, now)
	default:
		err = token.ErrMalformed
	}
	if err != nil {
		return nil, false, api.ErrUnauthorized
	}
	return user, selfService, nil
}

// cutBearer returns the credentials of a Bearer Authorization header; the
// scheme is case-insensitive (RFC 9110 11.1).
func cutBearer(auth []byte) ([]byte, bool) {
	if len(auth) < len(bearerPrefix) || !bytes.EqualFold(auth[:len(bearerPrefix)], bearerPrefix) {
		return nil, false
	}
	return auth[len(bearerPrefix):], true
}

// isJSON reports whether a Content-Type is application/json, with or
// without parameters.
func isJSON(contentType []byte) bool {
	media, _, _ := bytes.Cut(contentType, []byte{';'})
	return bytes.EqualFold(bytes.TrimSpace(media), mediaJSON)
}

// writeAccepted writes 202 {"status":"accepted","sample":1/k}, without
// sample when k is 0: the node does not know the fleet's divisor, and an
// answer of 1 would make every client that adopts it send every tap.
func writeAccepted(ctx *fasthttp.RequestCtx, k int64) {
	var buf [64]byte
	b := append(buf[:0], `{"status":"accepted"`...)
	if k > 0 {
		b = append(b, `,"sample":`...)
		b = api.AppendSample(b, k)
	}
	b = append(b, '}')
	api.WriteJSON(ctx, fasthttp.StatusAccepted, b)
}

package pull

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/moderation"
)

// HandleWatch serves GET /v1/streams/{stream}/watch: the seed's
// watch_stream. It registers the stream so the syncer fills its ring before
// the viewer's first poll, and tells the viewer who it is, where to poll
// and send, its token, the cursor to start from, the pacing bounds and the
// emoji set.
func (p *Node) HandleWatch(ctx *fasthttp.RequestCtx, id []byte) {
	now := p.opts.Clock.Now()
	user, tok, aerr := p.identify(ctx, id, now)
	if aerr != nil {
		api.WriteError(ctx, aerr)
		return
	}
	st := p.streams.get(id, p.initial, now.Unix())
	if st == nil {
		p.metrics.pollsRefused.Inc()
		api.WriteRetry(ctx, api.ErrOverloaded, 1)
		return
	}
	st.lastSeen.Store(now.Unix())
	since := st.ring.Tail()
	if !st.synced() {
		p.wakeSyncer()
		var ok bool
		if since, ok = p.horizonEstimate(); !ok {
			api.WriteRetry(ctx, api.ErrUnavailable, 1)
			return
		}
	}
	ctl := st.advice.Load()
	host := ctx.Host()
	b := make([]byte, 0, 512+len(p.opts.Emojis.JSON()))
	b = append(b, `{"stream":`...)
	b = api.AppendJSONString(b, string(id))
	b = append(b, `,"user":`...)
	b = api.AppendJSONString(b, user)
	b = append(b, `,"pull":`...)
	b = api.AppendJSONString(b, p.streamURL(p.opts.PullURL, host, id))
	b = append(b, `,"push":`...)
	b = api.AppendJSONString(b, p.streamURL(p.opts.PushURL, host, id))
	b = append(b, `,"token":`...)
	b = api.AppendJSONString(b, tok)
	b = append(b, `,"since":`...)
	b = strconv.AppendInt(b, since, 10)
	b = appendAudience(b, ctl)
	// The longest next_ms this node ever advises: a client that polls less
	// often than told (data saver) stays within it.
	b = append(b, `,"max_next_ms":`...)
	b = strconv.AppendInt(b, p.opts.MaxNextMS, 10)
	b = append(b, `,"emojis":`...)
	b = p.appendEmojis(b, id)
	b = append(b, '}')
	api.WriteJSON(ctx, fasthttp.StatusOK, b)
}

// identify tells a watching viewer who it is, and the token it sends with:
//   - with the application's JWT in Authorization, the JWT's user, and no
//     new token (the viewer keeps sending with its JWT);
//   - else, in the anonymous mode (Signer), an id the server makes up and
//     a token for it: ?user= names nobody, so nobody can watch as another;
//   - else, with JWTs required, no user and no token: the viewer may
//     watch and poll, not send;
//   - in the open mode, the ?user= it claims, and no token.
func (p *Node) identify(ctx *fasthttp.RequestCtx, id []byte, now time.Time) (user, tok string, aerr *api.Error) {
	if p.opts.JWT != nil {
		if auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization); len(auth) > 0 {
			const scheme = "Bearer "
			if len(auth) < len(scheme) || !bytes.EqualFold(auth[:len(scheme)], []byte(scheme)) {
				return "", "", api.ErrUnauthorized
			}
			jwt := auth[len(scheme):]
			u, err := p.opts.JWT.Verify(nil, bytes.TrimSpace(jwt), id, now)
			if err != nil {
				return "", "", api.ErrUnauthorized
			}
			return string(u), "", nil
		}
	}
	switch {
	case p.opts.Signer != nil:
		var b [8]byte
		_, _ = rand.Read(b[:])
		user = "anon-" + hex.EncodeToString(b[:])
		return user, p.opts.Signer.Issue(user, string(id), now), nil
	case p.opts.JWT != nil:
		return "", "", nil
	}
	u := ctx.QueryArgs().Peek("user")
	if !api.ValidID(u) {
		return "", "", api.ErrInvalidUser
	}
	return string(u), "", nil
}

// streamURL returns base + /v1/streams/{id}/reactions, with base defaulting
// to http:// and the Host the viewer used, when that Host is a plain
// host[:port] (anything else could be a forged header).
func (p *Node) streamURL(base string, host, id []byte) string {
	if base == "" {
		if validHost(host) {
			base = "http://" + string(host)
		}
	}
	return base + "/v1/streams/" + string(id) + "/reactions"
}

func validHost(h []byte) bool {
	if len(h) == 0 || len(h) > 255 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// appendEmojis appends the whole emoji set as a JSON array, the list the
// compact body's counts index, and when an operator restricted the
// stream's emojis, the ids it takes as "allowed". The set is listed whole
// even then so that no client can decode an index against a shorter list.
func (p *Node) appendEmojis(b, id []byte) []byte {
	b = p.opts.Emojis.AppendJSON(b)
	var m *moderation.Stream
	if p.opts.Moderation != nil {
		m = p.opts.Moderation.Stream(id)
	}
	if m == nil || m.AllowsAll(p.opts.Emojis.Len()) {
		return b
	}
	b = append(b, `,"allowed":[`...)
	first := true
	for i := range p.opts.Emojis.Len() {
		if !m.AllowsEmoji(i) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = api.AppendJSONString(b, p.opts.Emojis.At(i).ID)
	}
	return append(b, ']')
}

package server

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/clientip"
)

var (
	bodyOK      = []byte(`{"status":"ok"}`)
	bodyReady   = []byte(`{"status":"ready"}`)
	cacheEmojis = []byte("public, max-age=300")
	// headerContentLength is how a Content-Length line starts, name and
	// colon, in any case.
	headerContentLength = []byte("content-length:")
)

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	// fasthttp stamps each request just before calling the handler; reading
	// the clock again would cost a poll a tenth of its handler time.
	start := ctx.Time()
	if start.IsZero() {
		start = time.Now()
	}
	if s.opts.Load != nil {
		s.opts.Load.Request()
	}
	route, stream := api.ParsePath(ctx.Path())
	if smuggled(&ctx.Request.Header) {
		// A proxy in front that went by the Content-Length would see
		// another request in this body: answer nothing of it, and close.
		api.WriteError(ctx, api.ErrBadRequest)
		ctx.SetConnectionClose()
	} else {
		s.dispatch(ctx, route, stream)
	}
	if isAPI(route) {
		s.cors.apply(ctx)
	}
	s.metrics.observe(metricRoute(route, ctx), ctx.Response.StatusCode(), time.Since(start), len(ctx.Response.Body()))
}

func (s *Server) dispatch(ctx *fasthttp.RequestCtx, route api.Route, stream []byte) {
	if s.draining.Load() && route != api.RouteHealthz && route != api.RouteReadyz && route != api.RouteMetrics {
		api.WriteRetry(ctx, api.ErrUnavailable, 1)
		ctx.SetConnectionClose()
		return
	}
	if ctx.IsOptions() && isAPI(route) {
		if methods := s.methods(route); methods == "" {
			api.WriteError(ctx, api.ErrNotFound)
		} else if !route.HasStream() || s.validStream(ctx, stream) {
			s.cors.options(ctx, methods)
		}
		return
	}
	get := ctx.IsGet() || ctx.IsHead()
	switch route {
	case api.RouteReactions:
		s.reactions(ctx, stream, get)
	case api.RouteComments:
		if s.opts.Push == nil {
			api.WriteError(ctx, api.ErrNotFound)
		} else if s.allow(ctx, ctx.IsPost(), "POST") && s.validStream(ctx, stream) {
			var buf [clientip.MaxKeyLen]byte
			if client := clientip.AppendKey(buf[:0], s.clientIP(ctx)); s.allowSend(ctx, client) {
				s.opts.Push.HandleComments(ctx, stream, client)
			}
		}
	case api.RouteWatch:
		if s.opts.Pull == nil {
			api.WriteError(ctx, api.ErrNotFound)
		} else if s.allow(ctx, get, "GET, HEAD") && s.validStream(ctx, stream) && s.allowWatch(ctx) {
			s.opts.Pull.HandleWatch(ctx, stream)
		}
	case api.RouteHistory:
		// A history read costs the store a script, so it takes from the
		// client's watch allowance; the edge caches sealed minutes.
		if s.opts.Pull == nil {
			api.WriteError(ctx, api.ErrNotFound)
		} else if s.allow(ctx, get, "GET, HEAD") && s.validStream(ctx, stream) && s.allowWatch(ctx) {
			s.opts.Pull.HandleHistory(ctx, stream)
		}
	case api.RouteEmojis:
		if s.allow(ctx, get, "GET, HEAD") {
			api.WriteJSON(ctx, fasthttp.StatusOK, s.opts.Emojis.JSON())
			ctx.Response.Header.SetCanonical(api.HeaderCacheControl, cacheEmojis)
		}
	case api.RouteHealthz:
		if s.allow(ctx, get, "GET, HEAD") {
			api.WriteJSON(ctx, fasthttp.StatusOK, bodyOK)
		}
	case api.RouteReadyz:
		if s.allow(ctx, get, "GET, HEAD") {
			s.readyz(ctx)
		}
	case api.RouteMetrics:
		if s.allow(ctx, get, "GET, HEAD") {
			s.metricsHandler(ctx)
		}
	case api.RouteAdmin:
		if s.opts.Admin == nil {
			api.WriteError(ctx, api.ErrNotFound)
		} else {
			s.admin(ctx)
		}
	case api.RouteIndex:
		if s.opts.Index == nil {
			api.WriteError(ctx, api.ErrNotFound)
		} else if s.allow(ctx, get, "GET, HEAD") {
			s.opts.Index(ctx)
		}
	default:
		api.WriteError(ctx, api.ErrNotFound)
	}
}

// smuggled reports whether a request came with both Transfer-Encoding and
// Content-Length (RFC 9112 6.3: a request smuggling attempt, or a broken
// proxy). fasthttp goes by Transfer-Encoding and drops Content-Length, so
// the raw headers are searched; only chunked requests pay for it.
func smuggled(h *fasthttp.RequestHeader) bool {
	if h.ContentLength() != -1 {
		return false
	}
	for line := range bytes.SplitSeq(h.RawHeaders(), []byte("\r\n")) {
		if len(line) > len(headerContentLength) && bytes.EqualFold(line[:len(headerContentLength)], headerContentLength) {
			return true
		}
	}
	return false
}

// reactions routes /v1/streams/{stream}/reactions: GET polls on a pull node,
// POST sends on a push node.
func (s *Server) reactions(ctx *fasthttp.RequestCtx, stream []byte, get bool) {
	switch {
	case get && s.opts.Pull != nil:
		if !s.validStream(ctx, stream) {
			return
		}
		// Each address has an allowance of polls per stream; a poll for a
		// stream the node does not serve yet opens it, like a watch, so it
		// also counts as one.
		var buf [clientip.MaxKeyLen]byte
		client := clientip.AppendKey(buf[:0], s.clientIP(ctx))
		if s.allowPoll(ctx, client, stream) && (s.opts.Pull.Serves(stream) || s.allowWatch(ctx)) {
			s.opts.Pull.HandlePoll(ctx, stream, client)
		}
	case ctx.IsPost() && s.opts.Push != nil:
		if !s.validStream(ctx, stream) {
			return
		}
		var buf [clientip.MaxKeyLen]byte
		if client := clientip.AppendKey(buf[:0], s.clientIP(ctx)); s.allowSend(ctx, client) {
			s.opts.Push.HandleReactions(ctx, stream, client)
		}
	default:
		if methods := s.methods(api.RouteReactions); methods != "" {
			api.WriteMethodNotAllowed(ctx, methods)
		} else {
			api.WriteError(ctx, api.ErrNotFound)
		}
	}
}

// isAPI reports whether a route is part of the API that browsers on other
// origins may call.
func isAPI(route api.Route) bool { return route.HasStream() || route == api.RouteEmojis }

// methods returns the methods an API route answers on this server, as an
// Allow header value; empty when the route is not served here.
func (s *Server) methods(route api.Route) string {
	switch route {
	case api.RouteReactions:
		switch {
		case s.opts.Pull != nil && s.opts.Push != nil:
			return "GET, HEAD, POST"
		case s.opts.Pull != nil:
			return "GET, HEAD"
		case s.opts.Push != nil:
			return "POST"
		}
	case api.RouteComments:
		if s.opts.Push != nil {
			return "POST"
		}
	case api.RouteWatch, api.RouteHistory:
		if s.opts.Pull != nil {
			return "GET, HEAD"
		}
	case api.RouteEmojis:
		return "GET, HEAD"
	}
	return ""
}

// allow answers 405 with allow unless ok.
func (s *Server) allow(ctx *fasthttp.RequestCtx, ok bool, allow string) bool {
	if !ok {
		api.WriteMethodNotAllowed(ctx, allow)
	}
	return ok
}

func (s *Server) validStream(ctx *fasthttp.RequestCtx, stream []byte) bool {
	if !api.ValidID(stream) {
		api.WriteError(ctx, api.ErrInvalidStream)
		return false
	}
	return true
}

// readyz is 200 when every role of the process can do its job.
func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	reason := ""
	switch {
	case s.notReady.Load():
		reason = "shutting down"
	case s.opts.Push != nil:
		if ok, why := s.opts.Push.Ready(); !ok {
			reason = why
		}
	}
	if reason == "" && s.opts.Pull != nil {
		if ok, why := s.opts.Pull.Ready(); !ok {
			reason = why
		}
	}
	if reason != "" {
		e := api.NewError(fasthttp.StatusServiceUnavailable, "unavailable", reason)
		api.WriteRetry(ctx, e, 1)
		return
	}
	if s.opts.Push != nil {
		if why := s.opts.Push.Degraded(); why != "" {
			// Still ready (docs/api.md: the backlog has room), but say why it
			// may not stay so.
			b := append([]byte(`{"status":"degraded","reason":`), api.AppendJSONString(nil, why)...)
			api.WriteJSON(ctx, fasthttp.StatusOK, append(b, '}'))
			return
		}
	}
	api.WriteJSON(ctx, fasthttp.StatusOK, bodyReady)
}

package server

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
)

// cors answers browsers' cross-origin checks on the API routes.
//
// Off by default: the web viewer is served by the same origin as the API
// and apps are not browsers, so CORS headers would only add bytes to every
// poll. With "*" every API answer says Access-Control-Allow-Origin: *. The
// API carries no credentials in the CORS sense: tokens travel in
// Authorization, set by the client's own code, and no cookie is ever set;
// so "*" is safe, and it is the same for every caller, which keeps one CDN
// copy per poll body. A list of origins instead echoes an allowed caller's
// Origin and adds Vary: Origin to every API answer, which makes a CDN keep
// a copy per Origin value (and one for requests without). Retry-After is
// exposed to scripts on error answers, the only ones that carry it.
type cors struct {
	enabled   bool
	anyOrigin bool
	origins   [][]byte
}

var (
	headerAllowOrigin     = []byte("Access-Control-Allow-Origin")
	headerExposeHeaders   = []byte("Access-Control-Expose-Headers")
	headerAllowMethods    = []byte("Access-Control-Allow-Methods")
	headerAllowHeaders    = []byte("Access-Control-Allow-Headers")
	headerMaxAge          = []byte("Access-Control-Max-Age")
	headerRequestMethod   = []byte("Access-Control-Request-Method")
	anyOrigin             = []byte("*")
	allowedHeaders        = []byte("Authorization, Content-Type, If-None-Match")
	preflightMaxAge       = []byte("86400")
	varyAcceptEncodingAnd = []byte("Accept-Encoding, Origin")
)

func newCORS(origins []string) cors {
	c := cors{enabled: len(origins) > 0}
	for _, o := range origins {
		if o == "*" {
			c.anyOrigin = true
		}
		c.origins = append(c.origins, []byte(strings.ToLower(o)))
	}
	return c
}

// ParseCORSOrigins parses a comma-separated list of origins
// ("https://example.com, http://localhost:3000"), or "*" for any; an empty
// list turns CORS off.
func ParseCORSOrigins(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []string
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if item != "*" {
			u, err := url.Parse(item)
			if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
				u.Opaque != "" || u.Path != "" || strings.HasSuffix(item, "?") || strings.HasSuffix(item, "#") {
				return nil, fmt.Errorf("cannot parse origin %q: want scheme://host[:port] with nothing after it, or *", item)
			}
		}
		out = append(out, strings.ToLower(item))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no origins in %q: want * or a list of scheme://host[:port]", list)
	}
	return out, nil
}

// allowed reports whether origin is on the list.
func (c *cors) allowed(origin []byte) bool {
	for _, o := range c.origins {
		if bytes.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// apply adds the CORS headers to an API answer. It does not allocate, so
// it leaves the poll path's cache hits allocation-free.
func (c *cors) apply(ctx *fasthttp.RequestCtx) {
	if !c.enabled {
		return
	}
	h := &ctx.Response.Header
	expose := h.StatusCode() >= 400
	if c.anyOrigin {
		h.SetCanonical(headerAllowOrigin, anyOrigin)
		if expose {
			h.SetCanonical(headerExposeHeaders, api.HeaderRetryAfter)
		}
		return
	}
	if bytes.Equal(h.PeekBytes(api.HeaderVary), api.HeaderAcceptEncoding) {
		h.SetCanonical(api.HeaderVary, varyAcceptEncodingAnd)
	} else {
		h.SetCanonical(api.HeaderVary, api.HeaderOrigin)
	}
	if origin := ctx.Request.Header.PeekBytes(api.HeaderOrigin); len(origin) > 0 && c.allowed(origin) {
		h.SetCanonical(headerAllowOrigin, origin)
		if expose {
			h.SetCanonical(headerExposeHeaders, api.HeaderRetryAfter)
		}
	}
}

// options answers OPTIONS on an API route: 204 with Allow and, for a
// browser's preflight, what a cross-origin request may use. Whether the
// origin is allowed is apply's answer, as for every API route.
func (c *cors) options(ctx *fasthttp.RequestCtx, methods string) {
	h := &ctx.Response.Header
	h.SetStatusCode(fasthttp.StatusNoContent)
	h.SetCanonical(api.HeaderAllow, []byte(methods))
	if !c.enabled || len(ctx.Request.Header.PeekBytes(headerRequestMethod)) == 0 {
		return
	}
	h.SetCanonical(headerAllowMethods, []byte(methods))
	h.SetCanonical(headerAllowHeaders, allowedHeaders)
	h.SetCanonical(headerMaxAge, preflightMaxAge)
}

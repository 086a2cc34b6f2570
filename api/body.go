package api

import (
	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/compress"
)

var (
	headerETag            = []byte("ETag")
	headerContentEncoding = []byte("Content-Encoding")
	encodingGzip          = []byte("gzip")
)

// WriteBody serves an encoded body: gzip when the request accepts it and
// the body has a gzip form, with its strong ETag (if it has one), Vary:
// Accept-Encoding (if it has a gzip form) and the given Cache-Control, or
// 304 with no body when If-None-Match already names it. It reports whether
// it answered 304, and does not allocate.
func WriteBody(ctx *fasthttp.RequestCtx, body *compress.Body, contentType, cacheControl []byte) (notModified bool) {
	gz, ifNoneMatch := Negotiate(ctx)
	gz = gz && body.Gzip != nil
	etag, data := body.PlainETag, body.Plain
	if gz {
		etag, data = body.GzipETag, body.Gzip
	}
	if WriteBodyHeaders(ctx, gz, body.Gzip != nil, ifNoneMatch, etag, contentType, cacheControl) {
		return true
	}
	ctx.Response.SetBodyRaw(data)
	return false
}

// Negotiate reports whether a request accepts gzip, and returns its
// If-None-Match. It does not allocate.
func Negotiate(ctx *fasthttp.RequestCtx) (gz bool, ifNoneMatch []byte) {
	acceptEncoding, ifNoneMatch := conditionalHeaders(&ctx.Request.Header)
	return AcceptsGzip(acceptEncoding), ifNoneMatch
}

// WriteBodyHeaders writes the headers of a body WriteBody serves, for a
// handler that writes the body itself (or none, for HEAD): Vary only when
// the body has a gzip form (otherwise every client gets the same bytes),
// ETag only when there is one, Content-Type only when contentType is not
// nil (the server sends no default one). It answers 304 and reports true when
// ifNoneMatch names etag; the body must then be left out. It does not
// allocate.
func WriteBodyHeaders(ctx *fasthttp.RequestCtx, gz, vary bool, ifNoneMatch, etag, contentType, cacheControl []byte) (notModified bool) {
	h := &ctx.Response.Header
	h.SetCanonical(HeaderCacheControl, cacheControl)
	if vary {
		h.SetCanonical(HeaderVary, HeaderAcceptEncoding)
	}
	if len(etag) > 0 {
		h.SetCanonical(headerETag, etag)
		if len(ifNoneMatch) > 0 && ETagMatches(ifNoneMatch, etag) {
			h.SetStatusCode(fasthttp.StatusNotModified)
			return true
		}
	}
	if contentType != nil {
		h.SetContentTypeBytes(contentType)
	}
	if gz {
		h.SetCanonical(headerContentEncoding, encodingGzip)
	}
	return false
}

// conditionalHeaders returns the first Accept-Encoding and If-None-Match of a
// request in one walk over its headers. fasthttp's Peek copies and
// normalizes the name it is given on every call, which costs a poll several
// times what the walk does; the names of a request fasthttp parsed are in
// canonical form already, so plain comparison finds them.
func conditionalHeaders(h *fasthttp.RequestHeader) (acceptEncoding, ifNoneMatch []byte) {
	for k, v := range h.All() {
		switch string(k) {
		case fasthttp.HeaderAcceptEncoding:
			if acceptEncoding == nil {
				acceptEncoding = v
			}
		case fasthttp.HeaderIfNoneMatch:
			if ifNoneMatch == nil {
				ifNoneMatch = v
			}
		}
	}
	return acceptEncoding, ifNoneMatch
}

package api

import (
	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/compress"
)

var (
	headerVary            = []byte("Vary")
	headerETag            = []byte("ETag")
	headerContentEncoding = []byte("Content-Encoding")
	varyAcceptEncoding    = []byte("Accept-Encoding")
	encodingGzip          = []byte("gzip")
)

// WriteBody serves an encoded body: gzip when the request accepts it, with
// its strong ETag, Vary: Accept-Encoding and the given Cache-Control, or
// 304 with no body when If-None-Match already names it. It reports whether
// it answered 304, and does not allocate.
func WriteBody(ctx *fasthttp.RequestCtx, body *compress.Body, contentType, cacheControl []byte) (notModified bool) {
	gz := AcceptsGzip(ctx.Request.Header.Peek(fasthttp.HeaderAcceptEncoding))
	etag, data := body.PlainETag, body.Plain
	if gz {
		etag, data = body.GzipETag, body.Gzip
	}
	h := &ctx.Response.Header
	h.SetCanonical(headerCache, cacheControl)
	h.SetCanonical(headerVary, varyAcceptEncoding)
	h.SetCanonical(headerETag, etag)
	if inm := ctx.Request.Header.Peek(fasthttp.HeaderIfNoneMatch); len(inm) > 0 && ETagMatches(inm, etag) {
		h.SetStatusCode(fasthttp.StatusNotModified)
		return true
	}
	h.SetContentTypeBytes(contentType)
	if gz {
		h.SetCanonical(headerContentEncoding, encodingGzip)
	}
	ctx.Response.SetBodyRaw(data)
	return false
}

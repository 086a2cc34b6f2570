package api

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// Error is an API error: an HTTP status, a snake_case code and a sentence for
// humans. Its JSON body is encoded once, when it is declared.
type Error struct {
	Status  int
	Code    string
	Message string
	body    []byte
}

// NewError declares an API error.
func NewError(status int, code, message string) *Error {
	e := &Error{Status: status, Code: code, Message: message}
	b := append([]byte(`{"error":{"code":`), AppendJSONString(nil, code)...)
	b = append(b, `,"message":`...)
	b = AppendJSONString(b, message)
	e.body = append(b, "}}"...)
	return e
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Body returns the error's JSON body. Callers must not modify it.
func (e *Error) Body() []byte { return e.body }

// The errors of docs/api.md.
var (
	ErrInvalidStream    = NewError(fasthttp.StatusBadRequest, "invalid_stream", "stream id must be 1 to 64 characters of A-Z a-z 0-9 _ - ., not only dots")
	ErrInvalidUser      = NewError(fasthttp.StatusBadRequest, "invalid_user", "user id must be 1 to 64 characters of A-Z a-z 0-9 _ - ., not only dots")
	ErrInvalidEmoji     = NewError(fasthttp.StatusBadRequest, "invalid_emoji", "emoji must be one of the ids listed by GET /v1/emojis")
	ErrInvalidSince     = NewError(fasthttp.StatusBadRequest, "invalid_since", "since must be a Unix second, at most 300 s in the future")
	ErrInvalidRange     = NewError(fasthttp.StatusBadRequest, "invalid_range", "from and to must be Unix seconds with 0 <= from <= to < from + 3600")
	ErrInvalidVersion   = NewError(fasthttp.StatusBadRequest, "invalid_version", "v must be absent (API v1 body) or 2 (compact body)")
	ErrInvalidCount     = NewError(fasthttp.StatusBadRequest, "invalid_count", "count must be an integer from 1 to 20")
	ErrInvalidSendID    = NewError(fasthttp.StatusBadRequest, "invalid_id", "id, when given, must be 1 to 64 characters of A-Z a-z 0-9 _ - ., not only dots")
	ErrInvalidSample    = NewError(fasthttp.StatusBadRequest, "invalid_sample", "sample, when given, must be a sample rate the server advertised: 1, 0.5, 0.05, ...")
	ErrInvalidBody      = NewError(fasthttp.StatusBadRequest, "invalid_body", "body must be one JSON object in which every key appears at most once")
	ErrUnauthorized     = NewError(fasthttp.StatusUnauthorized, "unauthorized", "a valid token for this stream is required: send Authorization: Bearer <token from watch>")
	ErrNotFound         = NewError(fasthttp.StatusNotFound, "not_found", "no such endpoint; see docs/api.md")
	ErrMethodNotAllowed = NewError(fasthttp.StatusMethodNotAllowed, "method_not_allowed", "this endpoint does not support that method; see the Allow header")
	ErrBodyTooLarge     = NewError(fasthttp.StatusRequestEntityTooLarge, "body_too_large", "request body must be at most 1024 bytes")
	ErrUnsupportedMedia = NewError(fasthttp.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	ErrRateLimited      = NewError(fasthttp.StatusTooManyRequests, "rate_limited", "too many requests; retry after the number of seconds in Retry-After")
	ErrOverloaded       = NewError(fasthttp.StatusServiceUnavailable, "overloaded", "the server is over its load budget; retry after the number of seconds in Retry-After")
	ErrUnavailable      = NewError(fasthttp.StatusServiceUnavailable, "unavailable", "the server is shutting down or not ready; retry after the number of seconds in Retry-After")
	ErrHeadersTooLarge  = NewError(fasthttp.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "request headers are too large")
	ErrBadRequest       = NewError(fasthttp.StatusBadRequest, "bad_request", "the request is not valid HTTP/1.1")
	ErrRequestTimeout   = NewError(fasthttp.StatusRequestTimeout, "request_timeout", "the request was not received in time")
)

// The errors of a moderated stream (the admin API's settings and bans).
var (
	ErrUnknownEmoji = NewError(fasthttp.StatusBadRequest, "unknown_emoji", "this stream takes only the emojis its watch answer lists")
	ErrCommentsOff  = NewError(fasthttp.StatusForbidden, "comments_off", "comments are turned off on this stream")
	ErrBanned       = NewError(fasthttp.StatusForbidden, "banned", "this user is banned from this stream")
	ErrStreamClosed = NewError(fasthttp.StatusGone, "stream_closed", "this stream is closed: it takes no more reactions or comments")
)

var (
	contentTypeJSON = []byte("application/json")
	cacheNoStore    = []byte("no-store")
)

// WriteError writes e as the response.
func WriteError(ctx *fasthttp.RequestCtx, e *Error) {
	ctx.Response.Header.SetStatusCode(e.Status)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	ctx.Response.Header.SetCanonical(HeaderCacheControl, cacheNoStore)
	ctx.Response.SetBodyRaw(e.body)
}

// WriteRetry writes e with a Retry-After header of the given whole seconds
// (at least 1), for 429 and 503 answers.
func WriteRetry(ctx *fasthttp.RequestCtx, e *Error, seconds int64) {
	WriteError(ctx, e)
	if seconds < 1 {
		seconds = 1
	}
	var buf [20]byte
	ctx.Response.Header.SetCanonical(HeaderRetryAfter, strconv.AppendInt(buf[:0], seconds, 10))
}

// WriteRetryIn is WriteRetry for a wait, rounded up to whole seconds.
func WriteRetryIn(ctx *fasthttp.RequestCtx, e *Error, wait time.Duration) {
	WriteRetry(ctx, e, int64((wait+time.Second-1)/time.Second))
}

// WriteMethodNotAllowed writes 405 with the Allow header listing allow.
func WriteMethodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	WriteError(ctx, ErrMethodNotAllowed)
	ctx.Response.Header.SetCanonical(HeaderAllow, []byte(allow))
}

// WriteJSON writes a 2xx JSON answer that must not be cached. body is
// copied, so it may live on the caller's stack.
func WriteJSON(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.Response.Header.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	ctx.Response.Header.SetCanonical(HeaderCacheControl, cacheNoStore)
	ctx.Response.SetBody(body)
}

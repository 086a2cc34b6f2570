package push

import (
	"bytes"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/comment"
	"github.com/emojicast/emojicast/push/danmaku"
)

// Masker masks blocked words in a cleaned comment: see danmaku.Masker.
type Masker = danmaku.Masker

// The 400 answers for a comment's text, one per reason it is refused.
var (
	errTextMissing = api.NewError(fasthttp.StatusBadRequest, "invalid_text", "text is required: a string of 1 to 100 characters")
	errTextReasons = map[error]*api.Error{
		comment.ErrEmpty:    api.NewError(fasthttp.StatusBadRequest, "invalid_text", "text is empty after trimming white space"),
		comment.ErrTooLong:  api.NewError(fasthttp.StatusBadRequest, "invalid_text", "text is longer than 100 characters"),
		comment.ErrInvalid:  api.NewError(fasthttp.StatusBadRequest, "invalid_text", "text is not valid UTF-8"),
		comment.ErrControl:  api.NewError(fasthttp.StatusBadRequest, "invalid_text", "text must be one line without control characters"),
		comment.ErrBidi:     api.NewError(fasthttp.StatusBadRequest, "invalid_text", "text must not hold bidirectional override, embedding, isolate or mark characters"),
		comment.ErrNonChars: api.NewError(fasthttp.StatusBadRequest, "invalid_text", "text must not hold noncharacters or private-use characters"),
	}
	bodyAccepted = []byte(`{"status":"accepted"}`)
	bodyShed     = []byte(`{"status":"shed"}`)
)

// HandleComments serves POST /v1/streams/{stream}/comments. stream is a
// valid stream id. The answer waits on the store only for a stream in slow
// mode, to take the user's turn fleet-wide (danmaku/slowmode.go): 202 accepted when
// the comment will be broadcast in the current second, 202 shed when the
// stream's budget for comments leaves it out. client is the key of the
// client's address group (clientip.AppendKey), nil when unknown.
func (p *Node) HandleComments(ctx *fasthttp.RequestCtx, stream, client []byte) {
	body, ok := p.readBody(ctx)
	if !ok {
		return
	}
	parser := parsers.Get()
	defer parsers.Put(parser)
	text, bodyUser, aerr := parseComment(parser, body)
	if aerr != nil {
		p.metrics.commentsBy(resultInvalid).Inc()
		api.WriteError(ctx, aerr)
		return
	}
	now := p.opts.Clock.Now()
	var userBuf [64]byte
	user, selfService, aerr := p.authenticate(ctx, userBuf[:0], stream, bodyUser, now)
	if aerr != nil {
		api.WriteError(ctx, aerr)
		return
	}
	var groupBuf [clientip.MaxIDLen]byte
	var group []byte
	if client != nil {
		group = clientip.AppendID(groupBuf[:0], client)
	}
	m := p.moderated(stream)
	if m != nil {
		if aerr := p.metrics.checkComment(m, user, group, now); aerr != nil {
			api.WriteError(ctx, aerr)
			return
		}
	}
	// Ids are free to make when they are self-service: the address group
	// is what binds a person, so its limit and its slow-mode turn apply
	// too (clientip.AppendID: the keys never meet a user's).
	if !selfService {
		group = nil
	}
	if wait := p.comments.Limit(user, group, now); wait > 0 {
		p.metrics.commentsBy(resultRateLimited).Inc()
		api.WriteRetryIn(ctx, api.ErrRateLimited, wait)
		return
	}
	if m != nil && m.SlowMode > 0 {
		turn := user
		if group != nil {
			turn = group
		}
		if wait := p.comments.SlowModeWait(stream, turn, m.SlowMode, now); wait > 0 {
			p.metrics.refusedSlowMode.Inc()
			api.WriteRetryIn(ctx, api.ErrRateLimited, wait)
			return
		}
	}
	keep, sec, ok := p.comments.Admit(stream, now.Unix(), commentBudgetOf(m))
	switch {
	case !ok:
		p.metrics.overloaded.Inc()
		api.WriteRetry(ctx, api.ErrOverloaded, 1)
	case !keep:
		p.metrics.commentsBy(resultShed).Inc()
		api.WriteJSON(ctx, fasthttp.StatusAccepted, bodyShed)
	default:
		masked, ok := p.comments.Mask(text)
		if !ok {
			p.metrics.commentsBy(resultShed).Inc()
			api.WriteJSON(ctx, fasthttp.StatusAccepted, bodyShed)
			return
		}
		p.comments.Accept(stream, sec, user, masked)
		p.metrics.commentsBy(resultAccepted).Inc()
		api.WriteJSON(ctx, fasthttp.StatusAccepted, bodyAccepted)
	}
}

// parseComment parses a comment body and cleans its text. Unknown keys are
// ignored and a key given twice is an error, as for reactions.
func parseComment(p *fastjson.Parser, body []byte) (text string, user []byte, aerr *api.Error) {
	v, err := p.ParseBytes(body)
	if err != nil {
		return "", nil, api.ErrInvalidBody
	}
	obj, err := v.Object()
	if err != nil {
		return "", nil, api.ErrInvalidBody
	}
	var raw []byte
	var seenText, seenUser bool
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if aerr != nil {
			return
		}
		switch {
		case bytes.Equal(key, []byte("text")):
			if aerr = once(&seenText); aerr == nil {
				if raw, err = v.StringBytes(); err != nil {
					aerr = errTextMissing
				}
			}
		case bytes.Equal(key, []byte("user")):
			if aerr = once(&seenUser); aerr == nil {
				user, aerr = parseUser(v)
			}
		}
	})
	if aerr != nil {
		return "", nil, aerr
	}
	if !seenText {
		return "", nil, errTextMissing
	}
	text, err = comment.Clean(string(raw))
	if err != nil {
		if e, ok := errTextReasons[err]; ok {
			return "", nil, e
		}
		panic("BUG: comment.Clean returned an unlisted error: " + err.Error())
	}
	return text, user, nil
}

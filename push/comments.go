package push

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/comment"
	"github.com/emojicast/emojicast/store"
)

// Masker masks blocked words in a cleaned comment. *comment.Filter is one.
// The filter fails closed: when it errs, panics or is slow, the comment
// goes out masked whole, and when too many calls are under way it is
// shed; it never goes out as sent. Each failure is counted.
type Masker interface {
	Mask(text string) (string, error)
}

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
// mode, to take the user's turn fleet-wide (slowmode.go): 202 accepted when
// the comment will be broadcast in the current second, 202 shed when the
// stream's budget for comments leaves it out. client is the key of the
// client's address group (clientip.AppendKey), nil when unknown.
func (p *Push) HandleComments(ctx *fasthttp.RequestCtx, stream, client []byte) {
	body, ok := p.readBody(ctx)
	if !ok {
		return
	}
	parser := parsers.Get()
	defer parsers.Put(parser)
	text, bodyUser, aerr := parseComment(parser, body)
	if aerr != nil {
		commentsBy(resultInvalid).Inc()
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
		if aerr := checkComment(m, user, group, now); aerr != nil {
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
	wait := p.commenters.Allow(user, 1, now.UnixNano())
	if wait <= 0 && group != nil {
		wait = p.groupCommenters.Allow(group, 1, now.UnixNano())
	}
	if wait > 0 {
		commentsBy(resultRateLimited).Inc()
		api.WriteRetryIn(ctx, api.ErrRateLimited, wait)
		return
	}
	if m != nil && m.SlowMode > 0 {
		turn := user
		if group != nil {
			turn = group
		}
		if wait := p.slowModeWait(stream, turn, m.SlowMode, now); wait > 0 {
			refusedSlowMode.Inc()
			api.WriteRetryIn(ctx, api.ErrRateLimited, wait)
			return
		}
	}
	keep, sec, ok := p.budget.admit(stream, now.Unix(), commentBudgetOf(m))
	switch {
	case !ok:
		overloaded.Inc()
		api.WriteRetry(ctx, api.ErrOverloaded, 1)
	case !keep:
		commentsBy(resultShed).Inc()
		api.WriteJSON(ctx, fasthttp.StatusAccepted, bodyShed)
	default:
		masked, ok := p.mask(text)
		if !ok {
			commentsBy(resultShed).Inc()
			api.WriteJSON(ctx, fasthttp.StatusAccepted, bodyShed)
			return
		}
		p.pending.add(store.CommentAt{
			Stream: string(stream), Second: sec,
			Comment: store.Comment{User: string(user), Text: masked, ID: p.commentID()},
		})
		commentsBy(resultAccepted).Inc()
		api.WriteJSON(ctx, fasthttp.StatusAccepted, bodyAccepted)
	}
}

// slowModeWait returns how long user must still wait before commenting on
// stream, or 0 when the comment may go and the user's turn is taken. This
// node's record refuses repeats on this node without asking the store;
// the store decides for the fleet (see slowmode.go), and a refusal there
// is remembered here until that turn is free.
func (p *Push) slowModeWait(stream, user []byte, period time.Duration, now time.Time) time.Duration {
	if wait := p.slowMode.Allow(stream, user, period, now.UnixNano()); wait > 0 || p.slowSharer == nil {
		return wait
	}
	wait, ok := p.takeSlowTurn(stream, user, period)
	if ok && wait > 0 {
		p.slowMode.Remember(stream, user, now.Add(wait-period).UnixNano())
	}
	return wait
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

// maxMasking bounds the masking calls under way at once: calls that
// outlive their timeout finish in the background, and past this many the
// node stops starting new ones rather than piling them up.
const maxMasking = 64

// mask returns text with blocked words masked, and false when the comment
// must be shed instead. It fails closed: when the filter errs, panics or
// takes longer than FilterTimeout, the text comes back masked whole; when
// maxMasking calls are under way, the comment is shed. The timeout is a
// safety net: masking a comment costs microseconds (comment's benchmarks).
func (p *Push) mask(text string) (string, bool) {
	if p.opts.Filter == nil {
		return text, true
	}
	select {
	case p.masking <- struct{}{}:
	default:
		filterFailures.WithLabelValues("busy", outcomeShed).Inc()
		p.logFilterFailure(errors.New("too many masking calls under way"))
		return "", false
	}
	done := make(chan maskResult, 1)
	go func() {
		defer func() { <-p.masking }()
		done <- p.maskSafely(text)
	}()
	t := time.NewTimer(p.opts.FilterTimeout)
	defer t.Stop()
	select {
	case r := <-done:
		if r.failure != "" {
			filterFailures.WithLabelValues(r.failure, outcomeMasked).Inc()
			p.logFilterFailure(r.err)
			return maskWhole(text), true
		}
		return r.text, true
	case <-t.C:
		filterFailures.WithLabelValues("timeout", outcomeMasked).Inc()
		p.logFilterFailure(fmt.Errorf("masking took longer than %v", p.opts.FilterTimeout))
		return maskWhole(text), true
	}
}

// What became of a comment the filter failed on: the label values of
// emojicast_push_comment_filter_failures_total's outcome.
const (
	outcomeMasked = "masked" // sent masked whole
	outcomeShed   = "shed"   // not sent
)

// maskWhole returns one * per character of text: what a comment the filter
// could not check shows.
func maskWhole(text string) string {
	return strings.Repeat("*", utf8.RuneCountInString(text))
}

type maskResult struct {
	text    string
	failure string // "", "error" or "panic"
	err     error
}

func (p *Push) maskSafely(text string) (r maskResult) {
	defer func() {
		if v := recover(); v != nil {
			r = maskResult{failure: "panic", err: fmt.Errorf("the filter panicked: %v", v)}
		}
	}()
	masked, err := p.opts.Filter.Mask(text)
	if err != nil {
		return maskResult{failure: "error", err: err}
	}
	if _, err := comment.Clean(masked); err != nil {
		return maskResult{failure: "error", err: errors.New("the filter returned a text that is not a clean comment")}
	}
	return maskResult{text: masked}
}

// logFilterFailure logs at most one filter failure a minute; the metric
// counts every one.
func (p *Push) logFilterFailure(err error) {
	p.filterLog.Warn(p.opts.Logger, "comment filter failed; comments go out masked whole or are shed meanwhile", "err", err)
}

// pendingComments are the comments accepted since the last flush. They are
// bounded by the budget: at most Budget per stream and second.
type pendingComments struct {
	mu   sync.Mutex
	list []store.CommentAt
}

func (pc *pendingComments) add(c store.CommentAt) {
	pc.mu.Lock()
	pc.list = append(pc.list, c)
	pc.mu.Unlock()
}

func (pc *pendingComments) drain() []store.CommentAt {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	out := pc.list
	pc.list = nil
	return out
}

package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path"
	"sync"
	"sync/atomic"
)

// Emoji is one reaction of the stream's emoji set.
type Emoji struct {
	ID    string `json:"id"`
	Glyph string `json:"glyph"`
}

// Stream is a stream a client watches: what watch answered, and the state
// the client keeps while it polls and sends. Send may be called while Run
// runs.
type Stream struct {
	// ID and User are the stream and the viewer.
	ID, User string
	// Since is the cursor watch gave: Run starts polling from it.
	Since int64
	// NextMS is the poll interval watch advised, in milliseconds.
	NextMS int64
	// MaxNextMS is the longest poll interval the server advises, in
	// milliseconds: data saver stays within it. 0 when the server does
	// not say (the client then keeps within its own 30 s bound).
	MaxNextMS int64
	// Viewers is the viewer estimate at watch time.
	Viewers int64
	// Emojis is the deployment's whole emoji set, in display order: the
	// list the compact body's counts index.
	Emojis []Emoji
	// Allowed lists the ids of the emojis the stream takes when an
	// operator restricted them (offer only those); nil when it takes all.
	Allowed []string

	c        *Client
	pull     *url.URL
	push     *url.URL
	comments *url.URL

	mu    sync.Mutex // guards token
	token string

	sample atomic.Uint64 // float64 bits: the last sample the server advised
}

// watchAnswer is the JSON of a watch answer.
type watchAnswer struct {
	Stream  string   `json:"stream"`
	User    string   `json:"user"`
	Pull    string   `json:"pull"`
	Push    string   `json:"push"`
	Token   string   `json:"token"`
	Since   int64    `json:"since"`
	NextMS  int64    `json:"next_ms"`
	MaxNext int64    `json:"max_next_ms"`
	Sample  float64  `json:"sample"`
	Viewers int64    `json:"viewers"`
	Emojis  []Emoji  `json:"emojis"`
	Allowed []string `json:"allowed"`
}

// Watch opens a stream as a viewer (the seed's watch_stream): it learns
// where to poll and send, the cursor to start from and the emoji set.
// Failures that may pass (network errors, 429, 5xx) are retried with the
// backoff until ctx is done; others, such as an invalid stream id, are
// returned at once as *Error.
func (c *Client) Watch(ctx context.Context, stream string) (*Stream, error) {
	if !validID(stream) {
		return nil, fmt.Errorf("cannot watch stream %q: want 1 to 64 characters of A-Z a-z 0-9 _ - ., not only dots", stream)
	}
	var w watchAnswer
	err := c.retry(ctx, "watch", 0, temporary, func() error {
		var err error
		w, err = c.watch(ctx, stream)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot watch stream %q: %w", stream, err)
	}
	s := &Stream{ID: stream, User: c.opts.User, Since: w.Since, NextMS: w.NextMS, MaxNextMS: w.MaxNext, Viewers: w.Viewers, Emojis: w.Emojis, Allowed: w.Allowed, c: c, token: c.tokenOf(w)}
	if w.User != "" {
		s.User = w.User // the server's word: who the token or JWT names
	}
	if s.pull, err = c.resolve(w.Pull); err != nil {
		return nil, err
	}
	if s.push, err = c.resolve(w.Push); err != nil {
		return nil, err
	}
	s.comments = commentsURL(s.push)
	s.setSample(w.Sample)
	return s, nil
}

// tokenOf is the token to send with: the one watch issued, else the
// application's own.
func (c *Client) tokenOf(w watchAnswer) string {
	if w.Token != "" {
		return w.Token
	}
	return c.opts.Token
}

// watch makes one watch request.
func (c *Client) watch(ctx context.Context, stream string) (watchAnswer, error) {
	u := c.base.JoinPath("/v1/streams", stream, "watch")
	u.RawQuery = url.Values{"user": {c.opts.User}}.Encode()
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		return watchAnswer{}, err
	}
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	a, err := c.do(ctx, req)
	if err != nil {
		return watchAnswer{}, err
	}
	var w watchAnswer
	if err := json.Unmarshal(a.body, &w); err != nil {
		return watchAnswer{}, fmt.Errorf("cannot decode watch answer: %w", err)
	}
	if w.Pull == "" || w.Push == "" {
		return watchAnswer{}, errors.New("cannot use watch answer: it lacks the pull or push URL")
	}
	return w, nil
}

// Sample returns the probability with which the server last asked this
// client to forward each tap (1 when every tap should be sent).
func (s *Stream) Sample() float64 { return math.Float64frombits(s.sample.Load()) }

// setSample records a sample the server advised, ignoring nonsense.
func (s *Stream) setSample(p float64) {
	if p > 0 && p <= 1 {
		s.sample.Store(math.Float64bits(p))
	}
}

// Glyph returns the glyph of an emoji id, or the id itself if the set lacks it.
func (s *Stream) Glyph(id string) string {
	for _, e := range s.Emojis {
		if e.ID == id {
			return e.Glyph
		}
	}
	return id
}

// Send sends count taps (1 to 20) of an emoji as one request (the seed's
// send_emoji). The caller has already applied sampling at the stream's
// current Sample, and the request says so, so the server weights the taps
// by the rate really applied even if it changed meanwhile; Tap does both.
// Each send carries an id of its own (docs/api.md's idempotency key), the
// same on every try of it, so a send whose answer was lost (a timeout, a
// cut connection, a 5xx) is retried, up to Options.SendAttempts times
// and waiting at least Retry-After, without ever being counted twice:
// the push node that counted it answers the retry without counting it
// again. An expired token is renewed with a new watch, once.
func (s *Stream) Send(ctx context.Context, emoji string, count int) error {
	return s.sendSampled(ctx, emoji, count, s.Sample())
}

// sendSampled is Send for taps forwarded with probability sample.
func (s *Stream) sendSampled(ctx context.Context, emoji string, count int, sample float64) error {
	if count < 1 || count > MaxCount {
		return fmt.Errorf("cannot send %d taps: count must be 1 to %d", count, MaxCount)
	}
	body, err := json.Marshal(struct {
		Emoji  string  `json:"emoji"`
		Count  int     `json:"count"`
		User   string  `json:"user"`
		Sample float64 `json:"sample"`
		ID     string  `json:"id"`
	}{emoji, count, s.User, sample, sendID()})
	if err != nil {
		return err
	}
	renewed := false
	return s.c.retry(ctx, "send", s.c.opts.SendAttempts, temporary, func() error {
		a, err := s.post(ctx, s.push, body, &renewed)
		if err != nil {
			return fmt.Errorf("cannot send %s to stream %q: %w", emoji, s.ID, err)
		}
		var accepted struct {
			Sample float64 `json:"sample"`
		}
		if json.Unmarshal(a.body, &accepted) == nil {
			s.setSample(accepted.Sample)
		}
		return nil
	})
}

// sendID makes up a send's idempotency id: 64 random bits, so that one
// user's ids never meet within the 2 minutes a push node remembers them.
func sendID() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// post sends a JSON body with the viewer's token. An expired token is
// renewed with a new watch, once per *renewed, and the body sent again.
func (s *Stream) post(ctx context.Context, u *url.URL, body []byte, renewed *bool) (answer, error) {
	a, err := s.postOnce(ctx, u, body)
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized && !*renewed {
		*renewed = true
		if err = s.renewToken(ctx); err == nil {
			a, err = s.postOnce(ctx, u, body)
		}
	}
	return a, err
}

func (s *Stream) postOnce(ctx context.Context, u *url.URL, body []byte) (answer, error) {
	req, err := http.NewRequest(http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	s.mu.Lock()
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	s.mu.Unlock()
	return s.c.do(ctx, req)
}

// commentsURL is where comments go: beside the push URL watch gave, whose
// last segment is reactions (docs/api.md's POST /v1/streams/{stream}/comments).
func commentsURL(push *url.URL) *url.URL {
	u := *push
	u.Path = path.Join(path.Dir(u.Path), "comments")
	u.RawPath = ""
	return &u
}

// Comment sends a danmaku comment (1 to 100 characters) and reports
// whether the server kept it for broadcast (true) or shed it because the
// stream already had its budget of comments for the second (false): a
// shed comment is for its sender's eyes only. It is retried like Send,
// only when the server certainly did not take it.
func (s *Stream) Comment(ctx context.Context, text string) (kept bool, err error) {
	body, err := json.Marshal(struct {
		Text string `json:"text"`
		User string `json:"user"`
	}{text, s.User})
	if err != nil {
		return false, err
	}
	renewed := false
	err = s.c.retry(ctx, "comment", s.c.opts.SendAttempts, notCounted, func() error {
		a, err := s.post(ctx, s.comments, body, &renewed)
		if err != nil {
			return fmt.Errorf("cannot comment on stream %q: %w", s.ID, err)
		}
		var status struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(a.body, &status); err != nil || status.Status != "accepted" && status.Status != "shed" {
			return fmt.Errorf("cannot comment on stream %q: unexpected answer %q", s.ID, a.body)
		}
		kept = status.Status == "accepted"
		return nil
	})
	return kept, err
}

// renewToken watches the stream again for a fresh token.
func (s *Stream) renewToken(ctx context.Context) error {
	w, err := s.c.watch(ctx, s.ID)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.token = s.c.tokenOf(w)
	s.mu.Unlock()
	s.setSample(w.Sample)
	return nil
}

// Tap sends n taps of an emoji the way a viewer's taps are sent: each is
// forwarded with the probability the server advises (Sample), and the
// forwarded ones go in batches of up to 20 per request. It returns how many
// taps were forwarded and accepted.
func (s *Stream) Tap(ctx context.Context, emoji string, n int) (int, error) {
	sent := 0
	for n > 0 {
		batch, sample := 0, s.Sample()
		for ; batch < MaxCount && n > 0; n-- {
			if s.c.opts.Rand() < sample {
				batch++
			}
		}
		if batch == 0 {
			continue
		}
		if err := s.sendSampled(ctx, emoji, batch, sample); err != nil {
			return sent, err
		}
		sent += batch
	}
	return sent, nil
}

package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Bucket is one second of a stream: the reactions accepted during [T, T+1).
type Bucket struct {
	// T is the second, in Unix seconds of the server's clock.
	T int64 `json:"t"`
	// Counts maps emoji id to the estimated reactions in the second.
	Counts map[string]int64 `json:"c"`
	// Burst lists the emojis whose count reached the burst threshold: show
	// one confetti effect for them instead of that many single emojis.
	Burst []string `json:"burst,omitempty"`
	// Comments are the danmaku comments of the second, oldest first.
	Comments []Comment `json:"m,omitempty"`
	// Retracted are the ids of earlier comments an operator deleted: a
	// client showing one takes it down.
	Retracted []string `json:"r,omitempty"`
}

// Comment is one danmaku comment: who wrote it, its text (already
// cleaned and masked by the server) and its id, which a later bucket's
// Retracted may name.
type Comment struct {
	User string `json:"u"`
	Text string `json:"x"`
	ID   string `json:"id,omitempty"`
}

// Update is what one poll brought: the stream's state and the seconds the
// client had not delivered yet.
type Update struct {
	// Now is the newest second the server has complete.
	Now int64
	// NextMS is the server's advised wait before the next poll.
	NextMS int64
	// IntervalMS is the wait the client keeps before its next poll, in
	// milliseconds: NextMS, or longer with Options.DataSaver.
	IntervalMS int64
	// Sample is the probability with which taps should be forwarded.
	Sample float64
	// Viewers is the estimated number of viewers of the stream.
	Viewers int64
	// Gap is true when the client's cursor was older than the server's
	// window: seconds before the first bucket were lost.
	Gap bool
	// Buckets are the non-empty seconds not delivered before, oldest first.
	Buckets []Bucket
}

// pollAnswer is the JSON of a poll answer.
type pollAnswer struct {
	Now     int64    `json:"now"`
	NextMS  int64    `json:"next_ms"`
	Sample  float64  `json:"sample"`
	Viewers int64    `json:"viewers"`
	Gap     bool     `json:"gap"`
	Buckets []Bucket `json:"buckets"`
}

// Run polls the stream until ctx is done and calls fn with each poll's
// Update (the seed's display_emoji), so every second reaches fn once and
// only once, in order. It follows docs/api.md: it starts at the cursor watch
// gave, keeps cursor = max(cursor, now), ignores buckets at or before the
// cursor (it may be moved between pull nodes that are not equally far),
// waits next_ms with jitter between polls, and after a failure backs off
// (at least Retry-After) and asks again with the same cursor, so nothing
// inside the server's 60 s window is lost. It returns ctx's error when ctx
// is done, or an error that retrying cannot cure, such as a 404. fn runs on
// Run's goroutine; Run must not be called twice at once on one Stream.
func (s *Stream) Run(ctx context.Context, fn func(Update)) error {
	p := poller{s: s, cursor: s.Since, nextMS: s.NextMS}
	wait := pollWait(s.interval(p.nextMS), s.c.opts.PollJitter, s.c.opts.Rand())
	failures := 0
	for {
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		u, fresh, err := p.poll(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && !temporary(err):
			return fmt.Errorf("cannot poll stream %q: %w", s.ID, err)
		case err != nil:
			failures++
			wait = s.c.retryWait("poll", failures, err)
			continue
		}
		failures = 0
		if fresh {
			fn(u)
		}
		wait = pollWait(s.interval(p.nextMS), s.c.opts.PollJitter, s.c.opts.Rand())
	}
}

// interval returns the wait between polls the client keeps for a next_ms,
// in milliseconds, before jitter: next_ms, or with data saver at least the
// floor, but never past the server's max_next_ms. A next_ms longer than
// the floor (a quiet stream, an overloaded fleet) is obeyed as it is.
func (s *Stream) interval(nextMS int64) int64 {
	if !s.c.opts.DataSaver {
		return nextMS
	}
	floor := s.c.opts.DataSaverFloor.Milliseconds()
	if s.MaxNextMS > 0 {
		floor = min(floor, s.MaxNextMS)
	}
	return max(nextMS, floor)
}

// poller is the state of one Run.
type poller struct {
	s      *Stream
	cursor int64
	nextMS int64
	// etag is the ETag of the answer for lastURL: asking the same URL
	// again (the node has no newer second yet) costs a 304, not a body.
	etag, lastURL string
}

// poll asks for the seconds after the cursor. fresh is false when the
// server answered 304: nothing changed since the last answer.
func (p *poller) poll(ctx context.Context) (u Update, fresh bool, err error) {
	pu := *p.s.pull
	q := pu.Query()
	q.Set("since", strconv.FormatInt(p.cursor, 10))
	if p.s.c.opts.Body == BodyCompact {
		q.Set("v", "2")
	}
	pu.RawQuery = q.Encode()
	target := pu.String()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		return u, false, err
	}
	if p.etag != "" && target == p.lastURL {
		req.Header.Set("If-None-Match", p.etag)
	}
	a, err := p.s.c.do(ctx, req)
	if err != nil {
		return u, false, err
	}
	if a.status == http.StatusNotModified {
		return u, false, nil
	}
	ans, err := p.s.decodeAnswer(a.body)
	if err != nil {
		return u, false, fmt.Errorf("cannot decode poll answer: %w", err)
	}
	if ans.Now <= 0 {
		return u, false, errors.New("cannot use poll answer: it lacks now")
	}
	p.etag, p.lastURL = a.header.Get("ETag"), target
	if ans.NextMS > 0 {
		p.nextMS = ans.NextMS
	}
	p.s.setSample(ans.Sample)
	u = Update{Now: ans.Now, NextMS: p.nextMS, IntervalMS: p.s.interval(p.nextMS), Sample: p.s.Sample(), Viewers: ans.Viewers, Gap: ans.Gap}
	u.Buckets, p.cursor = newBuckets(ans.Buckets, p.cursor)
	p.cursor = max(p.cursor, ans.Now)
	return u, true, nil
}

// decodeAnswer decodes a poll answer in either format: API v1's object, or
// the compact array (docs/api.md): [now,next_ms,sample,viewers,[buckets]]
// and a 1 after them when seconds were lost, each bucket
// [t,burst,[counts by emoji index]] with [user,text,user,text..] and
// [id,id..] after it when it has comments or retractions, and then the ids
// of the comments it retracts.
func (s *Stream) decodeAnswer(b []byte) (pollAnswer, error) {
	var ans pollAnswer
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != '[' {
		err := json.Unmarshal(b, &ans)
		return ans, err
	}
	var top []json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return ans, err
	}
	if len(top) < 5 {
		return ans, fmt.Errorf("compact answer has %d fields; want at least 5", len(top))
	}
	var raw [][]json.RawMessage
	for i, dst := range []any{&ans.Now, &ans.NextMS, &ans.Sample, &ans.Viewers, &raw} {
		if err := json.Unmarshal(top[i], dst); err != nil {
			return ans, fmt.Errorf("compact answer field %d: %w", i, err)
		}
	}
	ans.Gap = len(top) > 5 && string(top[5]) == "1"
	ans.Buckets = make([]Bucket, 0, len(raw))
	for _, r := range raw {
		bk, err := s.compactBucket(r)
		if err != nil {
			return ans, err
		}
		ans.Buckets = append(ans.Buckets, bk)
	}
	return ans, nil
}

// compactBucket decodes one bucket of a compact answer. Counts at indices
// past the emoji set watch gave are dropped: this client cannot name them.
func (s *Stream) compactBucket(r []json.RawMessage) (Bucket, error) {
	var bk Bucket
	var burst uint64
	var counts []int64
	var comments, ids []string
	if len(r) < 3 {
		return bk, fmt.Errorf("compact bucket has %d fields; want at least 3", len(r))
	}
	fields := []any{&bk.T, &burst, &counts, &comments, &ids, &bk.Retracted}
	for i := range min(len(r), len(fields)) {
		if err := json.Unmarshal(r[i], fields[i]); err != nil {
			return bk, fmt.Errorf("compact bucket field %d: %w", i, err)
		}
	}
	bk.Counts = make(map[string]int64, len(counts))
	for i, n := range counts {
		if i >= len(s.Emojis) {
			break
		}
		if n > 0 {
			bk.Counts[s.Emojis[i].ID] = n
		}
		if i < 64 && burst&(1<<i) != 0 {
			bk.Burst = append(bk.Burst, s.Emojis[i].ID)
		}
	}
	for i := 0; i+1 < len(comments); i += 2 {
		c := Comment{User: comments[i], Text: comments[i+1]}
		if i/2 < len(ids) {
			c.ID = ids[i/2]
		}
		bk.Comments = append(bk.Comments, c)
	}
	return bk, nil
}

// newBuckets returns the buckets after cursor, oldest first, each second
// once, and the newest second among them (or cursor). It sorts rather than
// trusts the server's order: a second must never be skipped or repeated.
func newBuckets(buckets []Bucket, cursor int64) ([]Bucket, int64) {
	slices.SortStableFunc(buckets, func(a, b Bucket) int { return cmp.Compare(a.T, b.T) })
	out := buckets[:0]
	for _, b := range buckets {
		if b.T > cursor {
			out = append(out, b)
			cursor = b.T
		}
	}
	return out, cursor
}

// retryWait returns the wait after the failures-th failure in a row of op
// and reports it to OnRetry.
func (c *Client) retryWait(op string, failures int, err error) time.Duration {
	var retryAfter time.Duration
	var apiErr *Error
	if errors.As(err, &apiErr) {
		retryAfter = apiErr.RetryAfter
	}
	wait := c.opts.Backoff.Wait(failures, retryAfter, c.opts.Rand())
	if c.opts.OnRetry != nil {
		c.opts.OnRetry(op, failures, wait, err)
	}
	return wait
}

package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// MaxHistory is the most seconds one History request covers (API.md).
const MaxHistory = 3600

// History is the answer of GET /v1/streams/{stream}/history: the sealed
// seconds of [From, To] that had reactions or comments.
type History struct {
	// From is the first second asked for.
	From int64 `json:"from"`
	// To is the last second covered: the one asked for, or the newest
	// sealed second if that is earlier (then To may be below From).
	To int64 `json:"to"`
	// Buckets are the non-empty seconds, oldest first, shaped as a poll's.
	Buckets []Bucket `json:"buckets"`
}

// History fetches the seconds [from, to] of a stream, at most MaxHistory
// of them. Failures that may pass are retried with the backoff until ctx
// is done.
func (c *Client) History(ctx context.Context, stream string, from, to int64) (History, error) {
	if !validID(stream) {
		return History{}, fmt.Errorf("cannot read history of stream %q: want 1 to 64 characters of A-Z a-z 0-9 _ - ., not only dots", stream)
	}
	if from < 0 || to < from || to-from >= MaxHistory {
		return History{}, fmt.Errorf("cannot read history [%d, %d]: want 0 <= from <= to < from + %d", from, to, MaxHistory)
	}
	u := c.base.JoinPath("/v1/streams", stream, "history")
	u.RawQuery = url.Values{"from": {strconv.FormatInt(from, 10)}, "to": {strconv.FormatInt(to, 10)}}.Encode()
	var h History
	err := c.retry(ctx, "history", 0, temporary, func() error {
		req, err := http.NewRequest(http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		a, err := c.do(ctx, req)
		if err != nil {
			return err
		}
		h = History{}
		if err := json.Unmarshal(a.body, &h); err != nil {
			return fmt.Errorf("cannot decode history answer: %w", err)
		}
		return nil
	})
	if err != nil {
		return History{}, fmt.Errorf("cannot read history of stream %q: %w", stream, err)
	}
	h.Buckets, _ = newBuckets(h.Buckets, from-1)
	return h, nil
}

// Replay plays a stream from second from on, as it happened: fn gets one
// Update per second, Now being the second and Buckets its bucket if it had
// any, at speed times real time (1 when speed <= 0). It reads history an
// hour at a time, each hour aligned to whole hours so that other viewers
// and a CDN share the answers, and when it reaches the newest sealed
// second it waits for the next ones, trailing live by the distance it
// started at, and reads the rest of that hour from the current minute on. It returns ctx's error when ctx is done, or an error that
// retrying cannot cure. fn runs on Replay's goroutine.
func (c *Client) Replay(ctx context.Context, stream string, from int64, speed float64, fn func(Update)) error {
	if speed <= 0 {
		speed = 1
	}
	start := time.Now()
	due := func(sec int64) time.Duration {
		return time.Duration(float64(sec-from)*float64(time.Second)/speed) - time.Since(start)
	}
	pos := from
	fetched := int64(-1) // the hour read last
	for {
		hour := pos / MaxHistory * MaxHistory
		// An hour read again is one not sealed through its end when read:
		// only its whole minutes from pos on are asked for this time.
		first := hour
		if hour == fetched {
			first = pos / 60 * 60
		}
		fetched = hour
		h, err := c.History(ctx, stream, first, hour+MaxHistory-1)
		if err != nil {
			return err
		}
		buckets := h.Buckets
		for ; pos <= h.To; pos++ {
			if err := sleep(ctx, due(pos)); err != nil {
				return err
			}
			u := Update{Now: pos, Sample: 1}
			for len(buckets) > 0 && buckets[0].T < pos {
				buckets = buckets[1:]
			}
			if len(buckets) > 0 && buckets[0].T == pos {
				u.Buckets = buckets[:1:1]
				buckets = buckets[1:]
			}
			fn(u)
		}
		if h.To < hour+MaxHistory-1 {
			// Caught up with what is sealed: the next second seals within one.
			if err := sleep(ctx, max(due(pos), time.Second)); err != nil {
				return err
			}
		}
	}
}

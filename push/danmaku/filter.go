package danmaku

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emojicast/emojicast/comment"
)

// Masker masks blocked words in a cleaned comment. *comment.Filter is one.
// The filter fails closed: when it errs, panics or is slow, the comment
// goes out masked whole, and when too many calls are under way it is
// shed; it never goes out as sent. Each failure is counted.
type Masker interface {
	Mask(text string) (string, error)
}

// maxMasking bounds the masking calls under way at once: calls that
// outlive their timeout finish in the background, and past this many the
// node stops starting new ones rather than piling them up.
const maxMasking = 64

// Mask returns text with blocked words masked, and false when the comment
// must be shed instead. It fails closed: when the filter errs, panics or
// takes longer than FilterTimeout, the text comes back masked whole; when
// maxMasking calls are under way, the comment is shed. The timeout is a
// safety net: masking a comment costs microseconds (comment's benchmarks).
func (c *Comments) Mask(text string) (string, bool) {
	if c.opts.Filter == nil {
		return text, true
	}
	select {
	case c.masking <- struct{}{}:
	default:
		c.metrics.filterFailures.WithLabelValues("busy", outcomeShed).Inc()
		c.logFilterFailure(errors.New("too many masking calls under way"))
		return "", false
	}
	done := make(chan maskResult, 1)
	go func() {
		defer func() { <-c.masking }()
		done <- c.maskSafely(text)
	}()
	t := time.NewTimer(c.opts.FilterTimeout)
	defer t.Stop()
	select {
	case r := <-done:
		if r.failure != "" {
			c.metrics.filterFailures.WithLabelValues(r.failure, outcomeMasked).Inc()
			c.logFilterFailure(r.err)
			return maskWhole(text), true
		}
		return r.text, true
	case <-t.C:
		c.metrics.filterFailures.WithLabelValues("timeout", outcomeMasked).Inc()
		c.logFilterFailure(fmt.Errorf("masking took longer than %v", c.opts.FilterTimeout))
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

func (c *Comments) maskSafely(text string) (r maskResult) {
	defer func() {
		if v := recover(); v != nil {
			r = maskResult{failure: "panic", err: fmt.Errorf("the filter panicked: %v", v)}
		}
	}()
	masked, err := c.opts.Filter.Mask(text)
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
func (c *Comments) logFilterFailure(err error) {
	c.filterLog.Warn(c.opts.Logger, "comment filter failed; comments go out masked whole or are shed meanwhile", "err", err)
}

package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed redis_clock.lua
	clockSource string
	//go:embed redis_add.lua
	addSource string
	//go:embed redis_collect.lua
	collectSource string
	//go:embed redis_horizon.lua
	horizonSource string

	addScript     = redis.NewScript(clockSource + addSource)
	collectScript = redis.NewScript(collectSource)
	horizonScript = redis.NewScript(clockSource + horizonSource)
)

// scriptCall is one run of a script.
type scriptCall struct {
	keys []string
	args []any
}

// runAll runs the calls in one pipeline (a Cluster client splits it by
// node, and follows MOVED and ASK) and returns their replies in order. A
// Redis that lost its script cache (a restart, or a node a slot just moved
// to) answers NOSCRIPT; those calls did not run and are run again with
// EVAL, which caches the script for the next time. A node answers TRYAGAIN
// while a slot is migrating and a call's keys are split between the two
// nodes; go-redis retries a few times, and runAll retries those calls
// again, with backoff, for at most tryAgainFor, since migrating a slot of a
// few keys takes milliseconds.
func (r *Redis) runAll(ctx context.Context, s *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	todo := make([]int, len(calls))
	for i := range todo {
		todo[i] = i
	}
	backoff := 10 * time.Millisecond
	deadline := time.Now().Add(tryAgainFor)
	ran := false // some call may have run
	fail := func(err error) ([]*redis.Cmd, error) {
		if !ran {
			return nil, fmt.Errorf("%w (%w)", err, ErrNotApplied)
		}
		return nil, err
	}
	for {
		_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range todo {
				cmds[i] = s.EvalSha(ctx, p, calls[i].keys, calls[i].args...)
			}
			return nil
		})
		var again []int
		for _, i := range todo {
			err := cmds[i].Err()
			if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				cmds[i] = s.Eval(ctx, r.client, calls[i].keys, calls[i].args...)
				err = cmds[i].Err()
			}
			if !notRun(err) {
				ran = true
			}
			if err != nil && redis.IsTryAgainError(err) {
				again = append(again, i)
			}
		}
		for _, i := range todo {
			if err := cmds[i].Err(); err != nil && !redis.IsTryAgainError(err) {
				return fail(err)
			}
		}
		if len(again) == 0 {
			return cmds, nil
		}
		if time.Now().Add(backoff).After(deadline) {
			r.metrics.tryAgainGiveUps.Inc()
			return fail(cmds[again[0]].Err())
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
		todo = again
	}
}

// notRun reports whether a call's error says the script surely did not
// run: the connection was never made, or Redis refused the call before
// running it.
func notRun(err error) bool {
	if err == nil {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	for _, prefix := range []string{"TRYAGAIN", "CLUSTERDOWN", "LOADING", "READONLY", "NOSCRIPT", "MOVED", "ASK"} {
		if redis.HasErrorPrefix(err, prefix) {
			return true
		}
	}
	return false
}

// tryAgainFor bounds how long runAll retries calls answered TRYAGAIN.
const tryAgainFor = 2 * time.Second

// ErrMalformedReply means a script answered in a shape its caller cannot read.
var ErrMalformedReply = errors.New("store: malformed script reply")

// replyError says why a script's reply cannot be read: the command's own
// error, or else ErrMalformedReply with what came and, when go-redis could
// not convert it, why (parseErr).
func replyError(cmd *redis.Cmd, parseErr error) error {
	if err := cmd.Err(); err != nil {
		return err
	}
	if parseErr != nil {
		return fmt.Errorf("%w %v: %w", ErrMalformedReply, cmd.Val(), parseErr)
	}
	return fmt.Errorf("%w %v", ErrMalformedReply, cmd.Val())
}

// int64Reply reads a script's answer as n integers.
func int64Reply(cmd *redis.Cmd, n int) ([]int64, error) {
	res, err := cmd.Int64Slice()
	if err != nil || len(res) != n {
		return nil, replyError(cmd, err)
	}
	return res, nil
}

// A second's comment list holds comments as "=id:user:text" ("user:text"
// from nodes that assigned no ids) and retractions as "!id". Ids and user
// ids never hold ':', '=' or '!' (api.ValidID), so the marks and the first
// colons are unambiguous.
const (
	commentMark    = "="
	retractionMark = "!"
)

func commentEntry(c Comment) string {
	if c.ID == "" {
		return c.User + ":" + c.Text
	}
	return commentMark + c.ID + ":" + c.User + ":" + c.Text
}

func parseCommentEntry(raw string) (Comment, bool) {
	var c Comment
	if rest, ok := strings.CutPrefix(raw, commentMark); ok {
		if c.ID, raw, ok = strings.Cut(rest, ":"); !ok {
			return c, false
		}
	}
	var ok bool
	c.User, c.Text, ok = strings.Cut(raw, ":")
	return c, ok
}

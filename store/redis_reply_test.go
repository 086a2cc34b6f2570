package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// replyCmd is a script command as the pipeline leaves it: a value, or an error.
func replyCmd(val any, err error) *redis.Cmd {
	c := redis.NewCmd(context.Background())
	if err != nil {
		c.SetErr(err)
	} else {
		c.SetVal(val)
	}
	return c
}

// A script reply of the wrong shape is ErrMalformedReply and says what came;
// a failed command keeps its own error; a well-formed reply reads.
func TestScriptRepliesOfTheWrongShape(t *testing.T) {
	scriptErr := errors.New("ERR script failed")
	parsers := map[string]struct {
		parse     func(*redis.Cmd) error
		good      any
		malformed []any
	}{
		"add": {
			parse:     func(c *redis.Cmd) error { _, err := addReply(c); return err },
			good:      []any{int64(0), int64(1), int64(2), int64(3), int64(4), int64(5), int64(6), int64(7)},
			malformed: []any{[]any{int64(1), int64(2)}, []any{int64(0), int64(1), int64(2), int64(3)}, []any{}, "OK"},
		},
		"slow mode and limits": {
			parse:     func(c *redis.Cmd) error { _, err := int64Reply(c, 2); return err },
			good:      []any{int64(10), int64(0)},
			malformed: []any{[]any{int64(1)}, []any{int64(1), int64(2), int64(3)}, []any{}, "OK"},
		},
		"comment load": {
			parse:     func(c *redis.Cmd) error { _, _, err := commentLoadReply(c, 1); return err },
			good:      []any{[]any{"node-a"}, []any{[]any{"node-a", "3"}}},
			malformed: []any{[]any{[]any{"node-a"}}, []any{[]any{"node-a"}, []any{}}, []any{[]any{}, "x"}, "OK"},
		},
	}
	for name, p := range parsers {
		t.Run(name, func(t *testing.T) {
			if err := p.parse(replyCmd(p.good, nil)); err != nil {
				t.Fatalf("well-formed reply %v: %v", p.good, err)
			}
			for _, val := range p.malformed {
				err := p.parse(replyCmd(val, nil))
				if !errors.Is(err, ErrMalformedReply) {
					t.Errorf("reply %v: got error %v; want ErrMalformedReply", val, err)
				}
				if err != nil && strings.Contains(err.Error(), "%!") {
					t.Errorf("reply %v: error %q has a formatting verb in it", val, err)
				}
			}
			err := p.parse(replyCmd(nil, scriptErr))
			if !errors.Is(err, scriptErr) || errors.Is(err, ErrMalformedReply) {
				t.Errorf("failed command: got error %v; want the command's own error", err)
			}
		})
	}
}

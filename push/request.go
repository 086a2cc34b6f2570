package push

import (
	"bytes"
	"math"

	"github.com/valyala/fastjson"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/emoji"
)

// MaxCount is the most taps one send may batch (docs/api.md: count 1 to 20).
const MaxCount = 20

// reaction is a parsed send. user aliases the parser's memory: it is valid
// until the parser is reused.
type reaction struct {
	emoji   int
	count   int64
	user    []byte
	id      []byte // the client's idempotency key; nil when it gave none
	divisor int64  // 1/sample the client says it applied; 0 when it did not say
}

var parsers fastjson.ParserPool

// parseReaction parses and validates a send body. Unknown keys are ignored so
// that newer clients can add fields; a key given twice is an error, because
// two readers of the same body could otherwise disagree on what it says.
func parseReaction(p *fastjson.Parser, body []byte, emojis *emoji.Set) (reaction, *api.Error) {
	r := reaction{emoji: -1, count: 1}
	v, err := p.ParseBytes(body)
	if err != nil {
		return r, api.ErrInvalidBody
	}
	obj, err := v.Object()
	if err != nil {
		return r, api.ErrInvalidBody
	}
	var seenEmoji, seenCount, seenUser, seenSample, seenID bool
	var fail *api.Error
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if fail != nil {
			return
		}
		switch {
		case bytes.Equal(key, []byte("emoji")):
			fail = once(&seenEmoji)
			if fail == nil {
				r.emoji, fail = parseEmoji(v, emojis)
			}
		case bytes.Equal(key, []byte("count")):
			fail = once(&seenCount)
			if fail == nil {
				r.count, fail = parseCount(v)
			}
		case bytes.Equal(key, []byte("user")):
			fail = once(&seenUser)
			if fail == nil {
				r.user, fail = parseUser(v)
			}
		case bytes.Equal(key, []byte("sample")):
			fail = once(&seenSample)
			if fail == nil {
				r.divisor, fail = parseSample(v)
			}
		case bytes.Equal(key, []byte("id")):
			fail = once(&seenID)
			if fail == nil {
				if r.id, _ = v.StringBytes(); !api.ValidID(r.id) {
					fail = api.ErrInvalidSendID
				}
			}
		}
	})
	if fail != nil {
		return r, fail
	}
	if !seenEmoji {
		return r, api.ErrInvalidEmoji
	}
	return r, nil
}

func once(seen *bool) *api.Error {
	if *seen {
		return api.ErrInvalidBody
	}
	*seen = true
	return nil
}

func parseEmoji(v *fastjson.Value, emojis *emoji.Set) (int, *api.Error) {
	b, err := v.StringBytes()
	if err != nil {
		return -1, api.ErrInvalidEmoji
	}
	i, ok := emojis.Index(b)
	if !ok {
		return -1, api.ErrInvalidEmoji
	}
	return i, nil
}

func parseCount(v *fastjson.Value) (int64, *api.Error) {
	if v.Type() != fastjson.TypeNumber {
		return 0, api.ErrInvalidCount
	}
	n, err := v.Int64()
	if err != nil || n < 1 || n > MaxCount {
		return 0, api.ErrInvalidCount
	}
	return n, nil
}

func parseUser(v *fastjson.Value) ([]byte, *api.Error) {
	b, err := v.StringBytes()
	if err != nil || !api.ValidID(b) {
		return nil, api.ErrInvalidUser
	}
	return b, nil
}

// parseSample reads the optional sample a client applied to its taps, which
// must be 1/k for a whole k (the only rates the server advertises), and
// returns k.
func parseSample(v *fastjson.Value) (int64, *api.Error) {
	f, err := v.Float64()
	if err != nil || v.Type() != fastjson.TypeNumber || !(f > 0 && f <= 1) {
		return 0, api.ErrInvalidSample
	}
	inv := 1 / f
	k := math.Round(inv)
	if k > maxDivisor || math.Abs(inv-k) > k*1e-3 {
		return 0, api.ErrInvalidSample
	}
	return int64(k), nil
}

// maxDivisor bounds the divisor a client may claim: a sample of one in a
// billion is not one the server would advertise.
const maxDivisor = 1e9

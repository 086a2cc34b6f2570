package push

import (
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/emoji"
)

func TestParseReaction(t *testing.T) {
	emojis := emoji.Default()
	love, _ := emojis.IndexString("love")
	for _, tc := range []struct {
		body  string
		want  *api.Error
		emoji int
		count int64
		user  string
	}{
		{`{"emoji":"love","count":3,"user":"u1"}`, nil, love, 3, "u1"},
		{`{"emoji":"love"}`, nil, love, 1, ""},
		{` { "user" : "u.1-_" , "emoji" : "love" , "x": [1,{"y":null}] } `, nil, love, 1, "u.1-_"},
		{`{"emoji":"\u006cove","user":"u1"}`, nil, love, 1, "u1"},
		{`{"count":20,"emoji":"love"}`, nil, love, 20, ""},
		{``, api.ErrInvalidBody, 0, 0, ""},
		{`[]`, api.ErrInvalidBody, 0, 0, ""},
		{`"love"`, api.ErrInvalidBody, 0, 0, ""},
		{`{"emoji":"love"`, api.ErrInvalidBody, 0, 0, ""},
		{`{"emoji":"love"} {}`, api.ErrInvalidBody, 0, 0, ""},
		{`{"emoji":"love","emoji":"haha"}`, api.ErrInvalidBody, 0, 0, ""},
		{`{"emoji":"love","count":1,"count":2}`, api.ErrInvalidBody, 0, 0, ""},
		{`{"user":"a","user":"b","emoji":"love"}`, api.ErrInvalidBody, 0, 0, ""},
		{`{"count":1}`, api.ErrInvalidEmoji, 0, 0, ""},
		{`{"emoji":"poop"}`, api.ErrInvalidEmoji, 0, 0, ""},
		{`{"emoji":"LOVE"}`, api.ErrInvalidEmoji, 0, 0, ""},
		{`{"emoji":5}`, api.ErrInvalidEmoji, 0, 0, ""},
		{`{"emoji":null}`, api.ErrInvalidEmoji, 0, 0, ""},
		{`{"emoji":"love","count":0}`, api.ErrInvalidCount, 0, 0, ""},
		{`{"emoji":"love","count":21}`, api.ErrInvalidCount, 0, 0, ""},
		{`{"emoji":"love","count":-1}`, api.ErrInvalidCount, 0, 0, ""},
		{`{"emoji":"love","count":1.5}`, api.ErrInvalidCount, 0, 0, ""},
		{`{"emoji":"love","count":1e1}`, api.ErrInvalidCount, 0, 0, ""},
		{`{"emoji":"love","count":"3"}`, api.ErrInvalidCount, 0, 0, ""},
		{`{"emoji":"love","count":99999999999999999999999}`, api.ErrInvalidCount, 0, 0, ""},
		{`{"emoji":"love","user":""}`, api.ErrInvalidUser, 0, 0, ""},
		{`{"emoji":"love","user":"a b"}`, api.ErrInvalidUser, 0, 0, ""},
		{`{"emoji":"love","user":7}`, api.ErrInvalidUser, 0, 0, ""},
		{`{"emoji":"love","user":"` + strings.Repeat("u", 65) + `"}`, api.ErrInvalidUser, 0, 0, ""},
		{`{"emoji":"love","sample":0}`, api.ErrInvalidSample, 0, 0, ""},
		{`{"emoji":"love","sample":1.5}`, api.ErrInvalidSample, 0, 0, ""},
		{`{"emoji":"love","sample":-0.5}`, api.ErrInvalidSample, 0, 0, ""},
		{`{"emoji":"love","sample":0.3}`, api.ErrInvalidSample, 0, 0, ""},
		{`{"emoji":"love","sample":"0.5"}`, api.ErrInvalidSample, 0, 0, ""},
		{`{"emoji":"love","sample":1e-12}`, api.ErrInvalidSample, 0, 0, ""},
		{`{"emoji":"love","sample":0.5,"sample":1}`, api.ErrInvalidBody, 0, 0, ""},
	} {
		var p fastjson.Parser
		r, err := parseReaction(&p, []byte(tc.body), emojis)
		if err != tc.want {
			t.Errorf("parseReaction(%s) error = %v; want %v", tc.body, err, tc.want)
			continue
		}
		if err == nil && (r.emoji != tc.emoji || r.count != tc.count || string(r.user) != tc.user) {
			t.Errorf("parseReaction(%s) = %d, %d, %q; want %d, %d, %q", tc.body, r.emoji, r.count, r.user, tc.emoji, tc.count, tc.user)
		}
	}
}

func FuzzParseReaction(f *testing.F) {
	for _, s := range []string{
		`{"emoji":"love","count":3,"user":"u1"}`, `{"emoji":"love","emoji":"love"}`, `{"count":1e308}`,
		`{"a":[[[[[[]]]]]]}`, `{"emoji":"\ud800"}`, `{}`, `nul`, `{"emoji":"love","sample":0.05}`,
	} {
		f.Add([]byte(s))
	}
	emojis := emoji.Default()
	f.Fuzz(func(t *testing.T, body []byte) {
		var p fastjson.Parser
		r, err := parseReaction(&p, body, emojis)
		if err != nil {
			return
		}
		if r.emoji < 0 || r.emoji >= emojis.Len() || r.count < 1 || r.count > MaxCount || r.divisor < 0 || r.divisor > maxDivisor {
			t.Fatalf("accepted %q as emoji %d count %d", body, r.emoji, r.count)
		}
		if r.user != nil && !api.ValidID(r.user) {
			t.Fatalf("accepted %q with invalid user %q", body, r.user)
		}
	})
}

func TestParseReactionSample(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int64
	}{
		{`{"emoji":"love"}`, 0},
		{`{"emoji":"love","sample":1}`, 1},
		{`{"emoji":"love","sample":0.5}`, 2},
		{`{"emoji":"love","sample":0.05}`, 20},
		{`{"emoji":"love","sample":0.333333}`, 3},
		{`{"emoji":"love","sample":0.00333333}`, 300},
	} {
		var p fastjson.Parser
		r, err := parseReaction(&p, []byte(tc.body), emoji.Default())
		if err != nil || r.divisor != tc.want {
			t.Errorf("parseReaction(%s): divisor %d, %v; want %d", tc.body, r.divisor, err, tc.want)
		}
	}
}

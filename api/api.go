// Package api holds the parts of the HTTP contract (docs/api.md) that every
// emojicast server shares: identifier rules, routes, JSON error bodies and the
// few header rules that are easy to get subtly wrong. It knows nothing of
// push, pull or the store.
package api

import (
	"strconv"
	"unicode/utf8"
)

// MaxIDLen is the longest stream or user id.
const MaxIDLen = 64

// ValidID reports whether b is a valid id (stream, user, send, comment):
// 1 to 64 characters of A-Z a-z 0-9 _ - . and not only dots. Ids are path
// segments (/v1/streams/{id}/..., /v1/admin/streams/{id}/bans/{user}), and
// path normalisation turns "." and ".." into something else: an id the
// normaliser would change could be created but never named again. It does
// not allocate.
func ValidID(b []byte) bool {
	if len(b) == 0 || len(b) > MaxIDLen {
		return false
	}
	dots := 0
	for _, c := range b {
		if !idChar[c] {
			return false
		}
		if c == '.' {
			dots++
		}
	}
	return dots < len(b)
}

var idChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['_'], t['-'], t['.'] = true, true, true
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal. Quotes, backslashes
// and control characters are escaped, and so are U+2028 and U+2029, which are
// valid JSON but end lines in JavaScript. Invalid UTF-8 becomes U+FFFD, so the
// output is always valid JSON whatever s holds.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError && r != '\u2028' && r != '\u2029' {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			switch r {
			case '\u2028':
				dst = append(dst, `\u2028`...)
			case '\u2029':
				dst = append(dst, `\u2029`...)
			default:
				dst = append(dst, `\ufffd`...)
			}
			i += size
			start = i
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendSample appends the sample rate 1/divisor as a short JSON number:
// 1, 0.5, 0.05, 0.00333333. Clients recover the divisor as round(1/sample).
func AppendSample(dst []byte, divisor int64) []byte {
	if divisor <= 1 {
		return append(dst, '1')
	}
	return strconv.AppendFloat(dst, 1/float64(divisor), 'g', 6, 64)
}

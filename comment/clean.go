// Package comment is the text side of danmaku comments: it cleans what a
// viewer typed (Unicode NFC, trimmed, length in characters, no control or
// bidi-override characters) and masks the words on the operator's
// blocked-word list however they are disguised: upper case, full-width,
// circled, squared, mathematical, small-capital and regional-indicator
// forms, accents, look-alike letters of other scripts (UTS #39
// confusables, in a table generated from Unicode's data: fold_table.go),
// leetspeak, or spaces, punctuation and invisible characters inserted
// between letters. Cleaning and masking a comment costs microseconds and
// allocates nothing unless a word is masked.
//
// It knows nothing of HTTP or of the budget that decides which comments
// are broadcast; push calls it for every comment it takes.
package comment

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxLen is the longest comment, in characters (Unicode code points after
// NFC normalization and trimming), as docs/api.md allows.
const MaxLen = 100

// The reasons a text is refused. Each is a sentence a sender can act on.
var (
	ErrEmpty    = errors.New("comment: text is empty after trimming")
	ErrTooLong  = errors.New("comment: text is longer than 100 characters")
	ErrInvalid  = errors.New("comment: text is not valid UTF-8")
	ErrControl  = errors.New("comment: text holds a control character")
	ErrBidi     = errors.New("comment: text holds a bidirectional override or isolate character")
	ErrNonChars = errors.New("comment: text holds a noncharacter or private-use code point")
)

// Clean returns text normalized to NFC with leading and trailing white
// space removed, or why it cannot be broadcast: it is empty, longer than
// MaxLen characters, not UTF-8, or holds a control character (line breaks
// and tabs included: a comment is one line), a bidirectional override,
// embedding, isolate or mark (they let a text pose as another on screen),
// or a noncharacter or private-use code point. Clean never panics.
func Clean(text string) (string, error) {
	if !utf8.ValidString(text) {
		return "", ErrInvalid
	}
	// A text many times the limit is refused before normalizing, which
	// costs time in proportion to the input.
	if utf8.RuneCountInString(text) > 4*MaxLen {
		return "", ErrTooLong
	}
	text = strings.TrimFunc(norm.NFC.String(text), isTrimmed)
	n := 0
	for _, r := range text {
		if err := refused(r); err != nil {
			return "", err
		}
		n++
	}
	switch {
	case n == 0:
		return "", ErrEmpty
	case n > MaxLen:
		return "", ErrTooLong
	}
	return text, nil
}

// isTrimmed reports whether r is removed from the ends of a comment: white
// space, and the invisible characters that render as nothing (zero-width
// space, word joiner, byte-order mark).
func isTrimmed(r rune) bool {
	return unicode.IsSpace(r) || r == '\u200b' || r == '\u2060' || r == '\ufeff'
}

// refused returns why r may not appear in a comment, or nil.
func refused(r rune) error {
	switch {
	case unicode.Is(unicode.Cc, r):
		return ErrControl
	case unicode.Is(unicode.Bidi_Control, r):
		// ALM, LRM, RLM, the embeddings and overrides LRE..RLO and PDF,
		// and the isolates LRI..PDI.
		return ErrBidi
	case unicode.Is(unicode.Co, r), unicode.Is(unicode.Noncharacter_Code_Point, r):
		return ErrNonChars
	case r == '\u2028' || r == '\u2029':
		return ErrControl // line and paragraph separators: a comment is one line
	}
	return nil
}

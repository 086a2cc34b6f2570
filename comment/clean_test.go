package comment

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"what a goal!", "what a goal!", nil},
		{"  \t padded \u3000", "padded", nil},
		{"\u200bzero width\ufeff", "zero width", nil},
		{"e\u0301te\u0301", "été", nil}, // NFC composes
		{"一二三 🔥👨‍👩‍👧", "一二三 🔥👨‍👩‍👧", nil},
		{strings.Repeat("é", 100), strings.Repeat("é", 100), nil}, // characters, not bytes
		{strings.Repeat("e\u0301", 100), strings.Repeat("é", 100), nil},
		{strings.Repeat("a", 101), "", ErrTooLong},
		{"   " + strings.Repeat("a", 100) + "  ", strings.Repeat("a", 100), nil},
		{"", "", ErrEmpty},
		{" \u3000\t ", "", ErrEmpty},
		{"two\nlines", "", ErrControl},
		{"tab\tinside", "", ErrControl},
		{"bell\x07", "", ErrControl},
		{"del\x7f", "", ErrControl},
		{"c1\u0085next", "", ErrControl},
		{"line\u2028sep", "", ErrControl},
		{"evil\u202eexe.txt", "", ErrBidi},
		{"iso\u2067late\u2069", "", ErrBidi},
		{"mark\u200f", "", ErrBidi},
		{"private\ue000", "", ErrNonChars},
		{"non\ufffe", "", ErrNonChars},
		{"bad\xff", "", ErrInvalid},
	} {
		got, err := Clean(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Clean(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// FuzzClean: whatever comes in, Clean does not panic, and what it accepts
// is NFC, trimmed, 1 to MaxLen characters, free of refused characters, and
// cleaned again unchanged.
func FuzzClean(f *testing.F) {
	for _, s := range []string{"", "hi", " a ", "\u202e", "e\u0301", "\xff", "a\nb", "\u3000x\u3000", "🔥", strings.Repeat("x", 101)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := Clean(in)
		if err != nil {
			if out != "" {
				t.Fatalf("Clean(%q) refused with %v but returned %q", in, err, out)
			}
			return
		}
		n := utf8.RuneCountInString(out)
		if n < 1 || n > MaxLen {
			t.Fatalf("Clean(%q) = %q: %d characters", in, out, n)
		}
		if !norm.NFC.IsNormalString(out) {
			t.Fatalf("Clean(%q) = %q: not NFC", in, out)
		}
		if strings.TrimFunc(out, isTrimmed) != out {
			t.Fatalf("Clean(%q) = %q: not trimmed", in, out)
		}
		for _, r := range out {
			if unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Bidi_Control, r) {
				t.Fatalf("Clean(%q) = %q: holds %U", in, out, r)
			}
		}
		if again, err := Clean(out); again != out || err != nil {
			t.Fatalf("Clean(Clean(%q)) = %q, %v; want %q", in, again, err, out)
		}
	})
}

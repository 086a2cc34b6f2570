package comment

//go:generate go run ./internal/foldgen -o fold_table.go confusables.txt

import (
	"sync"
	"unicode"
	"unicode/utf8"
)

// foldRange is a line of the generated table (fold_table.go).
type foldRange struct {
	lo, hi rune
	fold   string
}

// What a character is in matching.
const (
	kindSep      uint8 = iota // not a letter or digit: a word boundary
	kindIgnore                // shows as nothing or as part of its letter: invisible characters, combining marks
	kindSelf                  // a letter or digit that stands for itself
	kindUnspaced              // the same, of a script written without spaces
	kindLower                 // a letter that stands for its lower-case form
	kindFold                  // stands for folder.folds[r]
)

// tableSize covers the Basic and Supplementary Multilingual Planes, where
// every script, symbol and emoji of comments is; kindOf answers above.
const tableSize = 0x20000

// folder is the generated table made fast to read: one byte per character
// for its kind, and the folds of the characters that have one.
type folder struct {
	kind  [tableSize]uint8
	folds map[rune]string
	ascii [utf8.RuneSelf]string // fold of ASCII letters and digits; "" for the rest
}

// theFolder is built on first use (a few milliseconds), not by every
// program that imports the package.
var theFolder = sync.OnceValue(func() *folder {
	f := &folder{folds: make(map[rune]string, 5000)}
	for _, fr := range foldRanges {
		for r := fr.lo; r <= fr.hi; r++ {
			if fr.hi == fr.lo {
				f.folds[r] = fr.fold
			} else {
				f.folds[r] = string(rune(fr.fold[0]) + r - fr.lo)
			}
		}
	}
	for r := range rune(tableSize) {
		f.kind[r] = f.kindOf(r)
	}
	for c := range rune(utf8.RuneSelf) {
		switch f.kind[c] {
		case kindFold:
			f.ascii[c] = f.folds[c]
		case kindSelf, kindLower:
			f.ascii[c] = string(unicode.ToLower(c))
		}
	}
	return f
})

func (f *folder) kindOf(r rune) uint8 {
	switch {
	case ignorable(r) || unicode.Is(unicode.M, r):
		return kindIgnore
	case f.folds[r] != "":
		return kindFold
	case !unicode.IsLetter(r) && !unicode.IsDigit(r):
		return kindSep
	case unspaced(r):
		return kindUnspaced
	case unicode.ToLower(r) != r:
		return kindLower
	}
	return kindSelf
}

// leetOf is what a digit or symbol stands for in leetspeak, read only in
// the second, leet skeleton: 1d10t, 5cum, $cum, l0s3r. Digits 0 and 1
// already fold to o and l (UTS #39), and i folds to l there too, so 1d10t
// and idiot meet at ldlot.
var leetOf = [utf8.RuneSelf]rune{
	'3': 'e', '4': 'a', '5': 's', '7': 't', '8': 'b', '9': 'g', 'i': 'l',
	'$': 's', '@': 'a', '!': 'l',
}

// isLeetSymbol reports whether c is a symbol the leet skeleton reads as a
// letter; around one, a word may also start or end (so $cum and bad! match).
func isLeetSymbol(c rune) bool { return c == '$' || c == '@' || c == '!' }

// ignorable reports whether c is a default-ignorable code point (Unicode
// DerivedCoreProperties: Other_Default_Ignorable_Code_Point, format
// characters and variation selectors, less the prepended concatenation
// marks): it shows as nothing, so a word split by one, such as a Hangul
// filler (U+3164, U+115F) or a zero-width joiner, is still the word.
func ignorable(c rune) bool {
	if c < 0xad {
		return false
	}
	if unicode.Is(unicode.Prepended_Concatenation_Mark, c) {
		return false
	}
	return unicode.In(c, unicode.Other_Default_Ignorable_Code_Point, unicode.Cf, unicode.Variation_Selector)
}

// unspaced reports whether r belongs to a script whose words are not
// separated by spaces.
func unspaced(r rune) bool {
	return r >= 0x0e00 && unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana,
		unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar)
}

// skeleton is a text reduced for matching: what its letters and digits
// stand for, each with the index of the character of the text it came
// from.
type skeleton struct {
	runes []skRune
	n     int  // characters in the text
	leet  bool // the text has digits or symbols the leet skeleton reads otherwise
}

type skRune struct {
	r      rune
	origin int32
	flags  uint8
}

const (
	sepBefore uint8 = 1 << iota // a separator came right before
	noSpaces                    // of a script written without spaces
	soft                        // a leet symbol or an emoji letter: a word may start or end next to it
)

var skeletons = sync.Pool{New: func() any { return new(skeleton) }}

// maxPooled bounds the skeletons kept for reuse: one of a text far longer
// than a comment is dropped.
const maxPooled = 16 * MaxLen

func releaseSkeleton(sk *skeleton) {
	if cap(sk.runes) <= maxPooled {
		skeletons.Put(sk)
	}
}

// build reduces text; with leet, digits and the symbols $ @ ! are read as
// the letters they stand for in leetspeak. It reads each character once,
// with one table look-up, and allocates only to grow sk.
func (sk *skeleton) build(text string, leet bool) {
	f := theFolder()
	sk.runes, sk.n, sk.leet = sk.runes[:0], 0, false
	sep := false
	emit := func(r rune, flags uint8) {
		if leet && r < utf8.RuneSelf && leetOf[r] != 0 {
			r = leetOf[r]
		}
		if sep {
			flags |= sepBefore
			sep = false
		}
		sk.runes = append(sk.runes, skRune{r: r, origin: int32(sk.n), flags: flags})
	}
	for _, c := range text {
		switch {
		case c < utf8.RuneSelf:
			if s := f.ascii[c]; s != "" {
				for i := range len(s) {
					emit(rune(s[i]), 0)
				}
				sk.leet = sk.leet || c >= '0' && c <= '9'
			} else if isLeetSymbol(c) {
				sk.leet = true
				if leet {
					emit(c, soft)
				} else {
					sep = true
				}
			} else {
				sep = true
			}
		default:
			k := kindSep
			if c < tableSize {
				k = f.kind[c]
			} else {
				k = f.kindOf(c)
			}
			switch k {
			case kindSep:
				sep = true
			case kindSelf:
				emit(c, 0)
			case kindUnspaced:
				emit(c, noSpaces)
			case kindLower:
				emit(unicode.ToLower(c), 0)
			case kindFold:
				flags := uint8(0)
				if c >= 0x1f100 && c <= 0x1f1ff {
					// Enclosed Alphanumeric Supplement: regional indicators
					// and negative squared letters are emoji too (flags,
					// 🅰️), so a word may start or end next to one.
					flags = soft
				}
				for _, r := range f.folds[c] {
					sk.leet = sk.leet || r >= '0' && r <= '9'
					emit(r, flags)
				}
			}
		}
		sk.n++
	}
}

// boundary reports whether a match may start or end between skeleton
// runes i-1 and i: at either end of the text, where the text had a
// character that is not a letter or digit, next to a leet symbol, or next
// to a script written without spaces.
func (sk *skeleton) boundary(i int) bool {
	if i == 0 || i == len(sk.runes) {
		return true
	}
	return sk.runes[i].flags&sepBefore != 0 || (sk.runes[i-1].flags|sk.runes[i].flags)&(noSpaces|soft) != 0
}

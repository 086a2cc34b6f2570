package comment

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/text/unicode/norm"
)

// MaxWords bounds a blocked-word list, so a wrong file cannot make every
// comment slow.
const MaxWords = 100_000

// Words is a list of blocked words and phrases. Matching compares
// skeletons: each character is decomposed for compatibility (NFKD, which
// turns full-width, circled or mathematical letters and ligatures into
// plain ones), default-ignorable characters (zero-width joiners, Hangul
// fillers) count as nothing, accents and every other character that is not
// a letter or digit are dropped, and the rest is lower-cased and mapped to
// its confusable skeleton (UTS #39). So "BAD", "ｂａｄ", "b.a.d", "b a d",
// "bäd", "bаd" with a Cyrillic а and "b\u3164ad" all match "bad". A match must start and end at word
// boundaries (the edges of the text or a dropped character), so "bad" does
// not mask "badge"; in scripts written without spaces (Han, kana, Thai and
// their neighbours) it may start and end anywhere. Words is immutable.
type Words struct {
	words   [][]rune
	byFirst map[rune][]int // index into words by first skeleton rune
}

// ParseWords reads a list: one word or phrase per line; blank lines and
// lines starting with # are ignored. A phrase matches with any separators
// between its letters, so "bad word" also masks "badword" and "bad-word".
func ParseWords(r io.Reader) (*Words, error) {
	w := &Words{byFirst: map[rune][]int{}}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		if !utf8.Valid(text) {
			return nil, fmt.Errorf("cannot read blocked words: line %d is not UTF-8", line)
		}
		sk := skeletonOf(string(text))
		if len(sk.runes) == 0 {
			return nil, fmt.Errorf("cannot read blocked words: line %d has no letters or digits", line)
		}
		if len(w.words) == MaxWords {
			return nil, fmt.Errorf("cannot read blocked words: more than %d", MaxWords)
		}
		w.byFirst[sk.runes[0]] = append(w.byFirst[sk.runes[0]], len(w.words))
		w.words = append(w.words, sk.runes)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read blocked words: %w", err)
	}
	return w, nil
}

// Len returns the number of words and phrases in the list.
func (w *Words) Len() int { return len(w.words) }

// Mask returns text with every blocked word replaced by one * per
// character, separators inside the match included. text should be
// cleaned first (Clean).
func (w *Words) Mask(text string) string {
	if len(w.words) == 0 {
		return text
	}
	sk := skeletonOf(text)
	var masked []bool // by rune of text; nil until a match
	for a, r := range sk.runes {
		for _, i := range w.byFirst[r] {
			word := sk.runes[a:]
			if len(word) < len(w.words[i]) || !equalRunes(word[:len(w.words[i])], w.words[i]) {
				continue
			}
			b := a + len(w.words[i])
			if !sk.boundary(a) || !sk.boundary(b) {
				continue
			}
			if masked == nil {
				masked = make([]bool, sk.n)
			}
			for k := sk.origin[a]; k <= sk.origin[b-1]; k++ {
				masked[k] = true
			}
		}
	}
	if masked == nil {
		return text
	}
	out := make([]rune, 0, sk.n)
	k := 0
	for _, r := range text {
		if masked[k] {
			r = '*'
		}
		out = append(out, r)
		k++
	}
	return string(out)
}

func equalRunes(a, b []rune) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// skeleton is a text reduced for matching: its letters and digits,
// decomposed, unaccented, lower-cased and mapped to their confusable
// skeletons, each with the index of the rune of the text it came from.
type skeleton struct {
	runes  []rune
	origin []int
	sep    []bool // a separator came right before runes[i]
	n      int    // runes in the text
}

func skeletonOf(text string) skeleton {
	var sk skeleton
	var buf [32]byte
	sep := false
	emit := func(fs []rune) {
		for _, f := range fs {
			sk.runes = append(sk.runes, f)
			sk.origin = append(sk.origin, sk.n)
			sk.sep = append(sk.sep, sep)
			sep = false
		}
	}
	for _, r := range text {
		var dec []byte
		if r < utf8.RuneSelf {
			dec = append(buf[:0], byte(r))
		} else {
			dec = norm.NFKD.AppendString(buf[:0], string(r))
			if !ignorable(r) && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
				// A look-alike of a Latin letter is that letter, before
				// NFKD could turn it into a letter of its own script
				// (lunate sigma into sigma); a letter NFKD leaves alone
				// needs folding once.
				f := fold(r)
				if len(f) > 0 && f[0] < utf8.RuneSelf || string(dec) == string(r) {
					emit(f)
					sk.n++
					continue
				}
			}
		}
		for _, c := range string(dec) {
			switch {
			case ignorable(c):
				// Invisible: neither a letter nor a separator.
			case unicode.IsLetter(c) || unicode.IsDigit(c):
				emit(fold(c))
			default:
				sep = true
			}
		}
		sk.n++
	}
	return sk
}

// fold returns what a letter or digit stands for in matching: its
// lower-case form's confusable skeleton (Unicode UTS #39), lower-cased,
// so that Cyrillic "а" and Latin "a", "0" and "o", "rn" and "m" are one.
// A capital that looks Latin while its lower-case form does not (Cyrillic
// "М" and "м") stands for the Latin letter instead.
func fold(c rune) []rune {
	lower := unicode.ToLower(c)
	if lower < utf8.RuneSelf {
		return asciiFolds[lower]
	}
	sk := confusables.Skeleton(string(lower))
	if lower != c && !isASCII(sk) {
		if latin := strings.ToLower(confusables.Skeleton(string(c))); isASCII(latin) {
			sk = confusables.Skeleton(latin)
		}
	}
	var out []rune
	for _, f := range sk {
		if unicode.IsLetter(f) || unicode.IsDigit(f) {
			out = append(out, unicode.ToLower(f))
		}
	}
	return out
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// asciiFolds holds fold for ASCII, which most comments are.
var asciiFolds = func() (t [utf8.RuneSelf][]rune) {
	for c := range rune(utf8.RuneSelf) {
		for _, f := range confusables.Skeleton(string(c)) {
			if unicode.IsLetter(f) || unicode.IsDigit(f) {
				t[c] = append(t[c], unicode.ToLower(f))
			}
		}
	}
	return t
}()

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

// boundary reports whether a match may start or end between skeleton
// runes i-1 and i: at either end of the text, where the text had a
// character that is not a letter or digit, or next to a script written
// without spaces.
func (sk *skeleton) boundary(i int) bool {
	if i == 0 || i == len(sk.runes) {
		return true
	}
	return sk.sep[i] || unspaced(sk.runes[i-1]) || unspaced(sk.runes[i])
}

// unspaced reports whether r belongs to a script whose words are not
// separated by spaces.
func unspaced(r rune) bool {
	return r >= 0x0e00 && unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana,
		unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar)
}

// Filter is a blocked-word list kept in a file and reloaded when the file
// changes, without a restart. It is safe for concurrent use; Mask reads the
// current list without locking.
type Filter struct {
	path  string
	words atomic.Pointer[Words]

	mu     sync.Mutex // serializes Reload; guards loaded
	loaded fileStamp
}

// NewFilter loads the list at path. A list that cannot be read at start is
// an error: the operator asked for a filter and must know it is not there.
func NewFilter(path string) (*Filter, error) {
	f := &Filter{path: path}
	if _, err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Mask masks the current list's words in text. It never fails; the error
// is for callers that treat masking as a step that may.
func (f *Filter) Mask(text string) (string, error) {
	return f.words.Load().Mask(text), nil
}

// Words returns the current list.
func (f *Filter) Words() *Words { return f.words.Load() }

// Reload reads the file again if its size or modification time changed,
// and reports whether it did. When the file cannot be read or parsed, the
// current list stays in use and the error says why.
func (f *Filter) Reload() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	stamp, err := stampOf(f.path)
	if err != nil {
		return false, fmt.Errorf("cannot reload blocked words from %s: %w", f.path, err)
	}
	if f.words.Load() != nil && stamp == f.loaded {
		return false, nil
	}
	file, err := os.Open(f.path)
	if err != nil {
		return false, fmt.Errorf("cannot reload blocked words from %s: %w", f.path, err)
	}
	defer file.Close()
	w, err := ParseWords(file)
	if err != nil {
		return false, fmt.Errorf("cannot reload blocked words from %s: %w", f.path, err)
	}
	f.words.Store(w)
	f.loaded = stamp
	return true, nil
}

// Watch reloads the file when it changed, until stop is closed, and calls
// onErr (if not nil) with each failure, once until the next change or
// success, so a missing file is not reported every interval. It checks
// every interval and
// reloads a change once the file has stayed the same for one interval, so
// a list being written is not read half-written.
func (f *Filter) Watch(stop <-chan struct{}, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var seen fileStamp
	reported := ""
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now, err := stampOf(f.path)
		if err == nil && now != seen {
			seen = now
			continue
		}
		_, err = f.Reload()
		switch {
		case err == nil:
			reported = ""
		case err.Error() != reported && onErr != nil:
			reported = err.Error()
			onErr(err)
		}
	}
}

// Run keeps the list current until stop is closed: it reloads the file
// when it changes (see Watch), and at once whenever reload receives, which
// the binary wires to SIGHUP. A failed reload is logged and counted in
// emojicast_comment_filter_reload_errors_total; the last good list stays
// in use. Run returns once its watcher has stopped.
func (f *Filter) Run(stop <-chan struct{}, interval time.Duration, reload <-chan os.Signal, log *slog.Logger) {
	onErr := func(err error) {
		reloadErrors.Inc()
		log.Warn("cannot reload the blocked words; the last good list stays in use", "err", err)
	}
	watched := make(chan struct{})
	go func() { defer close(watched); f.Watch(stop, interval, onErr) }()
	defer func() { <-watched }()
	for {
		select {
		case <-reload:
			if changed, err := f.Reload(); err != nil {
				onErr(err)
			} else {
				log.Info("blocked words reloaded on request", "file", f.path, "changed", changed, "words", f.Words().Len())
			}
		case <-stop:
			return
		}
	}
}

// fileStamp is what tells that a file changed.
type fileStamp struct {
	modTime time.Time
	size    int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

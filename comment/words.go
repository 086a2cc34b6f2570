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
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/text/unicode/norm"
)

// MaxWords bounds a blocked-word list, so a wrong file cannot make every
// comment slow.
const MaxWords = 100_000

// suffixes are what a word written with a trailing * (idiot*) may also end
// in: common English inflections.
var suffixes = []string{"s", "es", "ed", "er", "ers", "ing"}

// Words is a list of blocked words and phrases. Matching compares
// skeletons: each character stands for what it looks like
// (fold_table.go, generated from Unicode's confusables and compatibility
// decompositions): a Latin letter for full-width, circled, negative
// circled and squared, mathematical, small-capital, regional-indicator
// and superscript forms and for look-alikes of other scripts (Cyrillic
// "с", Greek "ι"), a letter without its accent; invisible characters
// (zero-width joiners, Hangul fillers) and combining marks count as
// nothing; every other character that is not a letter or digit separates
// words; the rest is lower-cased. So "BAD", "ｂａｄ", "b.a.d", "b a d",
// "bäd", "bаd" with a Cyrillic а, "🅑🅐🅓" and "b\u3164ad" all match
// "bad". A word of letters alone also matches its leetspeak spellings
// (b4d, $cum, 1d10t), read in a second skeleton where digits and $ @ !
// stand for letters, so that ordinary numbers never count as letters of
// a word that has digits of its own. A match must start and end at word
// boundaries (the edges of the text or a separator), so "bad" does not
// mask "badge"; in scripts written without spaces (Han, kana, Thai and
// their neighbours) it may start and end anywhere. Words is immutable.
type Words struct {
	n       int
	literal trie // every word
	leet    trie // words of letters alone, in leet skeletons
}

// trie holds skeletons; node 0 is the root.
type trie struct {
	next map[uint64]int32 // node<<32 | rune -> child
	end  []bool           // a word ends at the node
}

func newTrie() trie { return trie{next: map[uint64]int32{}, end: []bool{false}} }

func (t *trie) add(sk *skeleton) {
	node := int32(0)
	for _, r := range sk.runes {
		key := uint64(node)<<32 | uint64(uint32(r.r))
		child, ok := t.next[key]
		if !ok {
			child = int32(len(t.end))
			t.next[key] = child
			t.end = append(t.end, false)
		}
		node = child
	}
	t.end[node] = true
}

// ParseWords reads a list: one word or phrase per line; blank lines and
// lines starting with # are ignored. A phrase matches with any separators
// between its letters, so "bad word" also masks "badword" and "bad-word".
// A line ending in * also matches the word with a common English suffix:
// "idiot*" masks idiot, idiots, idiotes, idioted, idioter, idioters and
// idioting.
func ParseWords(r io.Reader) (*Words, error) {
	w := &Words{literal: newTrie(), leet: newTrie()}
	sk := &skeleton{}
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
		word, inflected := strings.CutSuffix(norm.NFC.String(string(text)), "*")
		forms := []string{word}
		if inflected {
			for _, s := range suffixes {
				forms = append(forms, word+s)
			}
		}
		for _, form := range forms {
			sk.build(form, false)
			if len(sk.runes) == 0 {
				return nil, fmt.Errorf("cannot read blocked words: line %d has no letters or digits", line)
			}
			w.literal.add(sk)
			if !sk.leet {
				sk.build(form, true)
				w.leet.add(sk)
			}
		}
		if w.n == MaxWords {
			return nil, fmt.Errorf("cannot read blocked words: more than %d", MaxWords)
		}
		w.n++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read blocked words: %w", err)
	}
	return w, nil
}

// Len returns the number of words and phrases in the list.
func (w *Words) Len() int { return w.n }

// Mask returns text with every blocked word replaced by one * per
// character, separators inside the match included. text should be
// cleaned first (Clean). Its cost is linear in the text for a list of
// short words: each start of a word walks the list's trie at most as far
// as the longest word.
func (w *Words) Mask(text string) string {
	if w.n == 0 {
		return text
	}
	sk := skeletons.Get().(*skeleton)
	defer releaseSkeleton(sk)
	sk.build(text, false)
	var masked []bool // by character of text; nil until a match
	masked = w.literal.match(sk, masked)
	if sk.leet {
		sk.build(text, true)
		masked = w.leet.match(sk, masked)
	}
	if masked == nil {
		return text
	}
	var b strings.Builder
	b.Grow(len(text))
	k := 0
	for _, r := range text {
		if masked[k] {
			r = '*'
		}
		b.WriteRune(r)
		k++
	}
	return b.String()
}

// match marks in masked (made when nil) the characters of every word of t
// found in sk, and returns masked.
func (t *trie) match(sk *skeleton, masked []bool) []bool {
	if len(t.end) == 1 {
		return masked
	}
	for a := range sk.runes {
		if !sk.boundary(a) {
			continue
		}
		node := int32(0)
		for b := a; b < len(sk.runes); b++ {
			child, ok := t.next[uint64(node)<<32|uint64(uint32(sk.runes[b].r))]
			if !ok {
				break
			}
			node = child
			if !t.end[node] || !sk.boundary(b+1) {
				continue
			}
			if masked == nil {
				masked = make([]bool, sk.n)
			}
			for k := sk.runes[a].origin; k <= sk.runes[b].origin; k++ {
				masked[k] = true
			}
		}
	}
	return masked
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
// in use; the counter is registered on reg (nil: nowhere). Run returns
// once its watcher has stopped.
func (f *Filter) Run(stop <-chan struct{}, interval time.Duration, reload <-chan os.Signal, log *slog.Logger, reg prometheus.Registerer) {
	failed := reloadErrors(reg)
	onErr := func(err error) {
		failed.Inc()
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

// Command foldgen writes comment/fold_table.go: what each character that
// looks like a Latin letter or digit stands for when blocked words are
// matched. It reads the UTS #39 confusables.txt of the Unicode version
// that Go's unicode package and golang.org/x/text implement, and combines
// it with compatibility decomposition (NFKD) and character names:
//
//   - a name that says which Latin letter a character is (regional
//     indicators, negative circled and squared letters, small capitals,
//     dingbat digits) decides;
//   - otherwise the character is decomposed (NFKD: full-width, circled,
//     mathematical, superscript and ligature forms), accents dropped, and
//     each letter or digit lower-cased and replaced by its confusable
//     prototype; a lower-case letter whose prototype is not Latin but
//     whose capital's is (Cyrillic т and Т) takes the capital's.
//
// Only characters that end up as Latin letters and digits, or as another
// letter of their own script without its accent, are written. Regenerate
// after a Unicode update of Go and x/text: fetch confusables.txt of the
// same version (unicode.org's Public/<version>/security/, or the ICU
// source of a distribution, icu/source/data/unidata/confusables.txt: the
// table of Unicode 15.0.0 came from Debian 12's icu 72.1 source package)
// into the comment package's directory and run go generate ./comment.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"log"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/runenames"
)

func main() {
	out := flag.String("o", "fold_table.go", "file to write")
	flag.Parse()
	if flag.NArg() != 1 {
		log.Fatal("usage: foldgen [-o fold_table.go] confusables.txt")
	}
	src, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		log.Fatal(err)
	}
	g, err := parse(src)
	if err != nil {
		log.Fatal(err)
	}
	if g.version != unicode.Version || unicode.Version != norm.Version {
		log.Fatalf("confusables.txt is Unicode %s; Go's unicode is %s and x/text's norm %s: use the same version", g.version, unicode.Version, norm.Version)
	}
	code, err := format.Source(g.write())
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, code, 0o644); err != nil {
		log.Fatal(err)
	}
}

type gen struct {
	version, date string
	proto         map[rune][]rune // confusables.txt: source -> prototype
}

// parse reads confusables.txt: "SRC ; PROTOTYPE ; MA # comment" lines
// and a header with "# Version:" and "# Date:".
func parse(src []byte) (*gen, error) {
	g := &gen{proto: map[rune][]rune{}}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := strings.TrimPrefix(sc.Text(), "\ufeff")
		if v, ok := strings.CutPrefix(line, "# Version: "); ok {
			g.version = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "# Date: "); ok {
			g.date, _, _ = strings.Cut(strings.TrimSpace(v), ",")
		}
		line, _, _ = strings.Cut(line, "#")
		fields := strings.Split(line, ";")
		if len(fields) < 3 {
			continue
		}
		from, err := codePoints(fields[0])
		if err != nil || len(from) != 1 {
			return nil, fmt.Errorf("cannot read confusables.txt: %q: bad source", line)
		}
		to, err := codePoints(fields[1])
		if err != nil {
			return nil, fmt.Errorf("cannot read confusables.txt: %q: %w", line, err)
		}
		g.proto[from[0]] = to
	}
	if g.version == "" || len(g.proto) == 0 {
		return nil, fmt.Errorf("cannot read confusables.txt: no version header or no mappings")
	}
	return g, sc.Err()
}

func codePoints(s string) ([]rune, error) {
	var out []rune
	for _, f := range strings.Fields(s) {
		n, err := strconv.ParseUint(f, 16, 32)
		if err != nil {
			return nil, err
		}
		out = append(out, rune(n))
	}
	return out, nil
}

// byName are the names that say which Latin letter or digit a character
// is, where neither NFKD nor confusables.txt maps it to one.
var byName = []*regexp.Regexp{
	regexp.MustCompile(`^REGIONAL INDICATOR SYMBOL LETTER ([A-Z])$`),
	regexp.MustCompile(`^NEGATIVE (?:CIRCLED|SQUARED) LATIN CAPITAL LETTER ([A-Z])$`),
	regexp.MustCompile(`^LATIN (?:LETTER SMALL CAPITAL|SMALL CAPITAL LETTER) ([A-Z])$`),
	regexp.MustCompile(`^(?:DINGBAT )?(?:NEGATIVE )?CIRCLED (?:SANS-SERIF )?DIGIT ([A-Z]+)$`),
}

var digitNames = map[string]rune{"ZERO": '0', "ONE": '1', "TWO": '2', "THREE": '3', "FOUR": '4',
	"FIVE": '5', "SIX": '6', "SEVEN": '7', "EIGHT": '8', "NINE": '9'}

// lookAlikes are letters that people use for a Latin one and that
// confusables.txt maps to another letter or not at all: turned m and
// turned w (the prototype of Cyrillic м and small capital ᴍ) read as m.
var lookAlikes = map[rune]rune{
	0x026F: 'm', // ɯ LATIN SMALL LETTER TURNED M (confusables.txt: w)
	0x028D: 'm', // ʍ LATIN SMALL LETTER TURNED W
}

// named returns the Latin letter or digit r's name says it is.
func named(r rune) (rune, bool) {
	if f, ok := lookAlikes[r]; ok {
		return f, true
	}
	name := runenames.Name(r)
	for _, re := range byName {
		m := re.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		if len(m[1]) == 1 {
			return unicode.ToLower(rune(m[1][0])), true
		}
		if d, ok := digitNames[m[1]]; ok {
			return d, true
		}
	}
	return 0, false
}

// fold returns what r stands for: Latin letters and digits when it looks
// like them, else letters of its own script; depth bounds the recursion
// through prototypes.
func (g *gen) fold(r rune, depth int) []rune {
	if f, ok := named(r); ok {
		return g.fold1(f, depth)
	}
	// A look-alike of a Latin letter is that letter, before NFKD could
	// turn it into a letter of its own script (lunate sigma ϲ into ς).
	if _, ok := g.proto[unicode.ToLower(r)]; ok && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
		if f := g.fold1(r, depth); latin(f) {
			return f
		}
	}
	var out []rune
	for _, c := range norm.NFKD.String(string(r)) {
		if !unicode.IsLetter(c) && !unicode.IsDigit(c) {
			continue // accents, and the parentheses and dots of ⒜ and ⒈
		}
		out = append(out, g.fold1(c, depth)...)
	}
	return out
}

// fold1 folds one letter or digit of a decomposition.
func (g *gen) fold1(c rune, depth int) []rune {
	if f, ok := named(c); ok {
		c = f // then folded as that letter is: 🅼 as m
	}
	lower := unicode.ToLower(c)
	p, ok := g.proto[lower]
	if !ok || depth > 3 {
		if lower < utf8.RuneSelf {
			return []rune{lower}
		}
		return g.viaCapital(c, lower, []rune{lower}, depth)
	}
	var f []rune
	for _, q := range p {
		if q == lower {
			f = append(f, q)
			continue
		}
		f = append(f, g.fold(q, depth+1)...)
	}
	if latin(f) {
		return f
	}
	return g.viaCapital(c, lower, f, depth)
}

// viaCapital returns the Latin letter c's capital looks like (Cyrillic т,
// whose prototype is a small capital, and Т, whose prototype is T), or f.
func (g *gen) viaCapital(c, lower rune, f []rune, depth int) []rune {
	upper := unicode.ToUpper(lower)
	if p, ok := g.proto[upper]; ok && upper != c && depth == 0 {
		if len(p) == 1 && p[0] < utf8.RuneSelf && unicode.IsLetter(p[0]) {
			return []rune{unicode.ToLower(p[0])}
		}
	}
	return f
}

func latin(f []rune) bool {
	for _, c := range f {
		if c >= utf8.RuneSelf || !(unicode.IsLetter(c) || unicode.IsDigit(c)) {
			return false
		}
	}
	return len(f) > 0
}

type entry struct {
	r    rune
	fold string
}

// entries lists every character whose fold is not itself lower-cased.
// Characters that NFC changes are left out: comments and the word list
// are NFC before they are folded.
func (g *gen) entries() []entry {
	var out []entry
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !unicode.In(r, unicode.L, unicode.N, unicode.S) || !norm.NFC.IsNormalString(string(r)) {
			continue
		}
		if unicode.Is(unicode.Hangul, r) || unicode.Is(unicode.Han, r) {
			continue // no look-alikes; syllables stay whole
		}
		if unicode.In(r, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) {
			continue // invisible: counts as nothing (the Hangul fillers)
		}
		f := g.fold(r, 0)
		isLetter := unicode.IsLetter(r) || unicode.IsDigit(r)
		switch {
		case latin(f):
			if isLetter && string(f) == string(unicode.ToLower(r)) {
				continue
			}
		case isLetter && len(f) == 1 && f[0] != unicode.ToLower(r):
			// A letter of another script without its accent (ά: α).
		default:
			continue
		}
		out = append(out, entry{r, string(f)})
	}
	return out
}

// write renders the table: runs of consecutive characters that fold to
// consecutive letters (𝐚 to 𝐳) take one line.
func (g *gen) write() []byte {
	es := g.entries()
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by foldgen from confusables.txt (UTS #39, Unicode %s, %s); DO NOT EDIT.\n\n", g.version, g.date)
	b.WriteString("package comment\n\n")
	fmt.Fprintf(&b, "// foldVersion is the Unicode version of foldRanges.\nconst foldVersion = %q\n\n", g.version)
	b.WriteString("// foldRanges: each character from lo to hi folds to fold, or, in a run\n")
	b.WriteString("// (hi > lo), to the letter that many places after fold's.\n")
	b.WriteString("var foldRanges = [...]foldRange{\n")
	for i := 0; i < len(es); {
		j := i + 1
		for j < len(es) && step(es[j-1], es[j]) {
			j++
		}
		fmt.Fprintf(&b, "\t{0x%04x, 0x%04x, %q},\n", es[i].r, es[j-1].r, es[i].fold)
		i = j
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func step(a, b entry) bool {
	return b.r == a.r+1 && len(a.fold) == 1 && len(b.fold) == 1 &&
		b.fold[0] == a.fold[0]+1 && a.fold[0] >= 'a' && b.fold[0] <= 'z'
}

// Package emoji is the configured set of reactions a stream accepts.
//
// Push and pull refer to an emoji by its index in the set, so counts live in
// fixed arrays instead of maps; the store and the wire use the ids.
package emoji

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emojicast/emojicast/api"
)

// Max is the largest number of emojis a set may hold.
const Max = 32

// Emoji is one reaction: a short lowercase id and the glyph clients draw.
type Emoji struct {
	ID    string
	Glyph string
}

// Set is an ordered, immutable set of emojis.
type Set struct {
	list []Emoji
	byID map[string]int
	json []byte // the body of GET /v1/emojis
}

// DefaultSpec is the default set in the form Parse reads.
const DefaultSpec = "like=👍,love=❤️,haha=😂,wow=😮,sad=😢,angry=😡,clap=👏,fire=🔥"

// Default returns the default set of docs/api.md.
func Default() *Set {
	s, err := Parse(DefaultSpec)
	if err != nil {
		panic("BUG: default emoji set does not parse: " + err.Error())
	}
	return s
}

// Parse reads a set written as comma-separated id=glyph pairs, in display
// order. Ids are 1 to 16 characters of a-z, 0-9 and _, starting with a letter;
// glyphs are 1 to 32 bytes of printable UTF-8 without quotes or backslashes.
func Parse(spec string) (*Set, error) {
	s := &Set{byID: make(map[string]int)}
	for pair := range strings.SplitSeq(spec, ",") {
		id, glyph, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return nil, fmt.Errorf("cannot parse emoji %q: want id=glyph", pair)
		}
		if !validID(id) {
			return nil, fmt.Errorf("cannot parse emoji %q: id must be 1 to 16 characters of a-z 0-9 _ starting with a letter", pair)
		}
		if !validGlyph(glyph) {
			return nil, fmt.Errorf("cannot parse emoji %q: glyph must be 1 to 32 bytes of printable UTF-8", pair)
		}
		if _, dup := s.byID[id]; dup {
			return nil, fmt.Errorf("cannot parse emoji set: id %q appears twice", id)
		}
		s.byID[id] = len(s.list)
		s.list = append(s.list, Emoji{ID: id, Glyph: glyph})
	}
	if len(s.list) > Max {
		return nil, fmt.Errorf("cannot parse emoji set: %d emojis, at most %d", len(s.list), Max)
	}
	if len(s.list) == 0 {
		return nil, errors.New("cannot parse emoji set: it is empty")
	}
	s.json = s.AppendJSON([]byte(`{"emojis":`))
	s.json = append(s.json, '}')
	return s, nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 16 || id[0] < 'a' || id[0] > 'z' {
		return false
	}
	for i := 1; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func validGlyph(g string) bool {
	if len(g) == 0 || len(g) > 32 || !utf8.ValidString(g) {
		return false
	}
	for _, r := range g {
		if r == '"' || r == '\\' || unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// Len returns the number of emojis.
func (s *Set) Len() int { return len(s.list) }

// At returns the emoji at index i.
func (s *Set) At(i int) Emoji { return s.list[i] }

// Index returns the index of the emoji with the given id. It does not allocate.
func (s *Set) Index(id []byte) (int, bool) {
	i, ok := s.byID[string(id)]
	return i, ok
}

// IndexString is Index for an id held as a string.
func (s *Set) IndexString(id string) (int, bool) {
	i, ok := s.byID[id]
	return i, ok
}

// AppendJSON appends the set as a JSON array of {"id","glyph"} objects.
func (s *Set) AppendJSON(dst []byte) []byte {
	dst = append(dst, '[')
	for i, e := range s.list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = api.AppendJSONString(dst, e.ID)
		dst = append(dst, `,"glyph":`...)
		dst = api.AppendJSONString(dst, e.Glyph)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// JSON returns the body of GET /v1/emojis. Callers must not modify it.
func (s *Set) JSON() []byte { return s.json }

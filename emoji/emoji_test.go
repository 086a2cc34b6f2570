package emoji

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestDefaultSet(t *testing.T) {
	s := Default()
	if s.Len() != 8 {
		t.Fatalf("default set has %d emojis; want 8", s.Len())
	}
	wantIDs := []string{"like", "love", "haha", "wow", "sad", "angry", "clap", "fire"}
	for i, id := range wantIDs {
		if s.At(i).ID != id {
			t.Errorf("At(%d) = %q; want %q", i, s.At(i).ID, id)
		}
		if j, ok := s.Index([]byte(id)); !ok || j != i {
			t.Errorf("Index(%q) = %d, %v; want %d, true", id, j, ok, i)
		}
	}
	if _, ok := s.Index([]byte("poop")); ok {
		t.Error("Index found an emoji that is not in the set")
	}
	var body struct {
		Emojis []struct{ ID, Glyph string }
	}
	if err := json.Unmarshal(s.JSON(), &body); err != nil {
		t.Fatalf("JSON() = %s: %v", s.JSON(), err)
	}
	if len(body.Emojis) != 8 || body.Emojis[1].ID != "love" || body.Emojis[1].Glyph != "❤️" {
		t.Errorf("JSON() = %s", s.JSON())
	}
}

func TestParseRejectsBadSets(t *testing.T) {
	for _, spec := range []string{
		"", "like", "Like=👍", "1x=👍", "like=", "like=a b", `like="`, "like=👍,like=👎",
		"toolongidentifier_x=👍", "like=" + strings.Repeat("x", 33), tooMany(),
	} {
		if _, err := Parse(spec); err == nil {
			t.Errorf("Parse(%q) succeeded; want an error", spec)
		}
	}
}

// tooMany returns a spec with one emoji more than Max.
func tooMany() string {
	pairs := make([]string, Max+1)
	for i := range pairs {
		pairs[i] = fmt.Sprintf("e%02d=x", i)
	}
	return strings.Join(pairs, ",")
}

func TestParseCustomSet(t *testing.T) {
	s, err := Parse(" goal=⚽ , card=🟥")
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || s.At(0) != (Emoji{"goal", "⚽"}) || s.At(1) != (Emoji{"card", "🟥"}) {
		t.Fatalf("Parse = %+v", s.list)
	}
}

package admin

import (
	"strings"
	"testing"
)

func TestParseTokens(t *testing.T) {
	got, err := ParseTokens(" ops:0123456789abcdef0 , 0123456789abcdef1,ci-bot:with:colon-secret-12 ")
	if err != nil {
		t.Fatal(err)
	}
	want := []Token{{"ops", "0123456789abcdef0"}, {"token2", "0123456789abcdef1"}, {"ci-bot", "with:colon-secret-12"}}
	if len(got) != len(want) {
		t.Fatalf("ParseTokens = %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("token %d = %+v; want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"", " , ", "ops:short", "a:0123456789abcdef0,a:0123456789abcdef1"} {
		if _, err := ParseTokens(bad); err == nil {
			t.Errorf("ParseTokens(%q) succeeded; want an error", bad)
		}
	}
	// A secret whose part before a colon is no label is a bare secret.
	got, err = ParseTokens("not a label:0123456789abcdef")
	if err != nil || got[0].Label != "token1" || got[0].Secret != "not a label:0123456789abcdef" {
		t.Fatalf("ParseTokens of a bare secret with a colon = %+v, %v", got, err)
	}
}

func TestMatchNamesTheToken(t *testing.T) {
	tokens := []Token{{"old", strings.Repeat("a", 20)}, {"new", strings.Repeat("b", 20)}}
	for _, c := range []struct {
		presented, label string
		ok               bool
	}{
		{strings.Repeat("a", 20), "old", true},
		{strings.Repeat("b", 20), "new", true},
		{strings.Repeat("b", 19), "", false},
		{"", "", false},
	} {
		label, ok := match(tokens, []byte(c.presented))
		if label != c.label || ok != c.ok {
			t.Errorf("match(%q) = %q, %v; want %q, %v", c.presented, label, ok, c.label, c.ok)
		}
	}
}

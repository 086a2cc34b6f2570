package comment

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

func mustWords(t testing.TB, list string) *Words {
	t.Helper()
	w, err := ParseWords(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestMaskEveryDisguise: a blocked word is masked however it is written,
// and words that merely contain it are left alone.
func TestMaskEveryDisguise(t *testing.T) {
	w := mustWords(t, "# the operator's list\nbad\n\nsp am\n糞\ngood\n")
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "so bad", "so ***"},
		{"upper case", "so BAD!", "so ***!"},
		{"mixed case", "so bAd", "so ***"},
		{"full-width", "so ｂａｄ", "so ***"},
		{"full-width upper", "ＢＡＤ", "***"},
		{"spaces between", "so b a d", "so *****"},
		{"ideographic spaces", "b\u3000a\u3000d", "*****"},
		{"dots between", "b.a.d idea", "***** idea"},
		{"punctuation mix", "b-a_d!", "*****!"},
		{"zero-width between", "b\u200ba\u200dd", "*****"},
		{"accents", "so bäd", "so ***"},
		{"combining accents", "ba\u0301d", "****"},
		{"circled", "ⓑⓐⓓ", "***"},
		{"mathematical bold", "𝐛𝐚𝐝", "***"},
		{"at the start", "bad start", "*** start"},
		{"twice", "bad, BAD", "***, ***"},
		{"phrase", "spam!", "****!"},
		{"phrase spaced", "s p a m", "*******"},
		{"phrase split", "sp-am", "*****"},
		{"no spaces in Chinese", "这是糞啊", "这是*啊"},
		{"inside a word", "badge badly", "badge badly"},
		{"word inside", "abad", "abad"},
		{"clean", "what a goal!", "what a goal!"},
		{"emoji kept", "🔥 bad 🔥", "🔥 *** 🔥"},
		{"Cyrillic а", "so b\u0430d", "so ***"},
		{"all Cyrillic look-alikes", "\u0455\u0440\u0430m", "****"},
		{"Greek α", "b\u03b1d", "***"},
		{"zeros for o", "g00d", "****"},
		{"Hangul filler inside", "b\u3164ad", "****"},
		{"Hangul choseong filler inside", "sp\u115fam", "*****"},
		{"halfwidth Hangul filler", "ba\uffa0d", "****"},
		{"word joiner", "b\u2060ad", "****"},
		{"soft hyphen", "b\u00adad", "****"},
		{"variation selector", "b\ufe0fad", "****"},
		{"filler does not make a boundary", "a\u3164bad", "a\u3164bad"},
		{"filler at the edge", "\u3164bad\u3164", "\u3164***\u3164"},
		{"look-alike inside a longer word", "b\u0430dge", "b\u0430dge"},
	} {
		if got := w.Mask(tc.in); got != tc.want {
			t.Errorf("%s: Mask(%q) = %q; want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestParseWordsRefusesJunk(t *testing.T) {
	for _, list := range []string{"ok\n...\n", "bad\xff\n"} {
		if _, err := ParseWords(strings.NewReader(list)); err == nil {
			t.Errorf("ParseWords(%q) succeeded; want an error naming the line", list)
		}
	}
}

// TestFilterReloadsWithoutRestart: a changed file is picked up by Watch;
// a broken one keeps the last good list in use and is reported.
func TestFilterReloadsWithoutRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blocked.txt")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("bad\n")
	f, err := NewFilter(path)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 100)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); f.Watch(stop, 5*time.Millisecond, func(err error) { errs <- err }) }()
	defer func() { close(stop); <-done }()

	mask := func(s string) string { m, _ := f.Mask(s); return m }
	if got := mask("bad ugly"); got != "*** ugly" {
		t.Fatalf("Mask = %q with the first list", got)
	}
	write("bad\nugly\n")
	waitFor(t, "the new list is used", func() bool { return mask("bad ugly") == "*** ****" })

	write("...\n") // no letters: refused, the last good list stays
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "line 1") {
			t.Errorf("reload error %q does not name the line", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a broken list was not reported")
	}
	if got := mask("bad ugly"); got != "*** ****" {
		t.Fatalf("after a broken reload Mask = %q; want the last good list", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Reload(); err == nil {
		t.Fatal("Reload of a removed file succeeded")
	}
	if got := mask("bad"); got != "***" {
		t.Fatalf("after the file went away Mask = %q; want the last good list", got)
	}
}

func TestNewFilterNeedsTheFile(t *testing.T) {
	if _, err := NewFilter(filepath.Join(t.TempDir(), "missing.txt")); err == nil {
		t.Fatal("NewFilter of a missing file succeeded")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FuzzMask: masking a cleaned text never panics, keeps its length in
// characters, only ever puts * in place of characters, and masks a
// blocked word written plainly anywhere between spaces.
func FuzzMask(f *testing.F) {
	w := mustWords(f, "bad\nsp am\n糞\n")
	for _, s := range []string{"so bad", "ｂａｄ", "b.a.d", "abad", "糞", "ǆ", "\ufdfa"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		text, err := Clean(in)
		if err != nil {
			return
		}
		out := w.Mask(text)
		a, b := []rune(text), []rune(out)
		if len(a) != len(b) {
			t.Fatalf("Mask(%q) = %q: %d characters, want %d", text, out, len(b), len(a))
		}
		for i := range a {
			if a[i] != b[i] && b[i] != '*' {
				t.Fatalf("Mask(%q) = %q: character %d changed to %q", text, out, i, b[i])
			}
		}
		if utf8.RuneCountInString(text) <= MaxLen-4 {
			if got := w.Mask(text + " bad"); !strings.HasSuffix(got, " ***") {
				t.Fatalf("Mask(%q) = %q; the trailing word is not masked", text+" bad", got)
			}
		}
	})
}

// FuzzMaskDisguised: a blocked word written with look-alike letters of
// other scripts and invisible characters between them is masked, over the
// whole span it takes in the text, wherever it stands between spaces.
func FuzzMaskDisguised(f *testing.F) {
	w := mustWords(f, "scam\n")
	looks := [][]string{
		{"s", "S", "\u0455", "\uff53"},
		{"c", "C", "\u0441", "\u03f2"},
		{"a", "A", "\u0430", "\u03b1"},
		{"m", "M", "\u041c", "rn"},
	}
	invisible := []string{"", "\u3164", "\u115f", "\u200d", "\u2060", "\ufe0f", "\u00ad"}
	f.Add("hey", []byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add("", []byte{2, 2, 2, 2, 1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, prefix string, picks []byte) {
		if len(picks) < 8 {
			return
		}
		var word strings.Builder
		for i, l := range looks {
			word.WriteString(l[int(picks[i])%len(l)])
			if i < len(looks)-1 {
				word.WriteString(invisible[int(picks[4+i])%len(invisible)])
			}
		}
		p, err := Clean(prefix)
		if err != nil || utf8.RuneCountInString(p)+12 > MaxLen {
			return
		}
		text := p + " " + word.String() + " !"
		out := w.Mask(text)
		start := utf8.RuneCountInString(p) + 1
		n := utf8.RuneCountInString(word.String())
		got := []rune(out)[start : start+n]
		if strings.Trim(string(got), "*") != "" {
			t.Fatalf("Mask(%q) = %q; the disguised word %q is not masked whole", text, out, word.String())
		}
	})
}

// TestRunReloadsOnRequest: a value on the reload channel (SIGHUP in the
// binary) reloads the list at once, without waiting for the watcher; a
// list that cannot be read is counted and the last good one stays.
func TestRunReloadsOnRequest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blocked.txt")
	if err := os.WriteFile(path, []byte("bad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := NewFilter(path)
	if err != nil {
		t.Fatal(err)
	}
	reload := make(chan os.Signal)
	reg := prometheus.NewRegistry()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); f.Run(stop, time.Hour, reload, slog.New(slog.DiscardHandler), reg) }()
	defer func() { close(stop); <-done }()

	if err := os.WriteFile(path, []byte("bad\nugly\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reload <- syscall.SIGHUP
	waitFor(t, "the list is reloaded on request", func() bool { return f.Words().Len() == 2 })

	before := reloadErrorCount(t, reg)
	if err := os.WriteFile(path, []byte("...\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reload <- syscall.SIGHUP
	waitFor(t, "the failed reload is counted", func() bool { return reloadErrorCount(t, reg) == before+1 })
	if n := f.Words().Len(); n != 2 {
		t.Fatalf("after a failed reload the list has %d words; want the last good 2", n)
	}
}

// reloadErrorCount reads emojicast_comment_filter_reload_errors_total as
// /metrics would show it from reg.
func reloadErrorCount(t *testing.T, reg prometheus.Gatherer) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == "emojicast_comment_filter_reload_errors_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("emojicast_comment_filter_reload_errors_total is not registered")
	return 0
}

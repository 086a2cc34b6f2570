package display

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emojicast/emojicast/client"
)

var set = []client.Emoji{{ID: "like", Glyph: "👍"}, {ID: "love", Glyph: "❤️"}, {ID: "fire", Glyph: "🔥"}}

func TestLines(t *testing.T) {
	var b strings.Builder
	l := Lines{W: &b, Emojis: set}
	err := l.Show(client.Update{Now: 1763700002, Viewers: 3, Buckets: []client.Bucket{
		{T: 1763700001, Counts: map[string]int64{"fire": 20, "love": 5}, Burst: []string{"fire"}},
		{T: 1763700002, Counts: map[string]int64{"like": 1, "zzz": 2}, Comments: []client.Comment{{User: "u1", Text: "what a goal!"}}},
		{T: 1763700003, Comments: []client.Comment{{User: "u2", Text: "only words\x1b[2J"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := "2025-11-21T04:40:01Z  ❤️ love=5  🔥 fire=20 (burst)  viewers=3\n" +
		"2025-11-21T04:40:02Z  👍 like=1  zzz zzz=2  viewers=3\n" +
		"2025-11-21T04:40:02Z  💬 u1: what a goal!\n" +
		"2025-11-21T04:40:03Z  viewers=3\n" +
		"2025-11-21T04:40:03Z  💬 u2: only words\ufffd[2J\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestBar(t *testing.T) {
	for _, tc := range []struct {
		n, top int64
		want   string
	}{
		{10, 10, "████"},
		{5, 10, "██  "},
		{1, 10, "▍   "}, // 3.2 eighths round to 3
		{1, 1000, "▏   "},
		{0, 10, "    "},
		{0, 0, "    "},
	} {
		if got := bar(tc.n, tc.top, 4); got != tc.want {
			t.Errorf("bar(%d, %d, 4) = %q; want %q", tc.n, tc.top, got, tc.want)
		}
		if got := utf8.RuneCountInString(bar(tc.n, tc.top, 4)); got != 4 {
			t.Errorf("bar(%d, %d, 4) is %d columns; want 4", tc.n, tc.top, got)
		}
	}
}

func TestGroup(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1204: "1,204", 12345678: "12,345,678"} {
		if got := group(n); got != want {
			t.Errorf("group(%d) = %q; want %q", n, got, want)
		}
	}
}

// TestChart: bars sum the window, the largest is full width, a burst is
// marked, seconds that leave the window drop out, the latest comments show
// under the bars, and each redraw moves back over the previous frame.
func TestChart(t *testing.T) {
	var b strings.Builder
	c := Chart{W: &b, Stream: "demo", Emojis: set, Window: 3, Width: 8, Comments: 2}
	c.Show(client.Update{Now: 100, Viewers: 1204, Buckets: []client.Bucket{
		{T: 99, Counts: map[string]int64{"love": 4}},
		{T: 100, Counts: map[string]int64{"love": 4, "fire": 20}, Burst: []string{"fire"}, Comments: []client.Comment{{User: "u1", Text: "goal!"}}},
	}})
	frame := c.Frame()
	want := []string{
		"demo · 1,204 viewers · last 3s · 00:01:40Z",
		"👍 like          0",
		"❤️ love ███▎     8",
		"🔥 fire ████████ 20 🎉",
		"",
		"💬 u1: goal!",
	}
	if strings.Join(frame, "\n") != strings.Join(want, "\n") {
		t.Fatalf("frame:\n%s\nwant:\n%s", strings.Join(frame, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(b.String(), "A\x1b") {
		t.Fatal("the first frame moved the cursor up over lines it never drew")
	}
	b.Reset()
	c.Show(client.Update{Now: 103, Viewers: 1, Buckets: []client.Bucket{{T: 102, Counts: map[string]int64{"like": 2},
		Comments: []client.Comment{{User: "u2", Text: "again"}, {User: "u3", Text: "wow"}}}}})
	if !strings.HasPrefix(b.String(), "\x1b[6A\x1b[2K") {
		t.Fatalf("redraw starts %q; want the cursor moved up 6 lines and the line cleared", b.String()[:12])
	}
	frame = c.Frame()
	if frame[4] != "💬 u2: again" || frame[5] != "💬 u3: wow" {
		t.Fatalf("comment lines %q; want the latest two", frame[4:])
	}
	if frame[1] != "👍 like ████████ 2" || frame[2] != "❤️ love          0" || strings.Contains(frame[3], "🎉") {
		t.Fatalf("after the window moved to 101..103, seconds 99 and 100 must be gone:\n%s", strings.Join(frame, "\n"))
	}
}

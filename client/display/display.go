// Package display renders a stream's reactions and comments for a
// terminal, for 'emojicast watch': one line per second (and one per
// comment) for logs and pipes, or a compact live bar chart of the last
// seconds with the latest comments under it, redrawn in place, for a
// person.
package display

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emojicast/emojicast/client"
)

// Lines writes one line per second with reactions, then one per comment:
//
//	2025-11-21T07:12:03Z  ❤️ love=5  🔥 fire=20 (burst)  viewers=3
//	2025-11-21T07:12:03Z  💬 u123: what a goal!
type Lines struct {
	W      io.Writer
	Emojis []client.Emoji
}

// Show writes the update's seconds.
func (l *Lines) Show(u client.Update) error {
	var b strings.Builder
	for _, bk := range u.Buckets {
		b.WriteString(time.Unix(bk.T, 0).UTC().Format(time.RFC3339))
		for _, e := range ordered(l.Emojis, bk.Counts) {
			fmt.Fprintf(&b, "  %s %s=%d", Safe(e.Glyph), Safe(e.ID), bk.Counts[e.ID])
			if slices.Contains(bk.Burst, e.ID) {
				b.WriteString(" (burst)")
			}
		}
		fmt.Fprintf(&b, "  viewers=%d\n", u.Viewers)
		for _, c := range bk.Comments {
			fmt.Fprintf(&b, "%s  💬 %s\n", time.Unix(bk.T, 0).UTC().Format(time.RFC3339), said(c))
		}
	}
	_, err := io.WriteString(l.W, b.String())
	return err
}

// ordered returns the emojis with a count, in the set's order, then any the
// set does not know (a server with a newer set), by id.
func ordered(set []client.Emoji, counts map[string]int64) []client.Emoji {
	var out []client.Emoji
	known := map[string]bool{}
	for _, e := range set {
		known[e.ID] = true
		if counts[e.ID] > 0 {
			out = append(out, e)
		}
	}
	var extra []string
	for id, n := range counts {
		if !known[id] && n > 0 {
			extra = append(extra, id)
		}
	}
	slices.Sort(extra)
	for _, id := range extra {
		out = append(out, client.Emoji{ID: id, Glyph: id})
	}
	return out
}

// Chart draws, for each emoji, a bar of its reactions over the last Window
// seconds, and redraws it in place on every update.
type Chart struct {
	W      io.Writer
	Stream string
	Emojis []client.Emoji
	// Window is how many seconds the bars sum. Default: 10.
	Window int64
	// Width is the longest bar, in columns. Default: 30.
	Width int
	// Comments is how many of the latest comments are shown under the
	// bars. Default: 5.
	Comments int

	seconds  map[int64]client.Bucket
	comments []client.Comment // the latest, oldest first
	now      int64
	viewers  int64
	drawn    int // lines drawn last time, to move back over
}

// Show takes an update and redraws the chart.
func (c *Chart) Show(u client.Update) error {
	if c.Window <= 0 {
		c.Window = 10
	}
	if c.Width <= 0 {
		c.Width = 30
	}
	if c.Comments <= 0 {
		c.Comments = 5
	}
	if c.seconds == nil {
		c.seconds = map[int64]client.Bucket{}
	}
	for _, b := range u.Buckets {
		c.seconds[b.T] = b
		c.comments = append(c.comments, b.Comments...)
	}
	c.comments = c.comments[max(0, len(c.comments)-c.Comments):]
	c.now, c.viewers = max(c.now, u.Now), u.Viewers
	for t := range c.seconds {
		if t <= c.now-c.Window {
			delete(c.seconds, t)
		}
	}
	frame := c.Frame()
	var b strings.Builder
	if c.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", c.drawn) // back to the first line of the last frame
	}
	for _, line := range frame {
		b.WriteString("\x1b[2K") // clear the old line
		b.WriteString(line)
		b.WriteByte('\n')
	}
	c.drawn = len(frame)
	_, err := io.WriteString(c.W, b.String())
	return err
}

// Frame returns the chart's lines: a title, then one bar per emoji of the
// set, marked when one of its seconds in the window was a burst.
func (c *Chart) Frame() []string {
	totals := map[string]int64{}
	burst := map[string]bool{}
	for _, b := range c.seconds {
		for id, n := range b.Counts {
			totals[id] += n
		}
		for _, id := range b.Burst {
			burst[id] = true
		}
	}
	var top int64
	for _, n := range totals {
		top = max(top, n)
	}
	title := fmt.Sprintf("%s · %s viewers · last %ds", c.Stream, group(c.viewers), c.Window)
	if c.now > 0 {
		title += " · " + time.Unix(c.now, 0).UTC().Format("15:04:05Z")
	}
	lines := []string{title}
	idWidth := 0
	for _, e := range c.Emojis {
		idWidth = max(idWidth, len(Safe(e.ID)))
	}
	for _, e := range c.Emojis {
		n := totals[e.ID]
		line := fmt.Sprintf("%s %-*s %s %s", Safe(e.Glyph), idWidth, Safe(e.ID), bar(n, top, c.Width), group(n))
		if burst[e.ID] {
			line += " 🎉"
		}
		lines = append(lines, line)
	}
	for i := range c.Comments {
		// Always as many lines, so a redraw covers the last frame.
		line := ""
		if k := len(c.comments) - c.Comments + i; k >= 0 {
			line = "💬 " + said(c.comments[k])
		}
		lines = append(lines, line)
	}
	return lines
}

// eighths are the block characters for 1/8 to 8/8 of a column.
var eighths = []string{"", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"}

// bar returns a bar of n relative to top, at most width columns, padded to
// width. A non-zero count always shows at least a sliver.
func bar(n, top int64, width int) string {
	units := 0
	if top > 0 && n > 0 {
		units = max(1, int(math.Round(float64(n)*float64(width*8)/float64(top))))
	}
	s := strings.Repeat("█", units/8) + eighths[units%8]
	cols := units/8 + min(units%8, 1)
	return s + strings.Repeat(" ", width-cols)
}

// group writes a count with thousands separators: 1,204.
func group(n int64) string {
	s := strconv.FormatInt(max(n, 0), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// said writes a comment as "user: text".
func said(c client.Comment) string { return Safe(c.User + ": " + c.Text) }

// Safe returns server-supplied text with every control character (escape
// sequences start with one) and every bidirectional control (U+202E would
// make what follows read backwards) shown as U+FFFD: the server refuses
// them, but a terminal must not take orders from whatever answers.
func Safe(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return utf8.RuneError
		}
		return r
	}, s)
}

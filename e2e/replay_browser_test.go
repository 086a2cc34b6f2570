package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/emojicast/emojicast/internal/testutil"
)

// seenOnStage records, from the page's start, every emoji that floated
// and every comment that flew, so the test sees them whenever it looks.
const seenOnStage = `(() => {
	window.__seen = { floats: {}, comments: [] };
	new MutationObserver((records) => {
		for (const r of records) for (const n of r.addedNodes) {
			if (!(n instanceof HTMLElement)) continue;
			if (n.classList.contains("float")) window.__seen.floats[n.dataset.emoji] = (window.__seen.floats[n.dataset.emoji] || 0) + 1;
			if (n.classList.contains("confetti")) window.__seen.floats[n.dataset.emoji + "-burst"] = 1;
			if (n.classList.contains("comment") && n.dataset.user) window.__seen.comments.push(n.textContent);
		}
	}).observe(document.getElementById("stage"), { childList: true, subtree: true });
	return true;
})()`

// TestReplayInBrowser: in headless Chromium, /?stream=s&at=T plays the
// stream's sealed past from T on as the live view plays it (floating
// emojis, flying comments, the stats), with taps and comments off; seeking
// back plays it again.
func TestReplayInBrowser(t *testing.T) {
	t.Parallel()
	base := startServe(t)
	const stream = "replay-browser"
	start := time.Now().Unix() - 1
	postTaps(t, base, stream, "fan-1", "love", 5)
	postComment(t, base, stream, "fan-1", "replayed!")
	time.Sleep(time.Second)
	postTaps(t, base, stream, "fan-2", "love", 5)
	postTaps(t, base, stream, "fan-2", "fire", 3)
	last := time.Now().Unix()
	testutil.Eventually(t, 15*time.Second, "the taps' seconds in history", func() bool {
		var h struct{ To int64 }
		return getJSON(t, fmt.Sprintf("%s/v1/streams/%s/history?from=%d&to=%d", base, stream, start, last), &h) == http.StatusOK && h.To >= last
	})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p := newPage(t, browser(t, ctx), "replayer")
	p.do(chromedp.Navigate(fmt.Sprintf("%s/?stream=%s&at=%d", base, stream, start-1)))
	if !eval[bool](p, seenOnStage) {
		t.Fatal("cannot observe the stage")
	}
	want := map[string]int64{"love": 10, "fire": 3}
	testutil.Eventually(t, 20*time.Second, "the replay to play every tap", func() bool {
		return reflect.DeepEqual(p.received(), want)
	})
	var seen struct {
		Floats   map[string]int
		Comments []string
	}
	testutil.Eventually(t, 10*time.Second, "floating emojis and the comment on the stage", func() bool {
		raw := eval[string](p, `JSON.stringify(window.__seen)`)
		_ = json.Unmarshal([]byte(raw), &seen)
		return seen.Floats["love"] == 10 && seen.Floats["fire"] == 3 && len(seen.Comments) == 1 && seen.Comments[0] == "replayed!"
	})
	if mode := eval[string](p, `document.getElementById("mode").textContent`); mode != "REPLAY" {
		t.Fatalf("the stage says %q; want REPLAY", mode)
	}
	if enabled := eval[bool](p, `[...document.querySelectorAll("#buttons button, #say button")].some((b) => !b.disabled)`); enabled {
		t.Fatal("a tap or comment button is enabled in replay")
	}

	// Seek back to the start: the same seconds play again.
	p.do(chromedp.Evaluate[chromedp.Void](`(() => {
		const s = document.getElementById("replay-seek");
		s.value = "` + strconv.FormatInt(start-1, 10) + `";
		s.dispatchEvent(new Event("change"));
	})()`))
	testutil.Eventually(t, 20*time.Second, "the replay to play every tap again after seeking back", func() bool {
		got := p.received()
		return got["love"] == 20 && got["fire"] == 6
	})
	if at := eval[string](p, `new URLSearchParams(location.search).get("at")`); at != strconv.FormatInt(start-1, 10) {
		t.Fatalf("after seeking the page's URL says at=%s; want %d", at, start-1)
	}
	p.checkNoExceptions()
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/emojicast/emojicast/internal/testutil"
)

// postComment posts a comment as user and returns the answer's status.
func postComment(t *testing.T, base, stream, user, text string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"text": text, "user": user})
	resp, err := fleetClient.Post(base+"/v1/streams/"+stream+"/comments", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct{ Status string }
	if resp.StatusCode != http.StatusAccepted || json.NewDecoder(resp.Body).Decode(&a) != nil {
		t.Fatalf("comment %q: status %d", text, resp.StatusCode)
	}
	return a.Status
}

// laneProblems returns what is wrong with the comments on a page's stage
// right now: two in one lane that overlap, or one outside the stage's
// height. It also returns how many comments are flying.
const laneProblems = `(() => {
	const box = document.getElementById("danmaku").getBoundingClientRect();
	const byLane = new Map();
	const out = [];
	const all = [...document.querySelectorAll("#danmaku .comment")];
	for (const el of all) {
		const r = el.getBoundingClientRect();
		if (r.top < box.top - 1 || r.bottom > box.bottom + 1) out.push("comment " + el.textContent + " outside the lanes");
		const lane = byLane.get(el.dataset.lane) || [];
		lane.push({ text: el.textContent, left: r.left, right: r.right, top: r.top });
		byLane.set(el.dataset.lane, lane);
	}
	for (const [lane, cs] of byLane) {
		cs.sort((a, b) => a.left - b.left);
		for (let i = 1; i < cs.length; i++) {
			if (cs[i].left < cs[i - 1].right - 0.5) out.push("lane " + lane + ": " + cs[i - 1].text + " overlaps " + cs[i].text);
			if (Math.abs(cs[i].top - cs[0].top) > 1) out.push("lane " + lane + " is not one row");
		}
	}
	return { problems: out, flying: all.length, lanes: byLane.size };
})()`

// TestDanmakuInBrowser: in headless Chromium against a real 'emojicast
// serve', a comment typed on a phone flies across a desktop viewer's
// stage, masked; a crowd of comments fills lanes right to left without any
// two overlapping, markup shown as text; and a shed comment is shown to
// its sender only.
func TestDanmakuInBrowser(t *testing.T) {
	// Alone, in the sequential phase: the lanes are checked on the
	// animation as drawn, which a machine busy with other tests' browsers
	// and fleets makes stutter.
	words := filepath.Join(t.TempDir(), "blocked.txt")
	if err := os.WriteFile(words, []byte("bad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A crowd of commenters here shares the loopback address: its group's
	// comment limit is lifted.
	base := startServe(t, "EMOJICAST_BUSY_NEXT_MS=1000", "EMOJICAST_QUIET_NEXT_MS=1000", "EMOJICAST_BLOCKED_WORDS="+words,
		"EMOJICAST_IP_COMMENT_RATE=1000", "EMOJICAST_IP_COMMENT_BURST=1000")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	viewer, sender := viewerAndSender(t, ctx)

	viewer.do(
		chromedp.EmulateViewport(960, 720),
		chromedp.Navigate(base+"/?stream=danmaku&user=bob"),
		chromedp.WaitVisible(chromedp.CSS(`#stage[data-state="live"]`)),
	)
	sender.do(
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch),
		chromedp.Navigate(base+"/?stream=danmaku&user=alice"),
		chromedp.WaitEnabled(chromedp.CSS(`#say-text`)),
		chromedp.SendKeys(chromedp.CSS(`#say-text`), "so BAD goal"),
		chromedp.Click(chromedp.CSS(`#say button`)),
	)
	testutil.Eventually(t, 10*time.Second, "the sender is told its comment was sent", func() bool {
		return eval[string](sender, `document.getElementById("say-status").textContent`) == "sent"
	})
	testutil.Eventually(t, 20*time.Second, "the masked comment flies over the viewer's stage", func() bool {
		return eval[bool](viewer, `[...document.querySelectorAll("#danmaku .comment")].some((el) => el.textContent === "so *** goal" && el.dataset.user === "alice")`)
	})
	testutil.Eventually(t, 10*time.Second, "the sender's own comment, masked, framed as its own", func() bool {
		return eval[bool](sender, `[...document.querySelectorAll("#danmaku .comment.mine")].some((el) => el.textContent === "so *** goal")`)
	})

	// A crowd: 20 comments in about a second, one of them markup.
	for i := range 20 {
		text := fmt.Sprintf("comment number %d %s", i, strings.Repeat("!", i%7))
		if i == 7 {
			text = "<b>not bold</b>"
		}
		if got := postComment(t, base, "danmaku", fmt.Sprintf("fan%d", i), text); got != "accepted" {
			t.Fatalf("comment %d: %s; want accepted under the budget", i, got)
		}
	}
	most, lanesUsed := 0, 0
	testutil.Eventually(t, 20*time.Second, "the crowd's comments fly", func() bool {
		return eval[int](viewer, `Number(document.getElementById("stat-comments").textContent)`) == 21
	})
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		var r struct {
			Problems []string
			Flying   int
			Lanes    int
		}
		raw := eval[map[string]any](viewer, laneProblems)
		b, _ := json.Marshal(raw)
		_ = json.Unmarshal(b, &r)
		if len(r.Problems) > 0 {
			viewer.stage("danmaku-overlap.png")
			t.Fatalf("comments on the stage: %s", strings.Join(r.Problems, "; "))
		}
		if r.Flying > most {
			most, lanesUsed = r.Flying, r.Lanes
			viewer.stage("danmaku.png")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if most < 8 || lanesUsed < 4 {
		t.Errorf("at most %d comments in %d lanes were flying at once; want a crowd over several lanes", most, lanesUsed)
	}
	if n := eval[int](viewer, `document.querySelectorAll("#danmaku b").length`); n != 0 {
		t.Errorf("a comment's markup became %d elements; comments are text", n)
	}

	// A comment someone else posted as bob is not framed on bob's page: a
	// user id proves nothing in the open mode.
	if got := postComment(t, base, "danmaku", "bob", "it is me, bob"); got != "accepted" {
		t.Fatalf("the impostor's comment: %s", got)
	}
	testutil.Eventually(t, 20*time.Second, "the impostor's comment flies over bob's stage", func() bool {
		return eval[bool](viewer, `[...document.querySelectorAll("#danmaku .comment")].some((el) => el.textContent === "it is me, bob")`)
	})
	if eval[bool](viewer, `[...document.querySelectorAll("#danmaku .comment.mine")].some((el) => el.textContent === "it is me, bob")`) {
		t.Error("a comment another client posted as bob was framed as bob's own on bob's page")
	}

	checkShedShownToSenderOnly(t, base, sender)
	viewer.checkNoExceptions()
	sender.checkNoExceptions()
	t.Logf("up to %d comments in %d lanes at once, never overlapping; screenshots in %s", most, lanesUsed, t.ArtifactDir())
}

// checkShedShownToSenderOnly fills a new stream's first second with 30
// comments (the budget, first come first served while its rate is
// unknown), then comments from the page in the same second: the page is
// told it was shed and shows it, marked, to its sender. A try whose
// comment fell into the next second is repeated on another stream.
func checkShedShownToSenderOnly(t *testing.T, base string, sender *page) {
	t.Helper()
	for try := range 3 {
		stream := fmt.Sprintf("shed-%d", try)
		sender.do(
			chromedp.Navigate(base+"/?stream="+stream+"&user=carol"),
			chromedp.WaitEnabled(chromedp.CSS(`#say-text`)),
			chromedp.SendKeys(chromedp.CSS(`#say-text`), "me too"),
		)
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 20*time.Millisecond)))
		for i := range 30 {
			postComment(t, base, stream, fmt.Sprintf("early%d", i), "first!")
		}
		sender.do(chromedp.Click(chromedp.CSS(`#say button`)))
		var status string
		testutil.Eventually(t, 10*time.Second, "the sender hears back", func() bool {
			status = eval[string](sender, `document.getElementById("say-status").textContent`)
			return status != ""
		})
		if status == "sent" {
			continue // it reached the next second, with room; try again
		}
		if !strings.Contains(status, "only you see") {
			t.Fatalf("after a shed comment the page says %q", status)
		}
		if !eval[bool](sender, `[...document.querySelectorAll("#danmaku .comment.shed.mine")].some((el) => el.textContent === "me too")`) {
			t.Fatal("the shed comment is not shown to its sender")
		}
		return
	}
	t.Fatal("in 3 tries the page's comment never fell in the full second")
}

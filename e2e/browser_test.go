package e2e

import (
	"context"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/emojicast/emojicast/internal/testutil"
)

func rgb(img image.Image, x, y int) (r, g, b int) {
	r32, g32, b32, _ := img.At(x, y).RGBA()
	return int(r32 >> 8), int(g32 >> 8), int(b32 >> 8)
}

// newColor counts the pixels of img that are vivid (emoji-like: saturated
// and bright, unlike the dark stage and its white text) and differ from
// the same pixel of base.
func newColor(base, img image.Image) int {
	n := 0
	bounds := img.Bounds().Intersect(base.Bounds())
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b := rgb(img, x, y)
			hi, lo := max(r, g, b), min(r, g, b)
			if hi < 120 || hi-lo < 80 {
				continue
			}
			r0, g0, b0 := rgb(base, x, y)
			if abs(r-r0)+abs(g-g0)+abs(b-b0) > 90 {
				n++
			}
		}
	}
	return n
}

// confettiColors are the colors of the confetti pieces in app.js.
var confettiColors = [][3]int{{0xff, 0x3b, 0x5c}, {0xff, 0xc4, 0x00}, {0x2e, 0xe6, 0x6b}, {0x2f, 0xa8, 0xff}, {0xb0, 0x5c, 0xff}, {0xff, 0x7a, 0x1a}}

// confettiPixels counts, per confetti color, the pixels of img close to it.
func confettiPixels(img image.Image) []int {
	counts := make([]int, len(confettiColors))
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b := rgb(img, x, y)
			for i, c := range confettiColors {
				if abs(r-c[0])+abs(g-c[1])+abs(b-c[2]) < 40 {
					counts[i]++
				}
			}
		}
	}
	return counts
}

func abs(x int) int { return max(x, -x) }

// TestWebViewerInBrowser drives two pages of the web viewer in headless
// Chromium against a real 'emojicast serve': a phone-sized page taps emoji
// buttons, a desktop page shows them rising over its stage, then confetti
// for a burst, then loses the network for 30 s and, back online, gets
// every second it missed, once. Screenshots are asserted on and kept in
// the test's artifact dir (go test -artifacts).
func TestWebViewerInBrowser(t *testing.T) {
	t.Parallel()
	base := startServe(t, "EMOJICAST_BUSY_NEXT_MS=1000", "EMOJICAST_QUIET_NEXT_MS=1000", "EMOJICAST_BURST_THRESHOLD=5")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	viewer, sender := viewerAndSender(t, ctx)

	viewer.do(
		chromedp.EmulateViewport(960, 720),
		chromedp.Navigate(base+"/?stream=browser-test&user=bob"),
		chromedp.WaitVisible(chromedp.CSS(`#stage[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[data-emoji="love"]:enabled`)),
	)
	if got := eval[string](viewer, `document.visibilityState`); got != "visible" {
		t.Fatalf("the viewer page is %q; the stage plays only while visible", got)
	}
	empty := viewer.stage("0-empty-stage.png")

	sender.do(
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch),
		chromedp.Navigate(base+"/?stream=browser-test&user=alice"),
		chromedp.WaitVisible(chromedp.CSS(`button[data-emoji="love"]:enabled`)),
	)
	checkPhoneLayout(t, sender)

	// Taps rise over the viewer's stage.
	sender.tap("love", 3)
	sender.tap("haha", 2)
	var shown image.Image
	testutil.Eventually(t, 20*time.Second, "the taps float over the viewer's stage", func() bool {
		if eval[int](viewer, `document.querySelectorAll("#stage .float").length`) == 0 {
			return false
		}
		shown = viewer.stage("1-emojis.png")
		return newColor(empty, shown) > 300
	})
	testutil.Eventually(t, 10*time.Second, "the viewer counts love 3 and haha 2", func() bool {
		r := viewer.received()
		return r["love"] == 3 && r["haha"] == 2
	})

	// A burst is one confetti effect, not a flood of single emojis.
	// The first fire confetti is frozen mid-fall and kept until its
	// screenshot is taken: it lasts about 3 s, and on a loaded machine a
	// screenshot can take longer than that.
	eval[bool](viewer, `window.fireFloats = 0; window.heldConfetti = null;
		new MutationObserver((ms) => { for (const m of ms) for (const n of m.addedNodes) {
			if (!n.classList) continue;
			if (n.classList.contains("float") && n.dataset.emoji === "fire") window.fireFloats++;
			if (n.classList.contains("confetti") && n.dataset.emoji === "fire" && !window.heldConfetti) {
				window.heldConfetti = n;
				n.remove = () => {};
				setTimeout(() => { for (const a of n.getAnimations({ subtree: true })) { a.currentTime = 700; a.pause(); } n.dataset.frozen = "1"; }, 50);
			}
		} }).observe(document.getElementById("stage"), { childList: true }); true`)
	sender.tap("fire", 20)
	testutil.Eventually(t, 20*time.Second, "confetti on the viewer's stage", func() bool {
		if eval[int](viewer, `document.querySelectorAll('#stage .confetti[data-emoji="fire"][data-frozen]').length`) == 0 {
			return false
		}
		counts := confettiPixels(viewer.stage("2-confetti.png"))
		colors := 0
		for _, n := range counts {
			if n >= 20 {
				colors++
			}
		}
		if colors < 4 {
			return false // the held confetti stays frozen for another look
		}
		eval[bool](viewer, `{ const n = window.heldConfetti; delete n.remove; n.remove(); true }`)
		return true
	})
	testutil.Eventually(t, 10*time.Second, "the viewer counts fire 20", func() bool { return viewer.received()["fire"] == 20 })
	// Taps of one send can straddle a second; seconds under the threshold
	// rightly show single emojis, seconds listed in burst must not.
	if n, want := eval[int](viewer, `window.fireFloats`), singlesDue(t, base, "browser-test", "fire"); n > want {
		t.Errorf("20 fire showed %d single fire emojis; the seconds not listed in burst call for %d", n, want)
	}

	// 30 s without network, then every second missed arrives, once.
	setOffline(t, viewer, true)
	offlineAt := time.Now()
	testutil.Eventually(t, 20*time.Second, "the viewer notices it is offline", func() bool {
		return eval[string](viewer, `document.getElementById("stage").dataset.state`) == "retrying"
	})
	sender.tap("clap", 4)
	sender.tap("wow", 2)
	status := eval[string](viewer, `document.getElementById("status").textContent`)
	if !strings.Contains(status, "connection lost") {
		t.Errorf("status while offline: %q; want it to say the connection is lost", status)
	}
	// The drop lasts 30 s by design, whatever the page does meanwhile.
	time.Sleep(time.Until(offlineAt.Add(30 * time.Second)))
	failuresOffline := eval[int](viewer, `Number(document.getElementById("stat-failures").textContent)`)
	setOffline(t, viewer, false)
	testutil.Eventually(t, 30*time.Second, "the viewer catches up after the drop", func() bool {
		r := viewer.received()
		return r["clap"] == 4 && r["wow"] == 2
	})
	if state := eval[string](viewer, `document.getElementById("stage").dataset.state`); state != "live" {
		t.Errorf("after the drop the viewer is %q; want live", state)
	}
	// 500 ms doubling to 8 s, jittered: about 7 tries in 30 s, not a storm.
	if failuresOffline < 3 || failuresOffline > 15 {
		t.Errorf("%d failed requests in 30 s offline; want a backoff (3 to 15)", failuresOffline)
	}
	want := map[string]int64{"love": 3, "haha": 2, "fire": 20, "clap": 4, "wow": 2}
	if got := viewer.received(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the viewer received %v; want exactly %v: nothing lost, nothing twice", got, want)
	}
	if sent := eval[int](sender, `Number(document.getElementById("stat-sent").textContent)`); sent != 31 {
		t.Errorf("the sender says it sent %d taps; want 31", sent)
	}
	viewer.stage("3-after-drop.png")
	viewer.checkNoExceptions()
	sender.checkNoExceptions()
	t.Logf("screenshots in %s", t.ArtifactDir())
}

// singlesDue returns how many single emojis of one id the page should show
// for a stream's last minute: its count in each second not listed in
// burst, at most 12 a second (MAX_PER_EMOJI_SECOND in app.js).
func singlesDue(t *testing.T, base, stream, emoji string) int {
	t.Helper()
	var pb pollAnswer
	getJSON(t, base+"/v1/streams/"+stream+"/reactions?since=0", &pb)
	n := 0
	for _, b := range pb.Buckets {
		if !slices.Contains(b.Burst, emoji) {
			n += int(min(b.C[emoji], 12))
		}
	}
	return n
}

// checkPhoneLayout: on a phone-sized screen nothing scrolls sideways, and
// every emoji button is on the first screen and big enough for a thumb.
func checkPhoneLayout(t *testing.T, p *page) {
	t.Helper()
	b, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), "phone.png"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	problems := eval[[]string](p, `(() => {
		const out = [];
		if (document.documentElement.scrollWidth > innerWidth) out.push("page is wider than the screen: " + document.documentElement.scrollWidth);
		const buttons = [...document.querySelectorAll(".emoji-button")];
		if (buttons.length !== 8) out.push(buttons.length + " buttons");
		for (const b of buttons) {
			const r = b.getBoundingClientRect();
			if (r.bottom > innerHeight || r.right > innerWidth) out.push(b.dataset.emoji + " is off the first screen");
			if (r.width < 44 || r.height < 44) out.push(b.dataset.emoji + " is " + r.width + "x" + r.height);
		}
		const s = document.getElementById("stage").getBoundingClientRect();
		if (s.width < innerWidth * 0.9) out.push("stage is " + s.width + " wide");
		return out;
	})()`)
	if len(problems) > 0 {
		t.Errorf("on a 390x844 phone: %s", strings.Join(problems, "; "))
	}
}

// TestWebViewerSavesData: in Chromium with the browser's data saver on
// (navigator.connection.saveData, set through DevTools as the browser's
// own setting would), the page polls at most every 3 s instead of every
// next_ms, says so, and still shows every tap once; a page beside it
// without data saver polls every second.
func TestWebViewerSavesData(t *testing.T) {
	t.Parallel()
	// The page asks for compact bodies: at the same next_ms as v1, so the
	// page without data saver polls every second.
	base := startServe(t, "EMOJICAST_BUSY_NEXT_MS=1000", "EMOJICAST_QUIET_NEXT_MS=1000", "EMOJICAST_COMPACT_MIN_NEXT_MS=1000")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	normal, saver := viewerAndSender(t, ctx)
	on := true
	if _, err := chromedp.Call(saver.ctx, emulation.SetDataSaverOverride, emulation.SetDataSaverOverrideParams{DataSaverEnabled: &on}); err != nil {
		t.Fatalf("cannot turn the browser's data saver on: %v", err)
	}
	for _, p := range []*page{normal, saver} {
		p.do(
			chromedp.Navigate(base+"/?stream=save-data&user="+p.name),
			chromedp.WaitVisible(chromedp.CSS(`#stage[data-state="live"]`)),
			chromedp.WaitVisible(chromedp.CSS(`button[data-emoji="love"]:enabled`)),
		)
	}
	if got := eval[bool](saver, `navigator.connection.saveData`); !got {
		t.Fatal("navigator.connection.saveData is false after the override")
	}
	polls := func(p *page) int { return eval[int](p, `Number(document.getElementById("stat-polls").textContent)`) }
	n0, s0 := polls(normal), polls(saver)
	start := time.Now()
	normal.tap("love", 3)
	normal.tap("fire", 2)
	time.Sleep(12 * time.Second)
	n, s := polls(normal)-n0, polls(saver)-s0
	elapsed := time.Since(start)
	t.Logf("in %v: %d polls without data saver, %d with", elapsed.Round(100*time.Millisecond), n, s)
	if maxPolls := int(elapsed/(2700*time.Millisecond)) + 1; s > maxPolls || n < 2*s {
		t.Errorf("the data-saving page polled %d times, the other %d; want at most %d (every 3 s), far fewer", s, n, maxPolls)
	}
	if got := eval[string](saver, `document.getElementById("stat-data-saver").textContent`); !strings.HasPrefix(got, "on") {
		t.Errorf("the data-saving page's stats say data saver %q", got)
	}
	if got := eval[string](normal, `document.getElementById("stat-data-saver").textContent`); got != "off" {
		t.Errorf("the other page's stats say data saver %q", got)
	}
	want := map[string]int64{"love": 3, "fire": 2}
	for _, p := range []*page{normal, saver} {
		testutil.Eventually(t, 10*time.Second, p.name+" shows every tap", func() bool { return fmt.Sprint(p.received()) == fmt.Sprint(want) })
		p.checkNoExceptions()
	}
}

package e2e

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestOpsPageInBrowser: in headless Chromium against a real 'emojicast
// serve --admin-token', an operator types the token into /admin, sees the
// stream a viewer watches among the busiest, deletes a comment that is
// flying across the viewer's stage (the viewer takes it down at once),
// bans a user and turns comments off, and the service enforces both. The
// token is kept nowhere but the page's memory.
func TestOpsPageInBrowser(t *testing.T) {
	t.Parallel()
	const secret = "ops-page-secret-0123456789"
	base := startServe(t, "EMOJICAST_ADMIN_TOKEN=ops:"+secret+",script:fleet-admin-secret-0123456789", "EMOJICAST_BUSY_NEXT_MS=1000", "EMOJICAST_QUIET_NEXT_MS=1000")
	resp, err := fleetClient.Get(base + "/admin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != http.StatusOK || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("GET /admin: %d, CSP %q; want 200 with the viewer's policy", resp.StatusCode, csp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	viewer, ops := viewerAndSender(t, ctx)
	viewer.do(
		chromedp.EmulateViewport(960, 720),
		chromedp.Navigate(base+"/?stream=match&user=bob"),
		chromedp.WaitVisible(chromedp.CSS(`#stage[data-state="live"]`)),
	)
	ops.do(
		chromedp.EmulateViewport(1200, 800),
		chromedp.Navigate(base+"/admin"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), "wrong-token-0123456789"),
		chromedp.Click(chromedp.CSS(`#login button`)),
	)
	testutil.Eventually(t, 10*time.Second, "a wrong token is refused", func() bool {
		return eval[string](ops, `document.getElementById("status").dataset.kind || ""`) == "error"
	})
	ops.do(
		chromedp.SendKeys(chromedp.CSS(`#token`), secret),
		chromedp.Click(chromedp.CSS(`#login button`)),
	)
	testutil.Eventually(t, 30*time.Second, "the watched stream is listed among the busiest", func() bool {
		return eval[bool](ops, `!!document.querySelector('#top tbody tr[data-stream="match"]')`)
	})
	ops.do(
		chromedp.Click(chromedp.CSS(`#top tbody tr[data-stream="match"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#detail`)),
	)

	// A long comment crosses the stage slowly; it is deleted mid-flight.
	spam := "buy cheap followers now " + strings.Repeat("spam ", 15)
	postComment(t, base, "match", "spammer", spam)
	testutil.Eventually(t, 20*time.Second, "the comment flies on the viewer's stage", func() bool {
		return eval[bool](viewer, `!!document.querySelector('#danmaku .comment[data-user="spammer"]')`)
	})
	testutil.Eventually(t, 20*time.Second, "the ops page lists the comment", func() bool {
		return eval[bool](ops, `!!document.querySelector('#comments li[data-id] button')`)
	})
	ops.do(chromedp.Click(chromedp.CSS(`#comments li[data-id] button`)))
	testutil.Eventually(t, 20*time.Second, "the viewer takes the deleted comment down", func() bool {
		return eval[string](viewer, `document.getElementById("stage").dataset.retracted || ""`) == "1" &&
			!eval[bool](viewer, `!!document.querySelector('#danmaku .comment[data-user="spammer"]')`)
	})
	testutil.Eventually(t, 20*time.Second, "the ops page marks it deleted", func() bool {
		return eval[bool](ops, `!!document.querySelector('#comments li.retracted')`)
	})

	// A ban from the form.
	ops.do(
		chromedp.SendKeys(chromedp.CSS(`#ban-user`), "troll"),
		chromedp.Click(chromedp.CSS(`#ban button[type="submit"]`)),
	)
	testutil.Eventually(t, 10*time.Second, "the ban is listed", func() bool {
		return eval[bool](ops, `!!document.querySelector('#bans li[data-user="troll"]')`)
	})
	testutil.Eventually(t, 5*time.Second, "the banned user's send is refused", func() bool {
		code, body := postJSON(t, &proc{url: base}, "/v1/streams/match/reactions", `{"emoji":"love","user":"troll"}`)
		return code == http.StatusForbidden && strings.Contains(body, "banned")
	})

	// An address ban from the form: any user id from that address is refused.
	eval[bool](ops, `document.getElementById("ban-kind").value = "address"; document.getElementById("ban-user").value = ""; true`)
	ops.do(
		chromedp.SendKeys(chromedp.CSS(`#ban-user`), "127.0.0.77"),
		chromedp.Click(chromedp.CSS(`#ban button[type="submit"]`)),
	)
	testutil.Eventually(t, 10*time.Second, "the address ban is listed", func() bool {
		return eval[bool](ops, `!!document.querySelector('#bans li[data-address="127.0.0.77/32"]')`)
	})
	banned := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 77)}}).DialContext}}
	defer banned.CloseIdleConnections()
	testutil.Eventually(t, 5*time.Second, "a send from the banned address is refused, whatever its user", func() bool {
		resp, err := banned.Post(base+"/v1/streams/match/reactions", "application/json", strings.NewReader(`{"emoji":"love","user":"fresh-id"}`))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusForbidden
	})

	// Comments off.
	ops.do(
		chromedp.Click(chromedp.CSS(`#set-comments`)),
		chromedp.Click(chromedp.CSS(`#settings button[type="submit"]`)),
	)
	testutil.Eventually(t, 10*time.Second, "comments are refused", func() bool {
		code, body := postJSON(t, &proc{url: base}, "/v1/streams/match/comments", `{"text":"hi","user":"fan"}`)
		return code == http.StatusForbidden && strings.Contains(body, "comments_off")
	})

	// A viewer of a stream restricted to two emojis gets their buttons only.
	code, _ := adminDo(t, &proc{url: base}, "PUT", "/v1/admin/streams/cup/settings", `{"emojis":["love","fire"]}`)
	if code != http.StatusOK {
		t.Fatalf("PUT settings: %d", code)
	}
	testutil.Eventually(t, 5*time.Second, "watch follows the settings", func() bool {
		var w struct {
			Emojis  []struct{ ID string }
			Allowed []string
		}
		getJSON(t, base+"/v1/streams/cup/watch?user=probe", &w)
		return len(w.Allowed) == 2 && len(w.Emojis) == 8
	})
	viewer.do(
		chromedp.Navigate(base+"/?stream=cup&user=bob"),
		chromedp.WaitVisible(chromedp.CSS(`#stage[data-state="live"]`)),
	)
	testutil.Eventually(t, 10*time.Second, "the viewer shows the stream's two emojis", func() bool {
		return eval[string](viewer, `[...document.querySelectorAll("#buttons button")].map((b) => b.dataset.emoji).join(",")`) == "love,fire"
	})

	// The viewer, on the same origin, keeps its recent streams; nothing
	// stored may hold the token.
	stored := eval[string](ops, `JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage), document.cookie])`)
	if strings.Contains(stored, secret) {
		t.Errorf("the token is stored by the page (%s): it must stay in memory", stored)
	}
	if url := eval[string](ops, `location.href`); strings.Contains(url, secret) {
		t.Errorf("the token is in the page's URL %s", url)
	}
	if v := eval[string](ops, `document.getElementById("token").value`); v != "" {
		t.Errorf("the token stays in its input: %q", v)
	}
	viewer.checkNoExceptions()
	ops.checkNoExceptions()
}

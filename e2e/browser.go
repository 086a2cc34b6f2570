package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/emojicast/emojicast/internal/browsertest"
)

// browser starts a headless Chromium for the test and returns a context
// for its first tab.
func browser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	return browsertest.Start(t, ctx, 1000, 800)
}

func newPage(t *testing.T, ctx context.Context, name string) *page {
	p := &page{t: t, name: name, ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() {
				p.mu.Lock()
				p.errors = append(p.errors, m.String())
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// viewerAndSender opens two pages of one browser: one watches the stage,
// the other taps.
func viewerAndSender(t *testing.T, ctx context.Context) (viewer, sender *page) {
	t.Helper()
	first := browser(t, ctx)
	viewer = newPage(t, first, "viewer")
	senderCtx, cancel := chromedp.NewContext(first)
	t.Cleanup(cancel)
	return viewer, newPage(t, senderCtx, "sender")
}

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

func eval[T any](p *page, js string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		p.t.Fatalf("%s: evaluating %s: %v", p.name, js, err)
	}
	return v
}

// received is what the page says it has received, per emoji.
func (p *page) received() map[string]int64 {
	p.t.Helper()
	raw := eval[string](p, `document.getElementById("stat-received").dataset.json || "{}"`)
	m := map[string]int64{}
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		p.t.Fatalf("%s: stat-received %q: %v", p.name, raw, err)
	}
	return m
}

// tap taps an emoji button n times, as fast as a thumb on a phone.
func (p *page) tap(emoji string, n int) {
	p.t.Helper()
	sel := `button[data-emoji="` + emoji + `"]`
	p.do(chromedp.WaitEnabled(chromedp.CSS(sel)))
	xy := eval[[]float64](p, `(() => { const r = document.querySelector('`+sel+`').getBoundingClientRect();
		return [r.x + r.width / 2, r.y + r.height / 2]; })()`)
	for range n {
		p.do(chromedp.TapXY(xy[0], xy[1]))
	}
}

// stage screenshots the stage and saves it as name in the artifact dir.
func (p *page) stage(name string) image.Image {
	p.t.Helper()
	b, err := chromedp.Run(p.ctx, chromedp.Screenshot(chromedp.ID("stage")))
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	if err := os.WriteFile(filepath.Join(p.t.ArtifactDir(), name), b, 0o644); err != nil {
		p.t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		p.t.Fatalf("%s: screenshot is not a PNG: %v", p.name, err)
	}
	return img
}

func (p *page) checkNoExceptions() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errors) > 0 {
		p.t.Errorf("%s: uncaught exceptions in the page:\n%s", p.name, strings.Join(p.errors, "\n"))
	}
}

// setOffline cuts the tab off the network, or brings it back, the way
// DevTools' offline switch does: requests fail and navigator.onLine says so.
func setOffline(t *testing.T, p *page, offline bool) {
	t.Helper()
	var rules []*network.Conditions
	if offline {
		rules = []*network.Conditions{{Offline: true, DownloadThroughput: -1, UploadThroughput: -1}}
	}
	if _, err := chromedp.Call(p.ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: rules}); err != nil {
		t.Fatalf("%s: cannot set offline=%v: %v", p.name, offline, err)
	}
	if _, err := chromedp.Call(p.ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1}); err != nil {
		t.Fatalf("%s: cannot set navigator.onLine: %v", p.name, err)
	}
}

// page is one tab of the browser, with its uncaught exceptions recorded.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu     sync.Mutex
	errors []string
}

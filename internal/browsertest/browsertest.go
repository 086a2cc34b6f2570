// Package browsertest starts the headless Chromium the page tests drive
// (the viewer and ops pages, in web/ and e2e/), one way for all of them:
// Debian's chromium, no sandbox (the tests run as root on CI), no GPU,
// no QUIC and no background fetches this machine's closed network would
// refuse, and a profile of its own in the test's temporary directory.
package browsertest

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/emojicast/emojicast/internal/testutil"
)

// Start starts Chromium for t with a window of width × height and returns
// the context of its first tab; ctx bounds them both. The browser exits
// when the test ends. Under go test -short the test is skipped
// (testutil.NeedsProgram).
func Start(t testing.TB, ctx context.Context, width, height int) context.Context {
	t.Helper()
	path := testutil.NeedsProgram(t, "chromium", "chromium-browser", "google-chrome")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("cannot start chromium: %v", err)
	}
	return tab
}

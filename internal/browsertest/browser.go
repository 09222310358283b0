// Package browsertest starts the headless Chromium that the browser tests
// (e2e/browser, examples) drive with chromedp, with one fixed set of flags,
// and gives them the few page helpers they share.
package browsertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where the tests expect the browser.
const ChromiumPath = "/usr/bin/chromium"

// New starts a headless Chromium with a fresh profile and returns a tab
// context bounded by timeout. The browser is closed when the test ends.
//
// A missing Chromium skips the test, unless SSEB_REQUIRE_BROWSER is set (to
// anything): then it fails, so that a CI run that must drive a browser
// cannot pass by skipping.
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		if os.Getenv("SSEB_REQUIRE_BROWSER") != "" {
			t.Fatalf("SSEB_REQUIRE_BROWSER is set but the browser %s is missing: %v", ChromiumPath, err)
		}
		t.Skipf("headless Chromium not found at %s (%v); install it, or set SSEB_REQUIRE_BROWSER=1 to make this a failure", ChromiumPath, err)
	}
	profile := t.TempDir()
	// Every flag is set here explicitly: chromedp's DefaultExecAllocatorOptions
	// (and its Headless/DisableGPU helpers) add more flags than these.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("user-data-dir", profile),
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
		cancelTimeout()
		// Chromium helpers can write in the profile for a moment after the
		// browser exits; remove it here, with retries, before t.TempDir's own
		// cleanup does.
		deadline := time.Now().Add(3 * time.Second)
		for {
			err := os.RemoveAll(profile)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	// Start the browser now, so that its start-up is not counted in the
	// waits of the test.
	if err := chromedp.Do(tabCtx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", ChromiumPath, err)
	}
	return tabCtx
}

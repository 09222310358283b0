package browsertest

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Eval evaluates expr in the page and decodes its result into T; an error
// fails the test.
func Eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// WaitFor evaluates the boolean expr every 30 ms until it is true, and
// fails the test when timeout ends first. what names the wait in the
// failure.
func WaitFor(t testing.TB, ctx context.Context, timeout time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !Eval[bool](t, ctx, expr) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (%s)", timeout, what, expr)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

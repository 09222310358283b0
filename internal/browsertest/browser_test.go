package browsertest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sse-broker/broker/internal/browsertest"
)

// The browser runs the page's script: Eval reads back what it computed and
// WaitFor sees a value that only appears later.
func TestNewEvalWaitFor(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>t</title><script>window.later = false; setTimeout(() => { window.later = true; }, 200);</script>`)
	}))
	t.Cleanup(srv.Close)
	ctx := browsertest.New(t, 30*time.Second)

	if got := browsertest.Eval[string](t, ctx, `location.href`); got != "about:blank" {
		t.Fatalf("a new browser is on %q, want about:blank", got)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if got := browsertest.Eval[int](t, ctx, `6 * 7`); got != 42 {
		t.Fatalf("6 * 7 evaluated to %d", got)
	}
	if got := browsertest.Eval[string](t, ctx, `location.origin`); got != srv.URL {
		t.Fatalf("page origin %q, want %q", got, srv.URL)
	}
	start := time.Now()
	browsertest.WaitFor(t, ctx, 5*time.Second, "window.later", `window.later === true`)
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("WaitFor returned after %v, past its timeout", waited)
	}
}

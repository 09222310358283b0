package examples_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// The page is served by its own file server: another port is another
// origin, as when a site embeds the snippet and the broker runs elsewhere.
// The broker allows that origin (cors.allowed_origins), as a deployment
// must; without it Chromium would refuse the EventSource.

// pageServer serves examples/browser as static files.
func pageServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir("browser")))
	t.Cleanup(srv.Close)
	return srv
}

// pageURL is the subscribe page for stream on broker with token.
func pageURL(page, broker, stream, token string, extra url.Values) string {
	q := url.Values{"broker": {broker}, "stream": {stream}, "token": {token}}
	for k, v := range extra {
		q[k] = v
	}
	return page + "/subscribe.html?" + q.Encode()
}

// pageState is what the page shows, and its EventSource's state.
type pageState struct {
	Answer     string `json:"answer"`
	Status     string `json:"status"`
	Warning    string `json:"warning"`
	WarnShown  bool   `json:"warnShown"`
	ReadyState int    `json:"readyState"`
	Events     int    `json:"events"`
	Done       bool   `json:"done"`
	Gaps       int    `json:"gaps"`
}

const pageStateJS = `(() => {
	const s = window.subscriber || {};
	const warning = document.getElementById("warning");
	return {
		answer: document.getElementById("answer").textContent,
		status: document.getElementById("status").textContent,
		warning: warning.textContent,
		warnShown: !warning.hidden,
		readyState: s.source ? s.source.readyState : -1,
		events: s.events || 0,
		done: !!s.done,
		gaps: s.gaps || 0,
	};
})()`

// TestBrowserSubscribes opens the page in headless Chromium with a
// subscribe-only token, runs the Go publisher into the stream, and checks
// that the page shows the answer as it streams, all of it, and closes its
// EventSource at stop.
func TestBrowserSubscribes(t *testing.T) {
	page := pageServer(t)
	b := startBroker(t, brokerConfig{corsOrigins: []string{page.URL}})
	const stream = "browser-1"
	// The page gets the narrowest token: subscribe, this stream only.
	pageToken := mintToken(t, nil, []string{stream})
	ctx := newBrowser(t, 60*time.Second)

	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL(page.URL, b.URL, stream, pageToken, nil))); err != nil {
		t.Fatal(err)
	}
	if origin := eval[string](t, ctx, `location.origin`); origin == b.URL || origin != page.URL {
		t.Fatalf("page origin %q; want %q, another origin than the broker's %q", origin, page.URL, b.URL)
	}
	// OPEN: connected with the token, across origins, before any event.
	waitFor(t, ctx, 10*time.Second, "the EventSource to open", `window.subscriber.source.readyState === 1`)

	rp := startPublisher(t, publishers[0], map[string]string{
		"BROKER_URL":   b.URL,
		"BROKER_TOKEN": mintToken(t, []string{stream}, nil),
		"STREAM":       stream,
		"DELAY_MS":     "40",
	})
	// Sample the page while the answer streams in.
	var (
		lengths []int
		st      pageState
	)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st = eval[pageState](t, ctx, pageStateJS)
		if n := len(st.Answer); len(lengths) == 0 || lengths[len(lengths)-1] != n {
			lengths = append(lengths, n)
		}
		if st.Done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page did not reach stop in 30 s: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	run := rp.wait(t)

	// st is the first state seen after stop: the page must have closed its
	// EventSource itself (one left open would be OPEN or CONNECTING here,
	// and reconnect after the retry interval to hear 204).
	if st.Answer != answer {
		t.Errorf("the page shows %q, want the answer %q", st.Answer, answer)
	}
	if st.Events != len(run.Tokens) {
		t.Errorf("the page counted %d token events, the publisher published %d", st.Events, len(run.Tokens))
	}
	if st.ReadyState != 2 {
		t.Errorf("EventSource readyState %d after stop, want 2 (CLOSED)", st.ReadyState)
	}
	if st.WarnShown || st.Gaps != 0 {
		t.Errorf("a gap warning without lost events: %+v", st)
	}
	if !strings.Contains(st.Status, run.StopID) {
		t.Errorf("status %q does not name the stop id %s", st.Status, run.StopID)
	}
	// Token by token: the text grew through several lengths, not at once.
	if len(lengths) < 4 {
		t.Errorf("the answer's length took %d values while streaming (%v), want it to grow token by token", len(lengths), lengths)
	}
	t.Logf("answer lengths seen: %v", lengths)

}

// TestBrowserGapWarning resumes the page (last=) after an event the broker
// no longer keeps: the page must say so, then show what is left.
func TestBrowserGapWarning(t *testing.T) {
	page := pageServer(t)
	const maxEvents = 6
	b := startBroker(t, brokerConfig{corsOrigins: []string{page.URL}, maxEvents: maxEvents})
	const stream = "browser-gap"
	token := mintToken(t, []string{stream}, []string{stream})
	ctx := newBrowser(t, 60*time.Second)

	run := startPublisher(t, publishers[0], map[string]string{
		"BROKER_URL": b.URL, "BROKER_TOKEN": token, "STREAM": stream, "DELAY_MS": "0",
	}).wait(t)
	kept, _ := history(t, b.URL, token, stream)
	if len(kept) != maxEvents || kept[len(kept)-1].Event != "stop" {
		t.Fatalf("history keeps %d events (%+v), want the last %d ending with stop", len(kept), kept, maxEvents)
	}
	var rest strings.Builder // the tokens still kept
	for _, ev := range kept[:len(kept)-1] {
		rest.WriteString(ev.Data)
	}

	// Resume after the first token: the tokens after it up to the
	// retained ones are gone.
	resume := run.Tokens[0].ID
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL(page.URL, b.URL, stream, token, url.Values{"last": {resume}}))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 10*time.Second, "stop", `window.subscriber.done === true`)
	st := eval[pageState](t, ctx, pageStateJS)
	if !st.WarnShown || st.Gaps != 1 || !strings.Contains(st.Warning, "lost") || !strings.Contains(st.Warning, resume) || !strings.Contains(st.Warning, kept[0].ID) {
		t.Errorf("after a gap the page shows warning %q (shown %v, gaps %d); want one that says tokens were lost after %s and history starts at %s",
			st.Warning, st.WarnShown, st.Gaps, resume, kept[0].ID)
	}
	if st.Answer != rest.String() {
		t.Errorf("the page shows %q after the gap, want the kept tokens %q", st.Answer, rest.String())
	}
	if st.ReadyState != 2 {
		t.Errorf("EventSource readyState %d after stop, want 2 (CLOSED)", st.ReadyState)
	}
}

// newBrowser starts a headless Chromium with a fresh profile and returns a
// tab context bounded by timeout (the pattern of e2e/browser). Missing
// Chromium fails the test under SSEB_REQUIRE_BROWSER, else skips it.
func newBrowser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("SSEB_REQUIRE_BROWSER") != "" {
			t.Fatalf("SSEB_REQUIRE_BROWSER is set but the browser %s is missing: %v", chromiumPath, err)
		}
		t.Skipf("headless Chromium not found at %s (%v); install it, or set SSEB_REQUIRE_BROWSER=1 to make this a failure", chromiumPath, err)
	}
	profile := t.TempDir()
	// Every flag is set here explicitly: chromedp's DefaultExecAllocatorOptions
	// add more flags than these.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
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
		// browser exits; remove it with retries before t.TempDir's cleanup.
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
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return tabCtx
}

// eval evaluates expr in the page and decodes its result into T.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor evaluates the boolean expr every 30 ms until it is true or the
// timeout ends.
func waitFor(t *testing.T, ctx context.Context, timeout time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !eval[bool](t, ctx, expr) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (%s)", timeout, what, expr)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

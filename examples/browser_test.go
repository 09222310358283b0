package examples_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sse-broker/broker/internal/browsertest"
)

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
	ctx := browsertest.New(t, 60*time.Second)

	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL(page.URL, b.URL, stream, pageToken, nil))); err != nil {
		t.Fatal(err)
	}
	if origin := browsertest.Eval[string](t, ctx, `location.origin`); origin == b.URL || origin != page.URL {
		t.Fatalf("page origin %q; want %q, another origin than the broker's %q", origin, page.URL, b.URL)
	}
	// OPEN: connected with the token, across origins, before any event.
	browsertest.WaitFor(t, ctx, 10*time.Second, "the EventSource to open", `window.subscriber.source.readyState === 1`)

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
		st = browsertest.Eval[pageState](t, ctx, pageStateJS)
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
	ctx := browsertest.New(t, 60*time.Second)

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
	browsertest.WaitFor(t, ctx, 10*time.Second, "stop", `window.subscriber.done === true`)
	st := browsertest.Eval[pageState](t, ctx, pageStateJS)
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

	// Resumed at the stop itself there is nothing to show: the broker
	// answers 204, and the page says the stream is over, not "failed".
	stopID := kept[len(kept)-1].ID
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL(page.URL, b.URL, stream, token, url.Values{"last": {stopID}}))); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, 10*time.Second, "the page to settle", `window.subscriber.done === true || document.getElementById("status").textContent.startsWith("failed")`)
	if st := browsertest.Eval[pageState](t, ctx, pageStateJS); !strings.Contains(st.Status, "the stream was closed") || st.Events != 0 {
		t.Errorf("resumed at stop, the page shows %q with %d events; want that the stream was closed", st.Status, st.Events)
	}
}

// Package browser drives the demo page and the broker's SSE endpoint with a
// real headless Chromium: token-by-token streaming, the stop at `stop`, the
// 204 that ends an EventSource, and resuming with Last-Event-ID after a
// dropped connection.
package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sse-broker/broker/internal/browsertest"
	"github.com/sse-broker/broker/internal/testbroker"
)

// retry is the broker's SSE retry in these tests, so that reconnects (and the
// absence of reconnects) show quickly.
const retry = 300 * time.Millisecond

// ---------------------------------------------------------------------------
// Counting reverse proxy

// eventsRequest is one GET .../events request that went through the proxy.
type eventsRequest struct {
	stream      string
	lastEventID string
}

// proxy sits between the browser and the test broker. It counts the
// subscribe requests per stream, records their Last-Event-ID header, and can
// cut the current subscribe connections of a stream.
type proxy struct {
	URL string

	mu       sync.Mutex
	requests []eventsRequest
	active   map[string]map[int]context.CancelFunc // stream -> request no -> cancel
}

func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport:     transport,
		FlushInterval: -1,
		// A cut connection is an expected copy error; keep the log quiet.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p := &proxy{active: map[string]map[int]context.CancelFunc{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream, ok := eventsStream(r)
		if !ok {
			rp.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		p.mu.Lock()
		n := len(p.requests)
		p.requests = append(p.requests, eventsRequest{stream: stream, lastEventID: r.Header.Get("Last-Event-ID")})
		if p.active[stream] == nil {
			p.active[stream] = map[int]context.CancelFunc{}
		}
		p.active[stream][n] = cancel
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			delete(p.active[stream], n)
			p.mu.Unlock()
		}()
		rp.ServeHTTP(w, r.WithContext(ctx))
	}))
	p.URL = srv.URL
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		transport.CloseIdleConnections()
	})
	return p
}

// flushingProxy is a reverse proxy to the broker at brokerURL that passes
// every write on at once, as a proxy in front of an event stream must: the
// tests put their faults in front of it.
func flushingProxy(t *testing.T, brokerURL string) *httputil.ReverseProxy {
	t.Helper()
	target, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	return proxy
}

// eventsStream reports the stream of a GET /v1/streams/{stream}/events.
func eventsStream(r *http.Request) (string, bool) {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/events") {
		return "", false
	}
	s := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/streams/"), "/events")
	return s, s != "" && !strings.Contains(s, "/")
}

// eventsRequests returns the subscribe requests seen for stream, in order.
func (p *proxy) eventsRequests(stream string) []eventsRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []eventsRequest
	for _, r := range p.requests {
		if r.stream == stream {
			out = append(out, r)
		}
	}
	return out
}

// cut ends every subscribe connection of stream that is open now, and
// reports how many it ended. It returns once their proxy handlers have:
// cancelling only starts the end, and an event published just after the
// cancel could still reach the browser on the old connection.
func (p *proxy) cut(stream string) int {
	p.mu.Lock()
	var ended []int
	for n, cancel := range p.active[stream] {
		cancel()
		ended = append(ended, n)
	}
	p.mu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		p.mu.Lock()
		open := 0
		for _, n := range ended {
			if _, ok := p.active[stream][n]; ok {
				open++
			}
		}
		p.mu.Unlock()
		if open == 0 {
			break
		}
	}
	return len(ended)
}

// ---------------------------------------------------------------------------
// Waiting on the Go side (the page side is browsertest.WaitFor)

// waitUntil polls cond in Go every 20 ms until it is true or the timeout ends.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Plain HTTP to the broker

func post(t *testing.T, base, path, contentType, body string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("POST %s: reading body: %v", path, err)
	}
	return res.StatusCode, data
}

// publish publishes one raw event and returns its id.
func publish(t *testing.T, base, stream, data string) string {
	t.Helper()
	status, body := post(t, base, "/v1/streams/"+stream+"/messages", "text/plain", data)
	if status != http.StatusCreated {
		t.Fatalf("publish to %s: status %d, body %s", stream, status, body)
	}
	var res struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(body, &res); err != nil || len(res.IDs) != 1 {
		t.Fatalf("publish to %s: body %s: %v", stream, body, err)
	}
	return res.IDs[0]
}

// closeStream closes a stream and returns the id of its stop event.
func closeStream(t *testing.T, base, stream string) string {
	t.Helper()
	status, body := post(t, base, "/v1/streams/"+stream+"/close", "", "")
	if status != http.StatusOK {
		t.Fatalf("close %s: status %d, body %s", stream, status, body)
	}
	var res struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(body, &res); err != nil || len(res.IDs) != 1 {
		t.Fatalf("close %s: body %s: %v", stream, body, err)
	}
	return res.IDs[0]
}

// ---------------------------------------------------------------------------
// The demo page

// ask types question into the demo page and sends it.
func ask(t *testing.T, ctx context.Context, question string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.WaitEnabled(chromedp.ID("send")),
		chromedp.SendKeys(chromedp.ID("message"), question),
		chromedp.Click(chromedp.ID("send")),
	); err != nil {
		t.Fatalf("asking %q: %v", question, err)
	}
}

type bubbleSample struct {
	Len   int    `json:"len"`
	State string `json:"state"`
	Send  bool   `json:"send"` // the Send button is enabled
}

func TestDemoStreamsAnswer(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{DemoTokenDelay: 40 * time.Millisecond, Retry: retry})
	p := startProxy(t, b.URL)
	ctx := browsertest.New(t, 40*time.Second)

	if err := chromedp.Do(ctx, chromedp.Navigate(p.URL+"/")); err != nil {
		t.Fatal(err)
	}
	const question = "Does the answer stream token by token?"
	start := time.Now()
	ask(t, ctx, question)

	// Sample the last assistant bubble while the answer streams in.
	const sampleJS = `(() => {
		const all = document.querySelectorAll(".msg.assistant");
		const el = all[all.length - 1];
		const send = !document.getElementById("send").disabled;
		return el ? {len: el.textContent.length, state: el.dataset.state || "", send} : {len: -1, state: "", send};
	})()`
	var samples []bubbleSample
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := browsertest.Eval[bubbleSample](t, ctx, sampleJS)
		samples = append(samples, s)
		if s.State == "done" || s.State == "error" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the answer did not finish in 15 s; last sample %+v", s)
		}
		time.Sleep(30 * time.Millisecond)
	}
	t.Logf("answer streamed in %v, %d samples", time.Since(start).Round(time.Millisecond), len(samples))
	last := samples[len(samples)-1]
	if last.State != "done" {
		t.Fatalf("data-state ended %q, want done", last.State)
	}
	// Send stays off while the answer streams (a second question would
	// take the page's one conversation from under it), and comes back
	// with the end.
	for _, s := range samples {
		if s.State == "streaming" && s.Send {
			t.Fatalf("the Send button was enabled while the answer streamed: sample %+v", s)
		}
	}
	if !last.Send {
		t.Fatal("the Send button is still disabled after the answer ended")
	}

	// The text only grows, through several intermediate lengths.
	var distinct []int
	prev := 0
	for _, s := range samples {
		if s.Len < 0 { // the submit handler has not made the bubble yet
			continue
		}
		if s.Len < prev {
			t.Fatalf("the answer shrank from %d to %d characters: samples %v", prev, s.Len, samples)
		}
		prev = s.Len
		if s.State == "streaming" && s.Len > 0 && !slices.Contains(distinct, s.Len) {
			distinct = append(distinct, s.Len)
		}
	}
	if len(distinct) < 5 {
		t.Fatalf("saw %d distinct non-empty lengths while streaming (%v), want at least 5: the answer did not arrive token by token", len(distinct), distinct)
	}
	t.Logf("distinct lengths while streaming: %v; final %d", distinct, last.Len)

	text := browsertest.Eval[string](t, ctx, `(() => { const a = document.querySelectorAll(".msg.assistant"); return a[a.length-1].textContent; })()`)
	if !strings.Contains(text, "You asked") || !strings.Contains(text, question) {
		t.Fatalf("answer %q does not echo the question %q", text, question)
	}

	type demoState struct {
		Done       bool   `json:"done"`
		Stream     string `json:"stream"`
		ReadyState int    `json:"readyState"`
		Events     int    `json:"events"`
	}
	const stateJS = `({done: window.demo.done, stream: window.demo.stream, readyState: window.demo.source ? window.demo.source.readyState : -1, events: window.demo.events})`
	st := browsertest.Eval[demoState](t, ctx, stateJS)
	if !st.Done || st.ReadyState != 2 || st.Stream == "" {
		t.Fatalf("window.demo after the answer: %+v, want done, readyState 2 (CLOSED) and a stream", st)
	}

	// Wait well past the retry interval: the closed EventSource must not
	// come back.
	time.Sleep(3 * retry)
	if got := p.eventsRequests(st.Stream); len(got) != 1 {
		t.Fatalf("the events URL of stream %s was requested %d times, want 1 (no reconnect after stop): %+v", st.Stream, len(got), got)
	}
	if st2 := browsertest.Eval[demoState](t, ctx, stateJS); st2.ReadyState != 2 || st2.Events != st.Events {
		t.Fatalf("window.demo changed after the answer ended: %+v, was %+v", st2, st)
	}

	// The final status counts the answer's tokens and names the id of its
	// stop, as the broker holds them (every event but the stop is a token).
	code, _, body := b.Do(t, http.MethodGet, "/v1/streams/"+st.Stream, nil, "")
	var info struct {
		LastID   string `json:"last_id"`
		Retained int    `json:"retained"`
	}
	if err := json.Unmarshal([]byte(body), &info); code != http.StatusOK || err != nil {
		t.Fatalf("stream info: %d %s: %v", code, body, err)
	}
	want := fmt.Sprintf("done · %d tokens · last id %s", info.Retained-1, info.LastID)
	if got := browsertest.Eval[string](t, ctx, `[...document.querySelectorAll(".msg.status")].pop().textContent`); got != want {
		t.Fatalf("the final status says %q, want %q", got, want)
	}
}

func TestDemoSecondQuestionNewConversation(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{DemoTokenDelay: 10 * time.Millisecond, Retry: retry})
	p := startProxy(t, b.URL)
	ctx := browsertest.New(t, 40*time.Second)

	if err := chromedp.Do(ctx, chromedp.Navigate(p.URL+"/")); err != nil {
		t.Fatal(err)
	}
	const q1, q2 = "first question", "second question"

	ask(t, ctx, q1)
	browsertest.WaitFor(t, ctx, 15*time.Second, "the first answer", `window.demo.conversations === 1 && window.demo.done === true`)
	stream1 := browsertest.Eval[string](t, ctx, `window.demo.stream`)
	answer1 := browsertest.Eval[string](t, ctx, `document.querySelectorAll(".msg.assistant")[0].textContent`)
	if !strings.Contains(answer1, q1) {
		t.Fatalf("first answer %q does not echo %q", answer1, q1)
	}

	ask(t, ctx, q2)
	browsertest.WaitFor(t, ctx, 15*time.Second, "the second answer", `window.demo.conversations === 2 && window.demo.done === true`)
	stream2 := browsertest.Eval[string](t, ctx, `window.demo.stream`)
	if stream2 == "" || stream2 == stream1 {
		t.Fatalf("the second question used stream %q, the first %q: want a new conversation", stream2, stream1)
	}

	type bubble struct {
		Text  string `json:"text"`
		State string `json:"state"`
	}
	bubbles := browsertest.Eval[[]bubble](t, ctx, `Array.from(document.querySelectorAll(".msg.assistant"), el => ({text: el.textContent, state: el.dataset.state || ""}))`)
	if len(bubbles) != 2 {
		t.Fatalf("%d assistant bubbles, want 2: %+v", len(bubbles), bubbles)
	}
	for i, bb := range bubbles {
		if bb.State != "done" {
			t.Errorf("assistant bubble %d has data-state %q, want done", i+1, bb.State)
		}
	}
	if bubbles[0].Text != answer1 {
		t.Errorf("the first answer changed after the second question:\nbefore %q\nafter  %q", answer1, bubbles[0].Text)
	}
	if !strings.Contains(bubbles[1].Text, q2) || strings.Contains(bubbles[1].Text, q1) {
		t.Errorf("second answer %q should echo %q only", bubbles[1].Text, q2)
	}
	if readyState := browsertest.Eval[int](t, ctx, `window.demo.source.readyState`); readyState != 2 {
		t.Errorf("second EventSource readyState %d, want 2 (CLOSED)", readyState)
	}
	for _, s := range []string{stream1, stream2} {
		if n := len(p.eventsRequests(s)); n != 1 {
			t.Errorf("stream %s was subscribed %d times, want 1", s, n)
		}
	}
}

// ---------------------------------------------------------------------------
// EventSource against the subscribe endpoint

// recorderJS opens an EventSource on url and records what it receives in
// window.rec. It never closes the EventSource itself.
func recorderJS(url string) string {
	u, _ := json.Marshal(url)
	return fmt.Sprintf(`(() => {
		const rec = {types: [], ids: [], data: [], opens: 0, errors: 0};
		window.rec = rec;
		const es = new EventSource(%s);
		window.es = es;
		es.onopen = () => { rec.opens++; };
		es.onerror = () => { rec.errors++; };
		es.onmessage = (e) => { rec.types.push(e.type); rec.ids.push(e.lastEventId); rec.data.push(e.data); };
		es.addEventListener("stop", (e) => { rec.types.push(e.type); rec.ids.push(e.lastEventId); rec.data.push(e.data); });
		es.addEventListener("gap", (e) => { rec.types.push(e.type); rec.ids.push(e.lastEventId); rec.data.push(e.data); });
		return true;
	})()`, u)
}

type record struct {
	Types  []string `json:"types"`
	IDs    []string `json:"ids"`
	Data   []string `json:"data"`
	Opens  int      `json:"opens"`
	Errors int      `json:"errors"`
}

func TestEventSourceStopsOn204(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Retry: retry})
	p := startProxy(t, b.URL)
	ctx := browsertest.New(t, 40*time.Second)

	const stream = "browser-stop-204"
	id1 := publish(t, b.URL, stream, "a")
	id2 := publish(t, b.URL, stream, "b")
	stopID := closeStream(t, b.URL, stream)

	if err := chromedp.Do(ctx, chromedp.Navigate(p.URL+"/")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	browsertest.Eval[bool](t, ctx, recorderJS("/v1/streams/"+stream+"/events"))
	browsertest.WaitFor(t, ctx, 5*time.Second, "EventSource CLOSED", `window.es.readyState === 2`)
	t.Logf("EventSource closed %v after it opened", time.Since(start).Round(time.Millisecond))

	// Give a wrongly reconnecting EventSource time to show itself.
	time.Sleep(3 * retry)
	rec := browsertest.Eval[record](t, ctx, `window.rec`)
	wantTypes := []string{"message", "message", "stop"}
	wantIDs := []string{id1, id2, stopID}
	if !slices.Equal(rec.Types, wantTypes) || !slices.Equal(rec.IDs, wantIDs) {
		t.Fatalf("page received types %v ids %v, want %v %v", rec.Types, rec.IDs, wantTypes, wantIDs)
	}
	if !slices.Equal(rec.Data[:2], []string{"a", "b"}) {
		t.Fatalf("page received data %q, want a, b", rec.Data)
	}
	if rs := browsertest.Eval[int](t, ctx, `window.es.readyState`); rs != 2 {
		t.Fatalf("readyState %d, want 2 (CLOSED)", rs)
	}
	reqs := p.eventsRequests(stream)
	if len(reqs) != 2 {
		t.Fatalf("the events URL was requested %d times, want 2 (first connection + one reconnect answered 204): %+v", len(reqs), reqs)
	}
	if reqs[0].lastEventID != "" || reqs[1].lastEventID != stopID {
		t.Fatalf("Last-Event-ID of the requests: %q then %q, want none then %q (the stop id)", reqs[0].lastEventID, reqs[1].lastEventID, stopID)
	}
}

func TestEventSourceResumesAfterDrop(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Retry: retry})
	p := startProxy(t, b.URL)
	ctx := browsertest.New(t, 40*time.Second)

	const stream = "browser-resume"
	const total, cutAfter = 12, 5

	if err := chromedp.Do(ctx, chromedp.Navigate(p.URL+"/")); err != nil {
		t.Fatal(err)
	}
	browsertest.Eval[bool](t, ctx, recorderJS("/v1/streams/"+stream+"/events"))
	browsertest.WaitFor(t, ctx, 5*time.Second, "EventSource OPEN", `window.es.readyState === 1`)

	var ids []string
	pub := func(i int) {
		ids = append(ids, publish(t, b.URL, stream, fmt.Sprintf("event %d", i)))
		time.Sleep(30 * time.Millisecond)
	}
	for i := 1; i <= cutAfter; i++ {
		pub(i)
	}
	browsertest.WaitFor(t, ctx, 5*time.Second, fmt.Sprintf("%d events before the cut", cutAfter), fmt.Sprintf(`window.rec.ids.length === %d`, cutAfter))
	lastBeforeCut := ids[cutAfter-1]

	if n := p.cut(stream); n != 1 {
		t.Fatalf("cut %d open subscribe connections, want 1", n)
	}
	cutAt := time.Now()
	// Publish some events while the browser is away: it must get them from
	// history when it comes back.
	for i := cutAfter + 1; i <= cutAfter+3; i++ {
		pub(i)
	}
	waitUntil(t, 5*time.Second, "the browser to reconnect", func() bool { return len(p.eventsRequests(stream)) >= 2 })
	t.Logf("browser reconnected %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	for i := cutAfter + 4; i <= total; i++ {
		pub(i)
	}
	browsertest.WaitFor(t, ctx, 5*time.Second, "every event", fmt.Sprintf(`window.rec.ids.length >= %d`, total))
	time.Sleep(100 * time.Millisecond) // a duplicate would show up now

	rec := browsertest.Eval[record](t, ctx, `window.rec`)
	if !slices.Equal(rec.IDs, ids) {
		t.Fatalf("page received ids %v, want each published id once, in order: %v", rec.IDs, ids)
	}
	for i, d := range rec.Data {
		if want := fmt.Sprintf("event %d", i+1); d != want || rec.Types[i] != "message" {
			t.Fatalf("event %d: type %q data %q, want message %q", i+1, rec.Types[i], d, want)
		}
	}
	if rec.Opens != 2 || rec.Errors != 1 {
		t.Errorf("EventSource opened %d times with %d errors, want 2 opens and 1 error (one drop)", rec.Opens, rec.Errors)
	}
	reqs := p.eventsRequests(stream)
	if len(reqs) != 2 {
		t.Fatalf("the events URL was requested %d times, want 2: %+v", len(reqs), reqs)
	}
	if reqs[0].lastEventID != "" {
		t.Errorf("first request carried Last-Event-ID %q, want none", reqs[0].lastEventID)
	}
	if reqs[1].lastEventID != lastBeforeCut {
		t.Fatalf("reconnect carried Last-Event-ID %q, want %q (the last id received before the cut)", reqs[1].lastEventID, lastBeforeCut)
	}
	if rs := browsertest.Eval[int](t, ctx, `window.es.readyState`); rs != 1 {
		t.Errorf("readyState %d after the resume, want 1 (OPEN)", rs)
	}
}

// ---------------------------------------------------------------------------
// The demo page when an answer does not arrive whole

// demoStatus is the last conversation's bubbles as the page shows them.
type demoStatus struct {
	State  string `json:"state"`
	Status string `json:"status"`
	Lost   int    `json:"lost"` // gap marks in the answer
	Busy   bool   `json:"busy"`
	Send   bool   `json:"send"` // the Send button is enabled
}

const demoStatusJS = `(() => {
	const a = document.querySelectorAll(".msg.assistant"), s = document.querySelectorAll(".msg.status");
	const el = a[a.length - 1];
	return {state: el.dataset.state || "", status: s[s.length - 1].textContent, lost: el.querySelectorAll(".lost").length,
		busy: el.hasAttribute("aria-busy"), send: !document.getElementById("send").disabled};
})()`

// waitForEnd waits until the last answer is no longer streaming.
func waitForEnd(t *testing.T, ctx context.Context) demoStatus {
	t.Helper()
	browsertest.WaitFor(t, ctx, 20*time.Second, "the answer to end", `(() => {
		const a = document.querySelectorAll(".msg.assistant");
		return a.length > 0 && a[a.length - 1].dataset.state !== "streaming";
	})()`)
	return browsertest.Eval[demoStatus](t, ctx, demoStatusJS)
}

// Tokens the page missed beyond history are marked where they are missing,
// and the finished answer still says so: loss is never silent. The
// connection is cut early in the answer, and the browser comes back (after
// retry) when the rest, stop included, is published and all but the last
// three events have left history.
func TestDemoMarksLostTokens(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{DemoTokenDelay: 40 * time.Millisecond, Retry: 3 * time.Second, MaxEvents: 3})
	p := startProxy(t, b.URL)
	ctx := browsertest.New(t, 40*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(p.URL+"/")); err != nil {
		t.Fatal(err)
	}
	ask(t, ctx, "What if my connection drops?")
	browsertest.WaitFor(t, ctx, 10*time.Second, "a few tokens", `window.demo.events >= 3`)
	stream := browsertest.Eval[string](t, ctx, `window.demo.stream`)
	if n := p.cut(stream); n != 1 {
		t.Fatalf("cut %d subscribe connections, want 1", n)
	}
	st := waitForEnd(t, ctx)
	if st.State != "done" || st.Lost != 1 || !strings.Contains(st.Status, "tokens were lost") || st.Busy || !st.Send {
		t.Fatalf("after a gap the page shows %+v, want done with one loss mark, the loss in the status, not busy, Send enabled", st)
	}
	if reqs := p.eventsRequests(stream); len(reqs) != 2 || reqs[1].lastEventID == "" {
		t.Fatalf("subscribe requests %+v, want a resume after the cut", reqs)
	}
}

// openDemo starts a broker whose demo answers a token every tokenDelay and
// opens its demo page in a browser.
func openDemo(t *testing.T, tokenDelay time.Duration) (*testbroker.Broker, context.Context) {
	t.Helper()
	b := testbroker.Start(t, testbroker.Options{DemoTokenDelay: tokenDelay, Retry: retry})
	ctx := browsertest.New(t, 40*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(b.URL+"/")); err != nil {
		t.Fatal(err)
	}
	return b, ctx
}

// An answer whose stop says "interrupted" (the broker stopped it: a
// shutdown, a store error) is not shown as complete.
func TestDemoShowsAnInterruptedAnswer(t *testing.T) {
	b, ctx := openDemo(t, 300*time.Millisecond)
	ask(t, ctx, "Will this finish?")
	browsertest.WaitFor(t, ctx, 10*time.Second, "a token", `window.demo.events >= 1`)
	stream := browsertest.Eval[string](t, ctx, `window.demo.stream`)
	if status, body := post(t, b.URL, "/v1/streams/"+stream+"/close", "application/json", `{"data":"interrupted"}`); status != http.StatusOK {
		t.Fatalf("close: %d %s", status, body)
	}
	st := waitForEnd(t, ctx)
	if st.State != "error" || !strings.Contains(st.Status, "interrupted after") || !st.Send {
		t.Fatalf("after an interrupted answer the page shows %+v, want the error state, \"interrupted after\", Send enabled", st)
	}
}

// An answer that stops sending (its broker crashed mid-answer, or came
// back without the stream) does not hold the page for good: after
// window.demo.idleMs without an event it says so and takes questions
// again. Here the tokens come slower than the page waits.
func TestDemoGivesUpOnASilentAnswer(t *testing.T) {
	_, ctx := openDemo(t, 10*time.Second)
	browsertest.Eval[int](t, ctx, `window.demo.idleMs = 1500`)
	ask(t, ctx, "Hello?")
	st := waitForEnd(t, ctx)
	if st.State != "error" || !strings.Contains(st.Status, "the answer stopped") || !st.Send || st.Busy {
		t.Fatalf("a silent answer leaves the page showing %+v, want the error state, \"the answer stopped\", Send enabled", st)
	}
	if rs := browsertest.Eval[int](t, ctx, `window.demo.source.readyState`); rs != 2 {
		t.Fatalf("the EventSource of the silent answer is in readyState %d, want 2 (CLOSED)", rs)
	}
}

// A question that is markup stays text: in the question's bubble and in
// the answer that echoes it, token by token. The question has no space, so
// the answer carries it in one token.
func TestDemoShowsMarkupAsText(t *testing.T) {
	_, ctx := openDemo(t, 10*time.Millisecond)
	const question = `<svg/onload=window.pwned=1>`
	ask(t, ctx, question)
	if st := waitForEnd(t, ctx); st.State != "done" {
		t.Fatalf("the answer ended %+v, want done", st)
	}
	type shown struct {
		Question string `json:"question"`
		Answer   string `json:"answer"`
		Elements int    `json:"elements"` // elements in the two bubbles
		Pwned    bool   `json:"pwned"`
	}
	got := browsertest.Eval[shown](t, ctx, `(() => {
		const q = document.querySelector(".msg.user"), a = document.querySelector(".msg.assistant");
		return {question: q.textContent, answer: a.textContent, elements: q.querySelectorAll("*").length + a.querySelectorAll("*").length,
			pwned: window.pwned === 1};
	})()`)
	if got.Pwned || got.Elements != 0 {
		t.Fatalf("the question was put in the page as HTML: %+v", got)
	}
	if got.Question != question || !strings.Contains(got.Answer, "“"+question+"”") {
		t.Fatalf("the page shows the question %q and the answer %q, want the question as typed in both", got.Question, got.Answer)
	}
}

// An answer longer than window.demo.idleMs is not given up while its
// tokens keep coming: each one restarts the wait.
func TestDemoLongAnswerOutlivesTheIdleWait(t *testing.T) {
	_, ctx := openDemo(t, 100*time.Millisecond) // ~50 tokens: about 5 s
	browsertest.Eval[int](t, ctx, `window.demo.idleMs = 1000`)
	ask(t, ctx, "Will a long answer finish?")
	st := waitForEnd(t, ctx)
	if st.State != "done" || !strings.HasPrefix(st.Status, "done · ") {
		t.Fatalf("an answer whose tokens come every 100 ms, with an idle wait of 1 s, ends %+v, want done", st)
	}
}

// The example subscriber page (examples/browser) whose first connection is
// refused once (a proxy's 503 while the broker restarts) asks the broker
// why, meets a live stream instead, hangs it up and says so: it does not
// wait on that stream for good with its status unchanged.
func TestExampleSubscriberAfterAPassingRefusal(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Retry: retry})
	const stream = "example-refused-once"
	publish(t, b.URL, stream, "token")
	proxy := flushingProxy(t, b.URL)
	var subscribes atomic.Int32
	mux := http.NewServeMux()
	mux.Handle("/subscribe.html", http.FileServer(http.Dir("../../examples/browser")))
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") && subscribes.Add(1) == 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"store_unavailable","message":"restarting"}`))
			return
		}
		proxy.ServeHTTP(w, r)
	})
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)
	ctx := browsertest.New(t, 40*time.Second)
	page := front.URL + "/subscribe.html?" + url.Values{"broker": {front.URL}, "stream": {stream}}.Encode()
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, 10*time.Second, "the page to say the broker answers now",
		`document.getElementById("status").textContent.includes("the broker answers now")`)
}

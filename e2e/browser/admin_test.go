package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sse-broker/broker/internal/browsertest"
	"github.com/sse-broker/broker/internal/testbroker"
)

// holdSubscriber keeps a subscription to stream open until the test ends,
// so the operator's page has a subscriber to count. header may carry a
// token.
func holdSubscriber(t *testing.T, base, stream string, header http.Header) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/streams/"+stream+"/events", nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("subscribe to %s: %v", stream, err)
	}
	t.Cleanup(func() { cancel(); res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("subscribe to %s: status %d", stream, res.StatusCode)
	}
}

// rowShowsJS is true once the streams table has a row for stream with the
// given subscriber count and last id.
func rowShowsJS(stream string, subscribers int, lastID string) string {
	s, _ := json.Marshal(stream)
	id, _ := json.Marshal(lastID)
	return fmt.Sprintf(`(() => {
		const tr = Array.from(document.querySelectorAll("#streams tr")).find(tr => tr.dataset.stream === %s);
		return !!tr && tr.querySelector(".subscribers").textContent === "%d" && tr.querySelector(".last-id").textContent === %s;
	})()`, s, subscribers, id)
}

// clickRow clicks the row of stream in the streams table.
func clickRow(t *testing.T, ctx context.Context, stream string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#streams tr[data-stream=%q] td.stream`, stream)))); err != nil {
		t.Fatalf("clicking the row of %s: %v", stream, err)
	}
}

// chooseRow clicks the row of stream from within the page. With several
// streams, a mouse click (clickRow) can land on another row: the table is
// made anew every second, sorted by rates that change meanwhile.
func chooseRow(t *testing.T, ctx context.Context, stream string) {
	t.Helper()
	if !browsertest.Eval[bool](t, ctx, fmt.Sprintf(`(() => {
		const td = document.querySelector('#streams tr[data-stream=%q] td.stream');
		if (td) td.click();
		return !!td;
	})()`, stream)) {
		t.Fatalf("no row of %s to click", stream)
	}
}

// watchedEvent is one row of the page's list of a watched stream's events.
type watchedEvent struct {
	ID    string `json:"id"`
	Event string `json:"event"`
	Data  string `json:"data"`
}

const watchedEventsJS = `Array.from(document.querySelectorAll("#events li"), li => ({
	id: li.querySelector(".id").textContent,
	event: li.querySelector(".name").textContent,
	data: li.querySelector(".data").textContent,
}))`

// The page lists the node's streams live, with subscriber counts and last
// ids, and a click on a stream shows its events as they arrive, whatever
// their names, as text.
func TestAdminPageListsAndWatchesStreams(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Retry: retry})
	ctx := browsertest.New(t, 60*time.Second)

	const stream = "admin-chat"
	holdSubscriber(t, b.URL, stream, nil)
	holdSubscriber(t, b.URL, stream, nil)
	if err := chromedp.Do(ctx, chromedp.Navigate(b.URL+"/admin")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, 5*time.Second, "the first snapshot", `window.admin.snapshots > 0`)

	publish(t, b.URL, "admin-other", "o")
	publish(t, b.URL, stream, "before 1")
	last := publish(t, b.URL, stream, "before 2")
	browsertest.WaitFor(t, ctx, 5*time.Second, "the row of "+stream+" with 2 subscribers and last id "+last, rowShowsJS(stream, 2, last))
	if got := browsertest.Eval[string](t, ctx, `document.querySelector('#node [data-key="subscribers"] dd').textContent`); got != "2" {
		t.Fatalf("the node shows %q subscribers, want 2", got)
	}

	chooseRow(t, ctx, stream) // two streams: the table re-sorts under a mouse
	browsertest.WaitFor(t, ctx, 5*time.Second, "the watch to be live", fmt.Sprintf(`window.admin.watching === %q && window.admin.watchState === "live"`, stream))

	// Three events: a named one, one with two lines, one that would be
	// markup if the page used innerHTML.
	const markup = `<img src=x onerror="window.pwned=1">`
	status, body := post(t, b.URL, "/v1/streams/"+stream+"/messages", "application/json",
		`[{"event":"token","data":"one"},{"data":"two\nlines"},{"data":`+string(mustMarshal(t, markup))+`}]`)
	if status != http.StatusCreated {
		t.Fatalf("publish: %d %s", status, body)
	}
	var ans struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || len(ans.IDs) != 3 {
		t.Fatalf("publish answer %s: %v", body, err)
	}
	want := []watchedEvent{
		{ans.IDs[0], "token", "one"},
		{ans.IDs[1], "message", "two\nlines"},
		{ans.IDs[2], "message", markup},
	}
	browsertest.WaitFor(t, ctx, 5*time.Second, "three events in the list", `document.querySelectorAll("#events li").length >= 3`)
	time.Sleep(100 * time.Millisecond) // an extra or repeated event would show now
	if got := browsertest.Eval[[]watchedEvent](t, ctx, watchedEventsJS); !slices.Equal(got, want) {
		t.Fatalf("the page lists %+v, want %+v (in order, nothing from before the click)", got, want)
	}
	if pwned := browsertest.Eval[bool](t, ctx, `window.pwned === 1 || document.querySelector("#events img") !== null`); pwned {
		t.Fatal("event data was put in the page as HTML")
	}

	// The page's own subscription counts too, and the closed stream shows
	// as closed with its stop event in the list, then the watch ends.
	browsertest.WaitFor(t, ctx, 5*time.Second, "3 subscribers (the page watching)", rowShowsJS(stream, 3, ans.IDs[2]))
	stop := closeStream(t, b.URL, stream)
	browsertest.WaitFor(t, ctx, 5*time.Second, "the stop event", fmt.Sprintf(`window.admin.events.length === 4 && window.admin.events[3].event === "stop" && window.admin.events[3].id === %q`, stop))
	browsertest.WaitFor(t, ctx, 5*time.Second, "the watch to end", `window.admin.watchState === "ended"`)
	browsertest.WaitFor(t, ctx, 5*time.Second, "the row to show closed", fmt.Sprintf(
		`(() => { const tr = document.querySelector('#streams tr[data-stream=%q]'); return !!tr && tr.querySelector(".closed").textContent === "closed"; })()`, stream))
}

// With auth on, the page opened with ?access_token= passes the token on
// to its own requests (and takes it out of the address bar).
func TestAdminPageWithToken(t *testing.T) {
	b, _, publisher := startAuthBroker(t)
	operator := browserToken(t, nil, []string{"*"}, time.Now().Add(time.Hour))
	ctx := browsertest.New(t, 60*time.Second)

	const stream = "admin-secured"
	holdSubscriber(t, b.URL, stream, http.Header{"Authorization": {"Bearer " + operator}})
	last := publishAs(t, b.URL, publisher, stream, "first")
	if err := chromedp.Do(ctx, chromedp.Navigate(b.URL+"/admin?access_token="+operator)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, 5*time.Second, "the row of "+stream, rowShowsJS(stream, 1, last))
	if search := browsertest.Eval[string](t, ctx, `location.search`); strings.Contains(search, "access_token") {
		t.Fatalf("the token is still in the address bar: %q", search)
	}

	clickRow(t, ctx, stream)
	browsertest.WaitFor(t, ctx, 5*time.Second, "the watch to be live", `window.admin.watchState === "live"`)
	id := publishAs(t, b.URL, publisher, stream, "second")
	browsertest.WaitFor(t, ctx, 5*time.Second, "the event in the list", `document.querySelectorAll("#events li").length === 1`)
	if got := browsertest.Eval[[]watchedEvent](t, ctx, watchedEventsJS); len(got) != 1 || got[0] != (watchedEvent{id, "message", "second"}) {
		t.Fatalf("the page lists %+v, want the one event %s", got, id)
	}

	// A token without the right to read every stream gets no page.
	reader := browserToken(t, nil, []string{stream}, time.Now().Add(time.Hour))
	res, err := http.Get(b.URL + "/admin?access_token=" + reader)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("/admin with a token for one stream: %d, want 403", res.StatusCode)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A watch refused for the subscribe rate (429) waits its Retry-After and
// comes back, as EventSource would after a 5xx; a row is chosen with the
// keyboard as well as the mouse.
func TestAdminWatchRetriesARateLimitAndTakesTheKeyboard(t *testing.T) {
	// 1 new subscription per 8 s: the page's live view takes it. The watch
	// comes about 3 s later, so its Retry-After (about 5 s) is longer than
	// the 3 s the page waits at least (it has read no retry: yet).
	b := testbroker.Start(t, testbroker.Options{Retry: retry, SubscribeRate: 0.125})
	p := startProxy(t, b.URL)
	ctx := browsertest.New(t, 60*time.Second)
	const stream = "admin-limited"
	publish(t, b.URL, stream, "before")
	if err := chromedp.Do(ctx, chromedp.Navigate(p.URL+"/admin")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, 5*time.Second, "the row of "+stream, fmt.Sprintf(`!!document.querySelector('#streams tr[data-stream=%q]')`, stream))
	if err := chromedp.Do(ctx, chromedp.Focus(fmt.Sprintf(`#streams tr[data-stream=%q]`, stream))); err != nil {
		t.Fatal(err)
	}
	// The table is made anew every second: the row keeps the focus.
	snapshots := browsertest.Eval[int](t, ctx, `window.admin.snapshots`)
	browsertest.WaitFor(t, ctx, 5*time.Second, "two more snapshots", fmt.Sprintf(`window.admin.snapshots >= %d`, snapshots+2))
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, 3*time.Second, "the watch to be refused and retrying", fmt.Sprintf(`window.admin.watching === %q && window.admin.watchState === "retrying"`, stream))
	browsertest.WaitFor(t, ctx, 15*time.Second, "the watch to be live after Retry-After", `window.admin.watchState === "live"`)
	id := publish(t, b.URL, stream, "after")
	browsertest.WaitFor(t, ctx, 5*time.Second, "the event published after the retry", fmt.Sprintf(`window.admin.events.some(e => e.id === %q)`, id))
	// The page waited as long as Retry-After said (whole seconds, rounded
	// up, so the next try passes), not just its own 3 s.
	if reqs := p.eventsRequests(stream); len(reqs) != 2 {
		t.Fatalf("the watch sent %d requests, want 2: the refused one and the one after Retry-After", len(reqs))
	}
}

// choppyWriter passes a response on in pieces of at most size bytes, each
// flushed on its own, a moment apart: the page reads lines and events cut
// anywhere.
type choppyWriter struct {
	http.ResponseWriter
	size int
}

func (c choppyWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(c.size, len(p))
		m, err := c.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		c.Flush()
		p = p[k:]
		time.Sleep(time.Millisecond)
	}
	return n, nil
}

func (c choppyWriter) Flush() { http.NewResponseController(c.ResponseWriter).Flush() }

// The watch list keeps the last 200 events, and an event's data past 1000
// characters is cut with a note of how much more there was. A proxy passes
// the watched stream on in pieces of 700 bytes: the page joins the pieces
// of every line.
func TestAdminWatchListKeepsTheLastEventsCut(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Retry: retry})
	proxy := flushingProxy(t, b.URL)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := eventsStream(r); ok {
			w = choppyWriter{w, 700}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { front.CloseClientConnections(); front.Close() })
	ctx := browsertest.New(t, 60*time.Second)
	const stream = "admin-many"
	last := publish(t, b.URL, stream, "before")
	if err := chromedp.Do(ctx, chromedp.Navigate(front.URL+"/admin")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, 5*time.Second, "the row of "+stream, rowShowsJS(stream, 0, last))
	clickRow(t, ctx, stream)
	browsertest.WaitFor(t, ctx, 5*time.Second, "the watch to be live", `window.admin.watchState === "live"`)

	batch := make([]map[string]string, 205)
	for i := range batch {
		batch[i] = map[string]string{"data": fmt.Sprintf("event %d", i)}
	}
	status, body := post(t, b.URL, "/v1/streams/"+stream+"/messages", "application/json", string(mustMarshal(t, batch)))
	if status != http.StatusCreated {
		t.Fatalf("publish: %d %s", status, body)
	}
	var ans struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || len(ans.IDs) != len(batch) {
		t.Fatalf("publish answer %s: %v", body, err)
	}
	big := strings.Repeat("0123456789", 30000)
	bigID := publish(t, b.URL, stream, big)
	browsertest.WaitFor(t, ctx, 10*time.Second, "the large event in the list", fmt.Sprintf(
		`(() => { const li = document.querySelector("#events li:last-child"); return !!li && li.querySelector(".id").textContent === %q; })()`, bigID))

	got := browsertest.Eval[[]watchedEvent](t, ctx, watchedEventsJS)
	if len(got) != 200 {
		t.Fatalf("the list shows %d events, want the last 200", len(got))
	}
	// 206 events arrived: the first 6 have left the list.
	if want := (watchedEvent{ans.IDs[6], "message", "event 6"}); got[0] != want {
		t.Fatalf("the list starts with %+v, want %+v", got[0], want)
	}
	if want := (watchedEvent{bigID, "message", big[:1000] + "… (299000 more characters)"}); got[199] != want {
		t.Fatalf("the large event shows as %q (%d characters), want its first 1000 characters and the note", got[199].Data[:min(len(got[199].Data), 40)]+"…", len(got[199].Data))
	}
	if n := browsertest.Eval[int](t, ctx, `window.admin.events.length`); n != 200 {
		t.Fatalf("window.admin.events holds %d events, want 200", n)
	}
}

// A watch ends at the stream's stop without asking again, and watching a
// stream closed earlier ends at the broker's 204: neither comes back.
func TestAdminWatchEndsAtStop(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Retry: retry})
	p := startProxy(t, b.URL)
	ctx := browsertest.New(t, 60*time.Second)
	const closing, closed = "admin-closing", "admin-closed"
	last := publish(t, b.URL, closing, "one")
	publish(t, b.URL, closed, "one")
	stop := closeStream(t, b.URL, closed)
	if err := chromedp.Do(ctx, chromedp.Navigate(p.URL+"/admin")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, 5*time.Second, "both rows", rowShowsJS(closing, 0, last)+" && "+rowShowsJS(closed, 0, stop))

	chooseRow(t, ctx, closing)
	browsertest.WaitFor(t, ctx, 5*time.Second, "the watch to be live", `window.admin.watchState === "live"`)
	stop2 := closeStream(t, b.URL, closing)
	browsertest.WaitFor(t, ctx, 5*time.Second, "the watch to end at the stop", fmt.Sprintf(
		`window.admin.watchState === "ended" && window.admin.events.length === 1 && window.admin.events[0].id === %q`, stop2))
	time.Sleep(3 * retry) // a reconnect would show now
	if reqs := p.eventsRequests(closing); len(reqs) != 1 {
		t.Fatalf("the watch of %s sent %d requests, want 1 (no reconnect after stop): %+v", closing, len(reqs), reqs)
	}

	chooseRow(t, ctx, closed)
	browsertest.WaitFor(t, ctx, 5*time.Second, "the watch of the closed stream to end", fmt.Sprintf(
		`window.admin.watching === %q && window.admin.watchState === "ended" && document.getElementById("watchstate").textContent === "the stream is over"`, closed))
	time.Sleep(3 * retry)
	reqs := p.eventsRequests(closed)
	if len(reqs) != 1 || reqs[0].lastEventID != stop {
		t.Fatalf("the watch of %s sent %+v, want one request resuming after the stop %s", closed, reqs, stop)
	}
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("#events li").length`); n != 0 {
		t.Fatalf("the watch of the closed stream lists %d events, want none", n)
	}
}

// The page says it is live, and that no stream is listed yet; choosing
// another row (here first with Space) moves the watch, leaving the first
// stream's subscription; Stop hides the list and ends the watch's
// subscription.
func TestAdminSwitchAndStopWatching(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Retry: retry})
	ctx := browsertest.New(t, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(b.URL+"/admin")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, 5*time.Second, "the first snapshot", `window.admin.snapshots > 0`)
	type header struct {
		Conn      string `json:"conn"`
		State     string `json:"state"`
		NoStreams bool   `json:"noStreams"`
	}
	const headerJS = `({conn: document.getElementById("conn").textContent, state: document.getElementById("conn").dataset.state,
		noStreams: !document.getElementById("nostreams").hidden})`
	if got := browsertest.Eval[header](t, ctx, headerJS); got != (header{"live", "live", true}) {
		t.Fatalf("with no stream yet the page shows %+v, want live and the note that no stream is listed", got)
	}

	const a, bb = "admin-first", "admin-second"
	idA := publish(t, b.URL, a, "a")
	idB := publish(t, b.URL, bb, "b")
	browsertest.WaitFor(t, ctx, 5*time.Second, "both rows", rowShowsJS(a, 0, idA)+" && "+rowShowsJS(bb, 0, idB))
	if got := browsertest.Eval[header](t, ctx, headerJS); got.NoStreams {
		t.Fatalf("with two streams the page still says none is listed: %+v", got)
	}

	if err := chromedp.Do(ctx, chromedp.Focus(fmt.Sprintf(`#streams tr[data-stream=%q]`, a)), chromedp.KeyEvent(" ")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, 5*time.Second, "the watch of "+a+" (chosen with Space)", fmt.Sprintf(`window.admin.watching === %q && window.admin.watchState === "live"`, a))
	browsertest.WaitFor(t, ctx, 5*time.Second, "the page's subscriber on "+a, rowShowsJS(a, 1, idA))

	chooseRow(t, ctx, bb)
	browsertest.WaitFor(t, ctx, 5*time.Second, "the watch of "+bb, fmt.Sprintf(`window.admin.watching === %q && window.admin.watchState === "live"`, bb))
	browsertest.WaitFor(t, ctx, 5*time.Second, "the subscriber to move from "+a+" to "+bb, rowShowsJS(a, 0, idA)+" && "+rowShowsJS(bb, 1, idB))
	selectedJS := fmt.Sprintf(`Array.from(document.querySelectorAll('#streams tr[aria-selected="true"]'), tr => tr.dataset.stream).join() === %q`, bb)
	if !browsertest.Eval[bool](t, ctx, selectedJS) {
		t.Fatalf("after a snapshot the selected rows are not just %s", bb)
	}
	publish(t, b.URL, a, "not watched")
	idB2 := publish(t, b.URL, bb, "watched")
	browsertest.WaitFor(t, ctx, 5*time.Second, "the watched event", `document.querySelectorAll("#events li").length >= 1`)
	time.Sleep(100 * time.Millisecond) // an event of the other stream would show now
	if got := browsertest.Eval[[]watchedEvent](t, ctx, watchedEventsJS); len(got) != 1 || got[0] != (watchedEvent{idB2, "message", "watched"}) {
		t.Fatalf("watching %s the page lists %+v, want its one new event %s", bb, got, idB2)
	}

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("unwatch"))); err != nil {
		t.Fatal(err)
	}
	if hidden := browsertest.Eval[bool](t, ctx, `document.getElementById("watch").hidden && window.admin.watching === null`); !hidden {
		t.Fatal("after Stop the watch is still shown")
	}
	browsertest.WaitFor(t, ctx, 5*time.Second, "Stop to end the page's subscription", rowShowsJS(bb, 0, idB2))
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#streams tr[aria-selected="true"]').length`); n != 0 {
		t.Fatalf("after Stop %d rows are still selected", n)
	}
}

// The live view comes back after its response ends, whether the broker
// ends it (a drain: clients go on to another node) or the connection
// drops. A proxy ends the first live response cleanly after a snapshot and
// cuts the second one.
func TestAdminLiveViewComesBack(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Retry: retry})
	proxy := flushingProxy(t, b.URL)
	var lives atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int32(0)
		if r.URL.Path == "/admin/api/live" {
			n = lives.Add(1)
		}
		if n != 1 && n != 2 {
			proxy.ServeHTTP(w, r)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, b.URL+r.URL.RequestURI(), nil)
		if err != nil {
			panic(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		w.Header().Set("Content-Type", res.Header.Get("Content-Type"))
		w.WriteHeader(res.StatusCode)
		// Pass the response on up to the end of its first snapshot.
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		snapshot := false
		for sc.Scan() {
			fmt.Fprintf(w, "%s\n", sc.Text())
			snapshot = snapshot || sc.Text() == "event: snapshot"
			if sc.Text() == "" {
				http.NewResponseController(w).Flush()
				if snapshot {
					break
				}
			}
		}
		if n == 2 {
			panic(http.ErrAbortHandler) // the connection drops
		}
		// n == 1: the response ends cleanly
	}))
	t.Cleanup(func() { front.CloseClientConnections(); front.Close() })
	ctx := browsertest.New(t, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(front.URL+"/admin")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the page to open a third live request", func() bool { return lives.Load() >= 3 })
	snapshots := browsertest.Eval[int](t, ctx, `window.admin.snapshots`)
	browsertest.WaitFor(t, ctx, 5*time.Second, "a snapshot on the third live request", fmt.Sprintf(
		`window.admin.snapshots > %d && document.getElementById("conn").dataset.state === "live"`, snapshots))
}

package browser

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sse-broker/broker/internal/browsertest"
	"github.com/sse-broker/broker/internal/testbroker"
)

// A page served from another origin (another port is another origin) calls
// the broker from a real Chromium: a JSON POST (which forces a preflight)
// and an EventSource with credentials. The browser enforces CORS; the
// broker only answers with the headers, so only a browser shows that they
// are right.

// pageServer serves an empty page: the origin the browser runs the probe in.
func pageServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>other origin</title><p>cross-origin page</p>")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// requestLog counts the requests that reach the broker, by method and path.
type requestLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.seen = append(l.seen, r.Method+" "+r.URL.Path)
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (l *requestLog) count(req string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.seen {
		if s == req {
			n++
		}
	}
	return n
}

// corsBroker runs a broker with origins allowed, reached through its own
// listener so that the test sees every request the browser makes.
func corsBroker(t *testing.T, origins []string) (string, *requestLog) {
	t.Helper()
	b := testbroker.Start(t, testbroker.Options{Retry: retry, CORSOrigins: origins})
	log := &requestLog{}
	srv := httptest.NewServer(log.wrap(b.API))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL, log
}

// openProbeJS opens an EventSource on url (withCredentials as given) and
// records what happens in window.probe.
func openProbeJS(url string, withCredentials bool) string {
	u, _ := json.Marshal(url)
	return fmt.Sprintf(`(() => {
		const p = {opens: 0, errors: 0, data: [], fetch: null};
		window.probe = p;
		const es = new EventSource(%s, {withCredentials: %t});
		window.probeES = es;
		es.onopen = () => { p.opens++; };
		es.onerror = () => { p.errors++; };
		es.onmessage = (e) => { p.data.push(e.data); };
		return true;
	})()`, u, withCredentials)
}

// fetchProbeJS POSTs a JSON event to url and records the outcome in
// window.probe.fetch: the status, the ids and the exposed X-Request-Id, or
// the name of the error the promise rejected with.
func fetchProbeJS(url, data, credentials string) string {
	u, _ := json.Marshal(url)
	body, _ := json.Marshal(fmt.Sprintf(`{"data":%q}`, data))
	return fmt.Sprintf(`(() => {
		window.probe.fetch = null;
		fetch(%s, {method: "POST", mode: "cors", credentials: %q,
			headers: {"Content-Type": "application/json"}, body: %s})
			.then(r => r.json().then(j => { window.probe.fetch = {status: r.status, ids: j.ids || [], reqId: r.headers.get("X-Request-Id") || ""}; }))
			.catch(e => { window.probe.fetch = {error: e.name}; });
		return true;
	})()`, u, credentials, body)
}

type probe struct {
	Opens  int      `json:"opens"`
	Errors int      `json:"errors"`
	Data   []string `json:"data"`
	Fetch  *struct {
		Status int      `json:"status"`
		IDs    []string `json:"ids"`
		ReqID  string   `json:"reqId"`
		Error  string   `json:"error"`
	} `json:"fetch"`
}

func TestCORSFromAnotherOrigin(t *testing.T) {
	page := pageServer(t)
	ctx := browsertest.New(t, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(page.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if origin := browsertest.Eval[string](t, ctx, `location.origin`); origin != page.URL {
		t.Fatalf("page origin %q, want %q", origin, page.URL)
	}

	t.Run("allowed origin", func(t *testing.T) {
		broker, log := corsBroker(t, []string{page.URL})
		const stream = "cors-allowed"
		browsertest.Eval[bool](t, ctx, openProbeJS(broker+"/v1/streams/"+stream+"/events", true))
		browsertest.WaitFor(t, ctx, 5*time.Second, "EventSource OPEN", `window.probeES.readyState === 1 && window.probe.opens === 1`)

		browsertest.Eval[bool](t, ctx, fetchProbeJS(broker+"/v1/streams/"+stream+"/messages", "from the page", "include"))
		browsertest.WaitFor(t, ctx, 5*time.Second, "the fetch to settle", `window.probe.fetch !== null`)
		browsertest.WaitFor(t, ctx, 5*time.Second, "the event on the EventSource", `window.probe.data.length >= 1`)
		p := browsertest.Eval[probe](t, ctx, `window.probe`)
		if p.Fetch.Error != "" || p.Fetch.Status != http.StatusCreated || len(p.Fetch.IDs) != 1 {
			t.Fatalf("fetch from an allowed origin: %+v, want 201 with one id", *p.Fetch)
		}
		if p.Fetch.ReqID == "" {
			t.Errorf("the page cannot read X-Request-Id: it is not exposed")
		}
		if !slices.Equal(p.Data, []string{"from the page"}) || p.Errors != 0 {
			t.Fatalf("EventSource got %q with %d errors, want the published event and none", p.Data, p.Errors)
		}
		if n := log.count("OPTIONS /v1/streams/" + stream + "/messages"); n != 1 {
			t.Errorf("%d preflights for the JSON POST, want 1", n)
		}
		browsertest.Eval[bool](t, ctx, `(() => { window.probeES.close(); return true; })()`)
	})

	t.Run("origin not allowed", func(t *testing.T) {
		broker, log := corsBroker(t, []string{"https://app.example"})
		const stream = "cors-refused"
		browsertest.Eval[bool](t, ctx, openProbeJS(broker+"/v1/streams/"+stream+"/events", true))
		// A CORS failure fails the EventSource for good: CLOSED, no retry.
		browsertest.WaitFor(t, ctx, 5*time.Second, "EventSource CLOSED", `window.probeES.readyState === 2 && window.probe.errors >= 1`)

		browsertest.Eval[bool](t, ctx, fetchProbeJS(broker+"/v1/streams/"+stream+"/messages", "must not arrive", "include"))
		browsertest.WaitFor(t, ctx, 5*time.Second, "the fetch to settle", `window.probe.fetch !== null`)
		p := browsertest.Eval[probe](t, ctx, `window.probe`)
		if p.Fetch.Error != "TypeError" {
			t.Fatalf("fetch from a foreign origin: %+v, want a rejection with TypeError", *p.Fetch)
		}
		if p.Opens != 0 || len(p.Data) != 0 {
			t.Fatalf("EventSource from a foreign origin: %+v, want no open and no data", p)
		}
		// The preflight failed, so the POST itself was never sent.
		if n := log.count("POST /v1/streams/" + stream + "/messages"); n != 0 {
			t.Fatalf("the browser sent the POST %d times after a failed preflight", n)
		}
		if n := log.count("OPTIONS /v1/streams/" + stream + "/messages"); n != 1 {
			t.Errorf("%d preflights, want 1", n)
		}
	})

	// With "*" any page may read without credentials; a request with
	// credentials fails, since the broker never pairs "*" with them.
	t.Run("wildcard without credentials", func(t *testing.T) {
		broker, _ := corsBroker(t, []string{"*"})
		const stream = "cors-wildcard"
		browsertest.Eval[bool](t, ctx, openProbeJS(broker+"/v1/streams/"+stream+"/events", true))
		browsertest.WaitFor(t, ctx, 5*time.Second, "credentialed EventSource CLOSED", `window.probeES.readyState === 2 && window.probe.errors >= 1`)

		browsertest.Eval[bool](t, ctx, openProbeJS(broker+"/v1/streams/"+stream+"/events", false))
		browsertest.WaitFor(t, ctx, 5*time.Second, "EventSource OPEN", `window.probeES.readyState === 1 && window.probe.opens === 1`)
		browsertest.Eval[bool](t, ctx, fetchProbeJS(broker+"/v1/streams/"+stream+"/messages", "credentials refused", "include"))
		browsertest.WaitFor(t, ctx, 5*time.Second, "the fetch to settle", `window.probe.fetch !== null`)
		if p := browsertest.Eval[probe](t, ctx, `window.probe`); p.Fetch.Error != "TypeError" {
			t.Fatalf("credentialed fetch with *: %+v, want TypeError", *p.Fetch)
		}
		browsertest.Eval[bool](t, ctx, fetchProbeJS(broker+"/v1/streams/"+stream+"/messages", "anonymous", "omit"))
		browsertest.WaitFor(t, ctx, 5*time.Second, "the fetch to settle", `window.probe.fetch !== null`)
		browsertest.WaitFor(t, ctx, 5*time.Second, "the event", `window.probe.data.length >= 1`)
		p := browsertest.Eval[probe](t, ctx, `window.probe`)
		if p.Fetch.Status != http.StatusCreated || !slices.Equal(p.Data, []string{"anonymous"}) {
			t.Fatalf("anonymous fetch with *: %+v, data %q", *p.Fetch, p.Data)
		}
		browsertest.Eval[bool](t, ctx, `(() => { window.probeES.close(); return true; })()`)
	})
}

package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/sse-broker/broker/internal/browsertest"
	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/auth"
)

var browserSecret = []byte("browser-secret-browser-secret-32")

// browserToken signs an HS256 token with the given rights on stream
// patterns, valid until exp.
func browserToken(t *testing.T, publish, subscribe []string, exp time.Time) string {
	t.Helper()
	streams := map[string]any{}
	if publish != nil {
		streams["publish"] = publish
	}
	if subscribe != nil {
		streams["subscribe"] = subscribe
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "browser-test", "exp": exp.Unix(), "streams": streams,
	}).SignedString(browserSecret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// startAuthBroker runs a broker with HS256 auth behind the counting proxy,
// and returns them with a publisher token for every stream.
func startAuthBroker(t *testing.T) (*testbroker.Broker, *proxy, string) {
	t.Helper()
	v, err := auth.NewVerifier("HS256", browserSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := testbroker.Start(t, testbroker.Options{Retry: retry, Auth: v})
	return b, startProxy(t, b.URL), browserToken(t, []string{"*"}, nil, time.Now().Add(time.Hour))
}

// publishAs publishes one raw event with a Bearer token and returns its id.
func publishAs(t *testing.T, base, token, stream, data string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/streams/"+stream+"/messages", strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/plain")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var ans struct {
		IDs []string `json:"ids"`
	}
	if res.StatusCode != http.StatusCreated || json.Unmarshal(body, &ans) != nil || len(ans.IDs) != 1 {
		t.Fatalf("publish to %s: %d %s", stream, res.StatusCode, body)
	}
	return ans.IDs[0]
}

// setCookieJS sets the access_token cookie from the page's origin.
func setCookieJS(token string) string {
	v, _ := json.Marshal("access_token=" + token + "; path=/; SameSite=Strict")
	return fmt.Sprintf(`(() => { document.cookie = %s; return true; })()`, v)
}

// expectReceived waits until the page has n events and checks them.
func expectReceived(t *testing.T, ctx context.Context, ids, data []string) record {
	t.Helper()
	browsertest.WaitFor(t, ctx, 5*time.Second, fmt.Sprintf("%d events", len(ids)), fmt.Sprintf(`window.rec.ids.length >= %d`, len(ids)))
	time.Sleep(50 * time.Millisecond) // a duplicate would show up now
	rec := browsertest.Eval[record](t, ctx, `window.rec`)
	if !slices.Equal(rec.IDs, ids) || !slices.Equal(rec.Data, data) {
		t.Fatalf("page received ids %v data %q, want %v %q", rec.IDs, rec.Data, ids, data)
	}
	return rec
}

// EventSource cannot set headers: a browser subscribes with the token in
// the access_token query parameter.
func TestEventSourceTokenInQuery(t *testing.T) {
	b, p, admin := startAuthBroker(t)
	ctx := browsertest.New(t, 40*time.Second)
	const stream = "browser-auth-query"
	sub := browserToken(t, nil, []string{"browser-auth-*"}, time.Now().Add(time.Hour))

	if err := chromedp.Do(ctx, chromedp.Navigate(p.URL+"/")); err != nil {
		t.Fatal(err)
	}
	browsertest.Eval[bool](t, ctx, recorderJS("/v1/streams/"+stream+"/events?access_token="+sub))
	browsertest.WaitFor(t, ctx, 5*time.Second, "EventSource OPEN", `window.es.readyState === 1`)
	var ids, data []string
	for i := 1; i <= 3; i++ {
		d := fmt.Sprintf("query %d", i)
		ids = append(ids, publishAs(t, b.URL, admin, stream, d))
		data = append(data, d)
	}
	rec := expectReceived(t, ctx, ids, data)
	if rec.Opens != 1 || rec.Errors != 0 {
		t.Fatalf("EventSource opened %d times with %d errors, want 1 and 0", rec.Opens, rec.Errors)
	}
}

// A page on the broker's origin sets the access_token cookie; the
// EventSource sends it, with no token in the URL.
func TestEventSourceTokenInCookie(t *testing.T) {
	b, p, admin := startAuthBroker(t)
	ctx := browsertest.New(t, 40*time.Second)
	const stream = "browser-auth-cookie"
	sub := browserToken(t, nil, []string{stream}, time.Now().Add(time.Hour))

	if err := chromedp.Do(ctx, chromedp.Navigate(p.URL+"/")); err != nil {
		t.Fatal(err)
	}
	browsertest.Eval[bool](t, ctx, setCookieJS(sub))
	browsertest.Eval[bool](t, ctx, recorderJS("/v1/streams/"+stream+"/events"))
	browsertest.WaitFor(t, ctx, 5*time.Second, "EventSource OPEN", `window.es.readyState === 1`)
	var ids, data []string
	for i := 1; i <= 3; i++ {
		d := fmt.Sprintf("cookie %d", i)
		ids = append(ids, publishAs(t, b.URL, admin, stream, d))
		data = append(data, d)
	}
	rec := expectReceived(t, ctx, ids, data)
	if rec.Opens != 1 || rec.Errors != 0 {
		t.Fatalf("EventSource opened %d times with %d errors, want 1 and 0", rec.Opens, rec.Errors)
	}
}

// A 401 or 403 fails the EventSource for good: readyState CLOSED, no
// reconnect.
func TestEventSourceRefusedWithoutRight(t *testing.T) {
	_, p, _ := startAuthBroker(t)
	ctx := browsertest.New(t, 40*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(p.URL+"/")); err != nil {
		t.Fatal(err)
	}
	other := browserToken(t, nil, []string{"somewhere-else"}, time.Now().Add(time.Hour))
	expired := browserToken(t, nil, []string{"*"}, time.Now().Add(-time.Hour))
	for _, tt := range []struct{ name, stream, query string }{
		{"no token", "browser-auth-none", ""},
		{"expired token", "browser-auth-expired", "?access_token=" + expired},
		{"token for another stream", "browser-auth-other", "?access_token=" + other},
	} {
		t.Run(tt.name, func(t *testing.T) {
			browsertest.Eval[bool](t, ctx, recorderJS("/v1/streams/"+tt.stream+"/events"+tt.query))
			browsertest.WaitFor(t, ctx, 5*time.Second, "EventSource CLOSED", `window.es.readyState === 2`)
			time.Sleep(3 * retry) // a wrong reconnect would show itself now
			rec := browsertest.Eval[record](t, ctx, `window.rec`)
			if rec.Opens != 0 || rec.Errors != 1 || len(rec.IDs) != 0 {
				t.Fatalf("EventSource opened %d times, %d errors, %d events; want 0, 1, 0", rec.Opens, rec.Errors, len(rec.IDs))
			}
			if rs := browsertest.Eval[int](t, ctx, `window.es.readyState`); rs != 2 {
				t.Fatalf("readyState %d, want 2 (CLOSED)", rs)
			}
			if n := len(p.eventsRequests(tt.stream)); n != 1 {
				t.Fatalf("the events URL was requested %d times, want 1 (no reconnect after the refusal)", n)
			}
		})
	}
}

// The subscription ends when its token expires; a page that refreshed the
// cookie meanwhile is reconnected by EventSource itself, with the fresh
// token and Last-Event-ID, and misses nothing.
func TestEventSourceCookieRefreshedAtExpiry(t *testing.T) {
	b, _, admin := startAuthBroker(t)
	// Between the counting proxy and the broker, note which token each
	// subscribe request carried in its cookie.
	var (
		mu      sync.Mutex
		cookies []string
	)
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := eventsStream(r); ok {
			c, _ := r.Cookie("access_token")
			mu.Lock()
			if c != nil {
				cookies = append(cookies, c.Value)
			} else {
				cookies = append(cookies, "")
			}
			mu.Unlock()
		}
		b.API.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { spy.CloseClientConnections(); spy.Close() })
	p := startProxy(t, spy.URL)
	ctx := browsertest.New(t, 40*time.Second)
	const stream = "browser-auth-refresh"
	if err := chromedp.Do(ctx, chromedp.Navigate(p.URL+"/")); err != nil {
		t.Fatal(err)
	}
	short := browserToken(t, nil, []string{stream}, time.Now().Add(2*time.Second))
	browsertest.Eval[bool](t, ctx, setCookieJS(short))
	browsertest.Eval[bool](t, ctx, recorderJS("/v1/streams/"+stream+"/events"))
	browsertest.WaitFor(t, ctx, 5*time.Second, "EventSource OPEN", `window.es.readyState === 1`)
	id1 := publishAs(t, b.URL, admin, stream, "before expiry")
	expectReceived(t, ctx, []string{id1}, []string{"before expiry"})

	// The page refreshes its token; the open connection still runs on the
	// old one until it expires.
	fresh := browserToken(t, nil, []string{stream}, time.Now().Add(time.Hour))
	browsertest.Eval[bool](t, ctx, setCookieJS(fresh))
	start := time.Now()
	waitUntil(t, 10*time.Second, "the reconnect after the token expired", func() bool { return len(p.eventsRequests(stream)) >= 2 })
	t.Logf("reconnected %v after the cookie was refreshed", time.Since(start).Round(time.Millisecond))
	browsertest.WaitFor(t, ctx, 5*time.Second, "EventSource OPEN again", `window.es.readyState === 1 && window.rec.opens === 2`)

	id2 := publishAs(t, b.URL, admin, stream, "after expiry")
	rec := expectReceived(t, ctx, []string{id1, id2}, []string{"before expiry", "after expiry"})
	if rec.Errors != 1 {
		t.Errorf("EventSource reported %d errors, want 1 (the end at expiry)", rec.Errors)
	}
	reqs := p.eventsRequests(stream)
	if len(reqs) != 2 || reqs[1].lastEventID != id1 {
		t.Fatalf("subscribe requests %+v, want 2, the second with Last-Event-ID %s", reqs, id1)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(cookies) != 2 || cookies[0] != short || cookies[1] != fresh {
		t.Fatalf("the subscribe requests carried %d cookies; want the short-lived token, then the fresh one", len(cookies))
	}
}

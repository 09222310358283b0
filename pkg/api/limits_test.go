package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/api"
	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// rateLimitSecret signs the tokens of the rate-limit tests.
const rateLimitSecret = "rate-limit-tests-secret-0123456789abcdef"

// rateLimitToken is an HS256 token of subject sub that may publish to and
// subscribe to every stream.
func rateLimitToken(t testing.TB, sub string) http.Header {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":     sub,
		"exp":     time.Now().Add(time.Hour).Unix(),
		"streams": map[string][]string{"publish": {"*"}, "subscribe": {"*"}},
	}).SignedString([]byte(rateLimitSecret))
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{"Authorization": {"Bearer " + tok}}
}

func rateLimitVerifier(t testing.TB) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(auth.HS256, []byte(rateLimitSecret), nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// batchOf is a JSON body of n events.
func batchOf(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(`{"data":"x"},`, n), ",") + "]"
}

// with returns h (may be nil) plus the header k: v.
func with(h http.Header, k, v string) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	out.Set(k, v)
	return out
}

// wantRateLimited checks a 429 rate_limited answer and returns its
// Retry-After in seconds.
func wantRateLimited(t *testing.T, what string, status int, h http.Header, body string) int {
	t.Helper()
	if status != http.StatusTooManyRequests || !contains(body, `"error":"rate_limited"`) || h.Get("Content-Type") != "application/json" {
		t.Fatalf("%s: %d %s, want 429 rate_limited JSON", what, status, body)
	}
	ra, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Fatalf("%s: Retry-After %q, want whole seconds >= 1", what, h.Get("Retry-After"))
	}
	return ra
}

// Events are counted, not requests. A batch over the window's budget
// passes only with nothing counted and then holds the client back as long
// as its events take at the rate; while anything is counted it is refused
// whole (nothing stored). Retry-After says when the same request passes.
func TestPublishRateCountsEvents(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{PublishRate: 5})
	json := http.Header{"Content-Type": {"application/json"}}

	if ids := publishJSON(t, b, "limited", batchOf(3)); len(ids) != 3 {
		t.Fatalf("a batch of 3 at 5/s: %d ids", len(ids))
	}
	// 3 counted: a batch of 10 would need the whole window.
	status, h, body := b.Do(t, "POST", "/v1/streams/big/messages", json, batchOf(10))
	ra := wantRateLimited(t, "a batch of 10 at 5/s with 3 counted", status, h, body)
	if status, _, _ := b.Do(t, "GET", "/v1/streams/big", nil, ""); status != http.StatusNotFound {
		t.Fatalf("a refused batch created the stream: %d", status)
	}
	// Retry-After is honest: waiting that long is enough for the batch.
	time.Sleep(time.Duration(ra) * time.Second)
	if ids := publishJSON(t, b, "big", batchOf(10)); len(ids) != 10 {
		t.Fatalf("the batch of 10 after Retry-After: %d ids", len(ids))
	}
	// 10 events are 2 s at 5/s: even one more event waits, on any stream.
	status, h, body = b.Do(t, "POST", "/v1/streams/other/messages", nil, "one more")
	ra = wantRateLimited(t, "an event right after 10 at 5/s", status, h, body)
	if ra != 2 {
		t.Errorf("Retry-After %d after 10 events at 5/s, want 2", ra)
	}
	time.Sleep(time.Duration(ra) * time.Second)
	publish(t, b, "other", "after Retry-After")

	_, _, hist := b.Do(t, "GET", "/v1/streams/limited/messages", nil, "")
	var got struct{ Events []struct{} }
	mustJSON(t, hist, &got)
	if len(got.Events) != 3 {
		t.Fatalf("history has %d events, want the 3 accepted ones", len(got.Events))
	}
}

// Each token subject has its own budget; with auth on, the client IP does
// not matter (every test request comes from 127.0.0.1).
func TestRateLimitsPerSubject(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{Auth: rateLimitVerifier(t), PublishRate: 3, SubscribeRate: 2})
	alice, bob := rateLimitToken(t, "alice"), rateLimitToken(t, "bob")
	json := func(h http.Header) http.Header { return with(h, "Content-Type", "application/json") }

	if status, _, body := b.Do(t, "POST", "/v1/streams/s/messages", json(alice), batchOf(3)); status != http.StatusCreated {
		t.Fatalf("alice's 3 events: %d %s", status, body)
	}
	status, h, body := b.Do(t, "POST", "/v1/streams/s/messages", alice, "x")
	wantRateLimited(t, "alice's 4th event", status, h, body)
	// A fresh token of the same subject shares the budget.
	status, h, body = b.Do(t, "POST", "/v1/streams/s/messages", rateLimitToken(t, "alice"), "x")
	wantRateLimited(t, "alice's 4th event with another token", status, h, body)
	if status, _, body := b.Do(t, "POST", "/v1/streams/s/messages", json(bob), batchOf(3)); status != http.StatusCreated {
		t.Fatalf("bob's 3 events while alice is limited: %d %s", status, body)
	}

	// Subscriptions have their own budget, apart from publishing.
	for i := range 2 {
		subscribeWith(t, b, "/v1/streams/s/events", alice, http.StatusOK, fmt.Sprintf("alice's subscription %d", i+1))
	}
	res := subscribeWith(t, b, "/v1/streams/s/events", alice, http.StatusTooManyRequests, "alice's 3rd subscription")
	wantRateLimited(t, "alice's 3rd subscription", res.StatusCode, res.Header, readAll(t, res))
	subscribeWith(t, b, "/v1/streams/s/events", bob, http.StatusOK, "bob's subscription")
}

func TestSubscribeRate(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{SubscribeRate: 2})
	for i := range 2 {
		subscribe(t, b, fmt.Sprintf("/v1/streams/sub-%d/events", i), "")
	}
	res := subscribeWith(t, b, "/v1/streams/sub-2/events", nil, http.StatusTooManyRequests, "the 3rd subscription")
	wantRateLimited(t, "the 3rd subscription", res.StatusCode, res.Header, readAll(t, res))
	// Publishing is not counted against subscriptions.
	publish(t, b, "sub-0", "still publishing")
}

// With rates 0 nothing is limited.
func TestNoRateLimitsByDefault(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{})
	publishJSON(t, b, "free", batchOf(1000))
	for i := range 50 {
		publish(t, b, "free", strconv.Itoa(i))
	}
	for range 30 {
		res := subscribeWith(t, b, "/v1/streams/free/events", nil, http.StatusOK, "a subscription")
		_ = res.Body.Close()
	}
}

// subscribeWith opens a subscription with header h and checks its status;
// the response is closed when the test ends.
func subscribeWith(t *testing.T, b *testbroker.Broker, path string, h http.Header, wantStatus int, what string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Cleanup(func() { _ = res.Body.Close() })
	if res.StatusCode != wantStatus {
		t.Fatalf("%s: status %d, want %d", what, res.StatusCode, wantStatus)
	}
	return res
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A demo answer publishes its tokens and a stop: they count against the
// publish rate, so the demo is no way around limits.publish_rate. It is
// let through whenever one event would be (here after the page's create),
// and its events then hold the client back as long as they take at the
// rate.
func TestDemoAnswerCountsItsEvents(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{PublishRate: 5, DemoTokenDelay: time.Millisecond})
	json := http.Header{"Content-Type": {"application/json"}}
	if status, _, body := b.Do(t, "POST", "/v1/streams", nil, ""); status != http.StatusCreated {
		t.Fatalf("create, as the page does first: %d %s", status, body)
	}
	if status, _, body := b.Do(t, "POST", "/v1/demo/chat", json, `{"stream":"d-1","message":"hi"}`); status != http.StatusAccepted {
		t.Fatalf("the first demo answer: %d %s", status, body)
	}
	// Its 40-odd events are about 9 s at 5/s: the next publish waits.
	status, h, body := b.Do(t, "POST", "/v1/streams/other/messages", nil, "x")
	if ra := wantRateLimited(t, "a publish right after a demo answer at 5/s", status, h, body); ra < 5 {
		t.Errorf("Retry-After %d s after a demo answer at 5/s, want the answer's events' time", ra)
	}
	status, h, body = b.Do(t, "POST", "/v1/demo/chat", json, `{"stream":"d-2","message":"hi"}`)
	wantRateLimited(t, "a second demo answer at once", status, h, body)
}

// A demo question refused for another reason (here its stream is closed:
// 409) costs its client nothing of the publish rate.
func TestRefusedDemoAnswerIsNotCharged(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{PublishRate: 5, DemoTokenDelay: time.Millisecond})
	closeStream(t, b, "closed-d")
	status, _, body := b.Do(t, "POST", "/v1/demo/chat", http.Header{"Content-Type": {"application/json"}}, `{"stream":"closed-d","message":"hi"}`)
	if status != http.StatusConflict {
		t.Fatalf("a demo answer into a closed stream: %d %s", status, body)
	}
	publish(t, b, "other", "still within the rate")
}

// Demo answers asked for together share one budget: the first one's
// events are charged before it publishes, so a second asked while the
// first is still in the store is refused. (Checked first and charged
// after its first publish, every answer asked at once passed, and a slow
// store let a client publish many times its rate.)
func TestDemoAnswersAskedTogetherShareOneBudget(t *testing.T) {
	t.Parallel()
	hub := broker.NewHub(10, 64)
	mem := memory.New(broker.StoreOptions{MaxEvents: 100, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	defer mem.Close()
	store := &heldStore{Store: mem, holdAt: 1, holding: make(chan struct{}), release: make(chan struct{})}
	srv := api.New(api.Options{Broker: broker.New(store, hub), Logger: zerolog.New(io.Discard), Retry: time.Second,
		Heartbeat: time.Hour, MaxBody: 1 << 20, Demo: true, DemoTokenDelay: time.Millisecond, PublishRate: 5})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	first := make(chan int, 1)
	go func() {
		res, err := http.Post(ts.URL+"/v1/demo/chat", "application/json", strings.NewReader(`{"stream":"d-1","message":"hi"}`))
		if err != nil {
			first <- 0
			return
		}
		_ = res.Body.Close()
		first <- res.StatusCode
	}()
	<-store.holding // the first answer's first token is in the store
	res, err := http.Post(ts.URL+"/v1/demo/chat", "application/json", strings.NewReader(`{"stream":"d-2","message":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	wantRateLimited(t, "a demo answer asked while another is on its way", res.StatusCode, res.Header, string(body))
	close(store.release)
	if status := <-first; status != http.StatusAccepted {
		t.Fatalf("the first demo answer: %d", status)
	}
}

// With auth on, each token subject has its own share of the demo's
// places, and tokens without a subject are shared out by client address:
// users of such tokens did all share one subject's 4 places.
func TestDemoPlacesOfTokensWithoutSubject(t *testing.T) {
	t.Parallel()
	hub := broker.NewHub(10, 64)
	mem := memory.New(broker.StoreOptions{MaxEvents: 100, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 100}, hub)
	defer mem.Close()
	srv := api.New(api.Options{Broker: broker.New(mem, hub), Logger: zerolog.New(io.Discard), Retry: time.Second,
		Heartbeat: time.Hour, MaxBody: 1 << 20, Demo: true, DemoTokenDelay: time.Hour, Auth: rateLimitVerifier(t)})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	ask := func(addr, stream string, token http.Header) int {
		r := httptest.NewRequest("POST", "/v1/demo/chat", strings.NewReader(`{"stream":"`+stream+`","message":"hi"}`))
		r.RemoteAddr = addr
		r.Header = with(token, "Content-Type", "application/json")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w.Code
	}
	noSubject := rateLimitToken(t, "")
	for i := range 4 {
		if status := ask("192.0.2.1:1000", fmt.Sprintf("a-%d", i), noSubject); status != http.StatusAccepted {
			t.Fatalf("answer %d from the first address: %d", i, status)
		}
	}
	if status := ask("192.0.2.1:1000", "a-4", noSubject); status != http.StatusTooManyRequests {
		t.Fatalf("a fifth answer from the first address: %d, want 429", status)
	}
	if status := ask("192.0.2.2:1000", "b-0", noSubject); status != http.StatusAccepted {
		t.Fatalf("an answer from another address with a token without subject: %d, want 202", status)
	}
}

// A demo question refused because the demo's places are all taken costs
// its client nothing of the publish rate either: it may publish at once.
func TestDemoAnswerRefusedForPlacesIsNotCharged(t *testing.T) {
	t.Parallel()
	srv := testbroker.Start(t, testbroker.Options{DemoTokenDelay: time.Hour, PublishRate: 5}).API
	do := func(addr, path string, h http.Header, body string) (int, string) {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.RemoteAddr = addr
		r.Header = h
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	json := http.Header{"Content-Type": {"application/json"}}
	// Every place taken, each by another client, so that none of them is
	// held back by its own rate.
	for i := 0; ; i++ {
		status, body := do(fmt.Sprintf("192.0.2.%d:1000", i+1), "/v1/demo/chat", json, fmt.Sprintf(`{"stream":"d-%d","message":"hi"}`, i))
		if status == http.StatusTooManyRequests && strings.Contains(body, "demo answers are streaming already") {
			break
		}
		if status != http.StatusAccepted || i > 1000 {
			t.Fatalf("answer %d: %d %s", i, status, body)
		}
	}
	const late = "198.51.100.1:1000"
	if status, body := do(late, "/v1/demo/chat", json, `{"stream":"late","message":"hi"}`); status != http.StatusTooManyRequests || !strings.Contains(body, "demo answers are streaming already") {
		t.Fatalf("an answer with every place taken: %d %s, want 429 for the places", status, body)
	}
	if status, body := do(late, "/v1/streams/other/messages", nil, "still within the rate"); status != http.StatusCreated {
		t.Fatalf("a publish after a demo answer refused for want of places: %d %s, want 201", status, body)
	}
}

package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/api"
	"github.com/sse-broker/broker/internal/testbroker"
	httpapi "github.com/sse-broker/broker/pkg/api"
	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// spec is the loaded document and a router over its paths.
type spec struct {
	doc    *openapi3.T
	router routers.Router
}

// loadSpec loads and validates the embedded document, as a tool would.
func loadSpec(t testing.TB) spec {
	t.Helper()
	ctx := context.Background()
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("loading openapi.yaml: %v", err)
	}
	// Format validation: an unknown "format" is an error, not ignored.
	if err := doc.Validate(ctx, openapi3.EnableSchemaFormatValidation(), openapi3.EnableMultiError()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("routing openapi.yaml: %v", err)
	}
	return spec{doc: doc, router: router}
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	s := loadSpec(t)
	if s.doc.OpenAPI != "3.1.0" || !s.doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q, want 3.1.0", s.doc.OpenAPI)
	}
	// Every operation has an id and declares what it answers: the drift
	// guards below count on both.
	for path, item := range s.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" || op.Responses == nil || op.Responses.Len() == 0 {
				t.Errorf("%s %s: needs an operationId and responses", method, path)
			}
		}
	}
}

// validationOptions are the openapi3filter options of every check here.
// IncludeResponseStatus makes an answer with a status the operation does
// not declare an error instead of passing unchecked.
func validationOptions() *openapi3filter.Options {
	return &openapi3filter.Options{
		IncludeResponseStatus: true,
		SkipSettingDefaults:   true,
		AuthenticationFunc:    credentialPresent,
	}
}

// credentialPresent checks that the request carries a credential where the
// security scheme says. It cannot verify the token (that is the broker's
// job); it proves the document names the places the broker reads.
func credentialPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r := in.RequestValidationInput.Request
	s := in.SecurityScheme
	var ok bool
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		ok = strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ")
	case s.Type == "apiKey" && s.In == "query":
		ok = r.URL.Query().Get(s.Name) != ""
	case s.Type == "apiKey" && s.In == "cookie":
		c, err := r.Cookie(s.Name)
		ok = err == nil && c.Value != ""
	}
	if !ok {
		return in.NewError(nil)
	}
	return nil
}

// ---------------------------------------------------------------------------
// The brokers the table talks to.

// authSecret signs the tokens of the brokers with auth on.
var authSecret = []byte("openapi-test-secret-openapi-test!")

// token signs an HS256 token valid for an hour with these stream patterns.
func token(t testing.TB, publish, subscribe []string) string {
	t.Helper()
	claims := jwt.MapClaims{
		"sub": "openapi-test", "exp": time.Now().Add(time.Hour).Unix(),
		"streams": map[string]any{"publish": publish, "subscribe": subscribe},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(authSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func verifier(t testing.TB) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(auth.HS256, authSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// storeDown is a whole broker (memory store, hub, API on a real listener,
// as testbroker builds it) whose store has been closed: every operation
// that needs the store answers 503 store_unavailable, as with a shared
// store that stopped answering.
func storeDown(t testing.TB) string {
	t.Helper()
	hub := broker.NewHub(100000, 256)
	store := memory.New(broker.StoreOptions{MaxEvents: 1000, MaxAge: time.Hour, IdleTTL: 24 * time.Hour, MaxStreams: 100000}, hub)
	srv := httpapi.New(httpapi.Options{
		Broker: broker.New(store, hub), Logger: zerolog.Nop(),
		Retry: 3 * time.Second, Heartbeat: 15 * time.Second, MaxBody: 1 << 20, Demo: true,
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	})
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	return ts.URL
}

// ---------------------------------------------------------------------------
// The table.

// defaultStream is the stream id of a row; "{s}" in a row's path stands
// for it, or for the id its prepare step returns.
const defaultStream = "s"

// exchange is one real request and what the broker must answer.
type exchange struct {
	name string
	// opts configure the fresh broker the row runs against.
	opts testbroker.Options
	// storeDown runs the row against a broker whose store does not answer.
	storeDown bool
	// prepare brings the broker into the state the request needs. It may
	// return the id of a stream it made, to stand for "{s}".
	prepare func(t *testing.T, b *testbroker.Broker) string

	method, path string
	header       http.Header
	body         string

	status   int
	code     string            // the "error" of a non-2xx answer
	want     map[string]string // headers the answer must carry
	contains string            // text the answer's body must hold

	// docRejects: the request breaks the document too. Most 400s are
	// requests the schemas can tell apart; the few they cannot (invalid
	// UTF-8 in a raw body, an id over 2^64-1) leave it false.
	docRejects bool
	// undeclared names the components.responses entry that describes the
	// answer of a request no operation covers (404 route, 405 method).
	undeclared string
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// with returns h plus one more header.
func with(h http.Header, key, value string) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	out.Set(key, value)
	return out
}

// mustDo sends a request of a prepare step and checks its status.
func mustDo(t *testing.T, b *testbroker.Broker, method, path string, header http.Header, body string, want int) {
	t.Helper()
	status, _, got := b.Do(t, method, path, header, body)
	if status != want {
		t.Fatalf("prepare: %s %s: %d %s, want %d", method, path, status, got, want)
	}
}

// publishTo publishes two events to stream, with header (a token, say).
func publishTo(stream string, header http.Header) func(*testing.T, *testbroker.Broker) string {
	return func(t *testing.T, b *testbroker.Broker) string {
		mustDo(t, b, "POST", "/v1/streams/"+stream+"/messages", header, "first", http.StatusCreated)
		mustDo(t, b, "POST", "/v1/streams/"+stream+"/messages", header, "second", http.StatusCreated)
		return ""
	}
}

// closeStream closes the row's default stream.
func closeStream(t *testing.T, b *testbroker.Broker) string {
	mustDo(t, b, "POST", "/v1/streams/"+defaultStream+"/close", nil, "", http.StatusOK)
	return ""
}

// spendPublishBudget uses the one request a PublishRate of 0.001 allows
// in its 1000 s window, so the row's request is over the limit.
func spendPublishBudget(t *testing.T, b *testbroker.Broker) string {
	mustDo(t, b, "POST", "/v1/streams", nil, "", http.StatusCreated)
	return ""
}

// fillStreams makes the one stream MaxStreams: 1 allows.
func fillStreams(t *testing.T, b *testbroker.Broker) string {
	mustDo(t, b, "POST", "/v1/streams/other/messages", nil, "x", http.StatusCreated)
	return ""
}

// openSubscription subscribes and keeps the response open until the row
// ends; it returns once the broker counts the subscriber.
func openSubscription(t *testing.T, b *testbroker.Broker) {
	t.Helper()
	openStream(t, b, "/v1/streams/held/events")
}

// openStream opens a GET of a streaming path, held until the test ends.
func openStream(t *testing.T, b *testbroker.Broker, path string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", b.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("prepare: subscribe: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("prepare: subscribe: %d", res.StatusCode)
	}
}

// maxID is the largest event id: a resume point at or past any stop event.
const maxID = "18446744073709551615"

// table is every request the document is checked with. Across it, every
// operation is called and every status it declares is answered, except
// those in unreachableStatus (the drift guards check both).
func table(t *testing.T) []exchange {
	admin := token(t, []string{"*"}, []string{"*"})
	// none is valid but has no right on the streams the rows use.
	none := token(t, []string{"elsewhere"}, []string{"elsewhere"})
	authOn := testbroker.Options{Auth: verifier(t)}
	long := strings.Repeat("x", 64)
	batch := "[" + strings.TrimSuffix(strings.Repeat(`{"data":"x"},`, 1001), ",") + "]"

	rows := []exchange{
		// POST /v1/streams
		{name: "create", method: "POST", path: "/v1/streams", status: 201},
		{name: "create with prefix", method: "POST", path: "/v1/streams", header: jsonHeader, body: `{"prefix":"chat-"}`, status: 201},
		{name: "create: not JSON", method: "POST", path: "/v1/streams", header: jsonHeader, body: `{`, status: 400, code: "invalid_json", docRejects: true},
		{name: "create: unknown member", method: "POST", path: "/v1/streams", header: jsonHeader, body: `{"name":"x"}`, status: 400, code: "invalid_request", docRejects: true},
		{name: "create: bad prefix", method: "POST", path: "/v1/streams", header: jsonHeader, body: `{"prefix":"a b"}`, status: 400, code: "invalid_request", docRejects: true},
		{name: "create: body too large", opts: testbroker.Options{MaxBody: 16}, method: "POST", path: "/v1/streams", header: jsonHeader, body: `{"prefix":"` + long[:40] + `"}`, status: 413, code: "body_too_large"},
		{name: "create: rate limited", opts: testbroker.Options{PublishRate: 0.001}, prepare: spendPublishBudget, method: "POST", path: "/v1/streams", status: 429, code: "rate_limited"},
		{name: "create: too many streams", opts: testbroker.Options{MaxStreams: 1}, prepare: fillStreams, method: "POST", path: "/v1/streams", status: 503, code: "too_many_streams"},
		{name: "create: store down", storeDown: true, method: "POST", path: "/v1/streams", status: 503, code: "store_unavailable"},

		// POST /v1/streams/{stream}/messages
		{name: "publish raw", method: "POST", path: "/v1/streams/{s}/messages", header: http.Header{"Content-Type": {"text/plain"}}, body: "Hello", status: 201},
		{name: "publish raw, named, no content type", method: "POST", path: "/v1/streams/{s}/messages?event=token", body: "Hel", status: 201},
		{name: "publish one JSON event", method: "POST", path: "/v1/streams/{s}/messages", header: jsonHeader, body: `{"event":"token","data":"lo"}`, status: 201},
		{name: "publish a JSON batch", method: "POST", path: "/v1/streams/{s}/messages", header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body: `[{"data":{"any":"JSON value"}},{"event":null,"data":[1,2]},{}]`, status: 201},
		{
			name: "publish replayed by Idempotency-Key", method: "POST", path: "/v1/streams/{s}/messages",
			prepare: func(t *testing.T, b *testbroker.Broker) string {
				mustDo(t, b, "POST", "/v1/streams/"+defaultStream+"/messages", http.Header{"Idempotency-Key": {"k-1"}}, "once", http.StatusCreated)
				return ""
			},
			header: http.Header{"Idempotency-Key": {"k-1"}}, body: "once", status: 201, want: map[string]string{"Idempotent-Replayed": "true"},
		},
		{
			name: "publish replayed after close", method: "POST", path: "/v1/streams/{s}/messages",
			prepare: func(t *testing.T, b *testbroker.Broker) string {
				mustDo(t, b, "POST", "/v1/streams/"+defaultStream+"/messages", http.Header{"Idempotency-Key": {"k-1"}}, "once", http.StatusCreated)
				return closeStream(t, b)
			},
			header: http.Header{"Idempotency-Key": {"k-1"}}, body: "once", status: 201, want: map[string]string{"Idempotent-Replayed": "true"},
		},
		{name: "publish: bad stream id", method: "POST", path: "/v1/streams/bad!id/messages", body: "x", status: 400, code: "invalid_stream_id", docRejects: true},
		{name: "publish: reserved event", method: "POST", path: "/v1/streams/{s}/messages", header: jsonHeader, body: `{"event":"stop","data":"x"}`, status: 400, code: "invalid_event", docRejects: true},
		{name: "publish: event name with LF", method: "POST", path: "/v1/streams/{s}/messages", header: jsonHeader, body: `{"event":"a\nb"}`, status: 400, code: "invalid_event", docRejects: true},
		{name: "publish: event name too long", method: "POST", path: "/v1/streams/{s}/messages?event=" + long + "x", body: "x", status: 400, code: "invalid_event", docRejects: true},
		{name: "publish: reserved ?event=", method: "POST", path: "/v1/streams/{s}/messages?event=gap", body: "x", status: 400, code: "invalid_event", docRejects: true},
		{name: "publish: empty ?event=", method: "POST", path: "/v1/streams/{s}/messages?event=", body: "x", status: 400, code: "invalid_event", docRejects: true},
		{name: "publish: empty batch", method: "POST", path: "/v1/streams/{s}/messages", header: jsonHeader, body: `[]`, status: 400, code: "invalid_event", docRejects: true},
		{name: "publish: 1001 events", method: "POST", path: "/v1/streams/{s}/messages", header: jsonHeader, body: batch, status: 400, code: "invalid_event", docRejects: true},
		{name: "publish: not an object", method: "POST", path: "/v1/streams/{s}/messages", header: jsonHeader, body: `"text"`, status: 400, code: "invalid_event", docRejects: true},
		{name: "publish: unknown member", method: "POST", path: "/v1/streams/{s}/messages", header: jsonHeader, body: `{"data":"x","id":"7"}`, status: 400, code: "invalid_event", docRejects: true},
		// The document cannot say that a raw body must be UTF-8.
		{name: "publish: raw body not UTF-8", method: "POST", path: "/v1/streams/{s}/messages", header: http.Header{"Content-Type": {"text/plain"}}, body: "\xff\xfe", status: 400, code: "invalid_event"},
		{name: "publish: not JSON", method: "POST", path: "/v1/streams/{s}/messages", header: jsonHeader, body: `{`, status: 400, code: "invalid_json", docRejects: true},
		{name: "publish: Idempotency-Key too long", method: "POST", path: "/v1/streams/{s}/messages", header: http.Header{"Idempotency-Key": {strings.Repeat("k", 129)}}, body: "x", status: 400, code: "invalid_request", docRejects: true},
		{name: "publish: closed stream", prepare: closeStream, method: "POST", path: "/v1/streams/{s}/messages", body: "x", status: 409, code: "stream_closed"},
		{name: "publish: body too large", opts: testbroker.Options{MaxBody: 16}, method: "POST", path: "/v1/streams/{s}/messages", body: long, status: 413, code: "body_too_large"},
		// A batch of 2 is over a rate of 1 event per second at once.
		{name: "publish: rate limited", opts: testbroker.Options{PublishRate: 0.001}, prepare: spendPublishBudget, method: "POST", path: "/v1/streams/{s}/messages", header: jsonHeader, body: `[{"data":"a"},{"data":"b"}]`, status: 429, code: "rate_limited"},
		{name: "publish: too many streams", opts: testbroker.Options{MaxStreams: 1}, prepare: fillStreams, method: "POST", path: "/v1/streams/{s}/messages", body: "x", status: 503, code: "too_many_streams"},
		{name: "publish: store down", storeDown: true, method: "POST", path: "/v1/streams/{s}/messages", body: "x", status: 503, code: "store_unavailable"},

		// POST /v1/streams/{stream}/close
		{name: "close", method: "POST", path: "/v1/streams/{s}/close", status: 200},
		{name: "close with data", prepare: publishTo(defaultStream, nil), method: "POST", path: "/v1/streams/{s}/close", header: jsonHeader, body: `{"data":{"reason":"done"}}`, status: 200},
		{name: "close: bad stream id", method: "POST", path: "/v1/streams/bad!id/close", status: 400, code: "invalid_stream_id", docRejects: true},
		{name: "close: not JSON", method: "POST", path: "/v1/streams/{s}/close", header: jsonHeader, body: `{`, status: 400, code: "invalid_json", docRejects: true},
		{name: "close: not an object", method: "POST", path: "/v1/streams/{s}/close", header: jsonHeader, body: `[1]`, status: 400, code: "invalid_event", docRejects: true},
		{name: "close: unknown member", method: "POST", path: "/v1/streams/{s}/close", header: jsonHeader, body: `{"event":"x"}`, status: 400, code: "invalid_event", docRejects: true},
		{name: "close: closed already", prepare: closeStream, method: "POST", path: "/v1/streams/{s}/close", status: 409, code: "stream_closed"},
		{name: "close: body too large", opts: testbroker.Options{MaxBody: 16}, method: "POST", path: "/v1/streams/{s}/close", header: jsonHeader, body: `{"data":"` + long + `"}`, status: 413, code: "body_too_large"},
		{name: "close: rate limited", opts: testbroker.Options{PublishRate: 0.001}, prepare: spendPublishBudget, method: "POST", path: "/v1/streams/{s}/close", status: 429, code: "rate_limited"},
		{name: "close: too many streams", opts: testbroker.Options{MaxStreams: 1}, prepare: fillStreams, method: "POST", path: "/v1/streams/{s}/close", status: 503, code: "too_many_streams"},
		{name: "close: store down", storeDown: true, method: "POST", path: "/v1/streams/{s}/close", status: 503, code: "store_unavailable"},

		// GET /v1/streams/{stream}/events
		{name: "subscribe to a new stream", method: "GET", path: "/v1/streams/{s}/events", status: 200},
		{name: "subscribe from 0", prepare: publishTo(defaultStream, nil), method: "GET", path: "/v1/streams/{s}/events", header: http.Header{"Last-Event-ID": {"0"}}, status: 200},
		{name: "subscribe across a gap (?lastEventId)", prepare: publishTo(defaultStream, nil), method: "GET", path: "/v1/streams/{s}/events?lastEventId=1", status: 200},
		{name: "subscribe past stop", prepare: closeStream, method: "GET", path: "/v1/streams/{s}/events", header: http.Header{"Last-Event-ID": {maxID}}, status: 204},
		{name: "subscribe: bad stream id", method: "GET", path: "/v1/streams/bad!id/events", status: 400, code: "invalid_stream_id", docRejects: true},
		{name: "subscribe: leading zero", method: "GET", path: "/v1/streams/{s}/events", header: http.Header{"Last-Event-ID": {"007"}}, status: 400, code: "invalid_last_event_id", docRejects: true},
		{name: "subscribe: ?lastEventId not digits", method: "GET", path: "/v1/streams/{s}/events?lastEventId=abc", status: 400, code: "invalid_last_event_id", docRejects: true},
		// 20 digits over 2^64-1: a pattern cannot say so.
		{name: "subscribe: id over 2^64-1", method: "GET", path: "/v1/streams/{s}/events?lastEventId=99999999999999999999", status: 400, code: "invalid_last_event_id"},
		{
			name: "subscribe: rate limited", opts: testbroker.Options{SubscribeRate: 0.001},
			// One subscription (a 204 one, which ends at once) spends the budget.
			prepare: func(t *testing.T, b *testbroker.Broker) string {
				closeStream(t, b)
				mustDo(t, b, "GET", "/v1/streams/"+defaultStream+"/events", http.Header{"Last-Event-ID": {maxID}}, "", http.StatusNoContent)
				return ""
			},
			method: "GET", path: "/v1/streams/{s}/events", status: 429, code: "rate_limited",
		},
		{
			name: "subscribe: too many subscribers", opts: testbroker.Options{MaxSubscribers: 1},
			prepare: func(t *testing.T, b *testbroker.Broker) string { openSubscription(t, b); return "" },
			method:  "GET", path: "/v1/streams/{s}/events", status: 503, code: "too_many_subscribers",
		},
		{name: "subscribe: store down", storeDown: true, method: "GET", path: "/v1/streams/{s}/events", status: 503, code: "store_unavailable"},

		// GET /v1/streams/{stream}
		{name: "info", prepare: publishTo(defaultStream, nil), method: "GET", path: "/v1/streams/{s}", status: 200, contains: `"retained":2`},
		{
			name: "info of an empty stream (null ids)", method: "GET", path: "/v1/streams/{s}", status: 200, contains: `"first_id":null`,
			prepare: func(t *testing.T, b *testbroker.Broker) string {
				status, _, body := b.Do(t, "POST", "/v1/streams", nil, "")
				var created struct{ Stream string }
				if err := json.Unmarshal([]byte(body), &created); status != http.StatusCreated || err != nil {
					t.Fatalf("prepare: create: %d %s", status, body)
				}
				return created.Stream
			},
		},
		{name: "info: unknown stream", method: "GET", path: "/v1/streams/{s}", status: 404, code: "not_found"},
		{name: "info: dots alone", method: "GET", path: "/v1/streams/...", status: 400, code: "invalid_stream_id", docRejects: true},
		{name: "info: store down", storeDown: true, method: "GET", path: "/v1/streams/{s}", status: 503, code: "store_unavailable"},

		// GET /v1/streams/{stream}/messages
		{name: "history", prepare: publishTo(defaultStream, nil), method: "GET", path: "/v1/streams/{s}/messages?after=0&limit=1", status: 200, contains: `"data":"first"`},
		{name: "history, limit above 1000", prepare: closeStream, method: "GET", path: "/v1/streams/{s}/messages?limit=5000", status: 200},
		{name: "history: after with a leading zero", method: "GET", path: "/v1/streams/{s}/messages?after=01", status: 400, code: "invalid_last_event_id", docRejects: true},
		{name: "history: limit 0", method: "GET", path: "/v1/streams/{s}/messages?limit=0", status: 400, code: "invalid_request", docRejects: true},
		{name: "history: limit not a number", method: "GET", path: "/v1/streams/{s}/messages?limit=ten", status: 400, code: "invalid_request", docRejects: true},
		{name: "history: bad stream id", method: "GET", path: "/v1/streams/bad!id/messages", status: 400, code: "invalid_stream_id", docRejects: true},
		{name: "history: unknown stream", method: "GET", path: "/v1/streams/{s}/messages", status: 404, code: "not_found"},
		{name: "history: store down", storeDown: true, method: "GET", path: "/v1/streams/{s}/messages", status: 503, code: "store_unavailable"},

		// DELETE /v1/streams/{stream}
		{name: "delete", prepare: publishTo(defaultStream, nil), method: "DELETE", path: "/v1/streams/{s}", status: 204},
		{name: "delete: unknown stream", method: "DELETE", path: "/v1/streams/{s}", status: 404, code: "not_found"},
		{name: "delete: bad stream id", method: "DELETE", path: "/v1/streams/bad!id", status: 400, code: "invalid_stream_id", docRejects: true},
		{name: "delete: store down", storeDown: true, method: "DELETE", path: "/v1/streams/{s}", status: 503, code: "store_unavailable"},

		// POST /v1/demo/chat
		{name: "demo chat", opts: testbroker.Options{DemoTokenDelay: time.Millisecond}, method: "POST", path: "/v1/demo/chat", header: jsonHeader, body: `{"stream":"s","message":"Hello?"}`, status: 202},
		{name: "demo chat: not JSON", method: "POST", path: "/v1/demo/chat", header: jsonHeader, body: `{`, status: 400, code: "invalid_json", docRejects: true},
		{name: "demo chat: empty message", method: "POST", path: "/v1/demo/chat", header: jsonHeader, body: `{"stream":"s","message":""}`, status: 400, code: "invalid_request", docRejects: true},
		{name: "demo chat: message not a string", method: "POST", path: "/v1/demo/chat", header: jsonHeader, body: `{"stream":"s","message":5}`, status: 400, code: "invalid_request", docRejects: true},
		{name: "demo chat: bad stream id", method: "POST", path: "/v1/demo/chat", header: jsonHeader, body: `{"stream":"..","message":"hi"}`, status: 400, code: "invalid_stream_id", docRejects: true},
		{name: "demo chat: demo off", opts: testbroker.Options{NoDemo: true}, method: "POST", path: "/v1/demo/chat", header: jsonHeader, body: `{"stream":"s","message":"hi"}`, status: 404, code: "not_found"},
		{name: "demo chat: body too large", opts: testbroker.Options{MaxBody: 16}, method: "POST", path: "/v1/demo/chat", header: jsonHeader, body: `{"stream":"s","message":"a question"}`, status: 413, code: "body_too_large"},
		{name: "demo chat: closed stream", prepare: closeStream, method: "POST", path: "/v1/demo/chat", header: jsonHeader, body: `{"stream":"s","message":"hi"}`, status: 409, code: "stream_closed"},
		{name: "demo chat: too many streams", opts: testbroker.Options{MaxStreams: 1}, prepare: fillStreams, method: "POST", path: "/v1/demo/chat", header: jsonHeader, body: `{"stream":"s","message":"hi"}`, status: 503, code: "too_many_streams"},
		{name: "demo chat: store down", storeDown: true, method: "POST", path: "/v1/demo/chat", header: jsonHeader, body: `{"stream":"s","message":"hi"}`, status: 503, code: "store_unavailable"},
		{name: "demo chat: rate limited", opts: testbroker.Options{PublishRate: 0.001}, prepare: spendPublishBudget, method: "POST", path: "/v1/demo/chat", header: jsonHeader, body: `{"stream":"s","message":"hi"}`, status: 429, code: "rate_limited"},

		// Operations and the demo page.
		{name: "healthz", method: "GET", path: "/healthz", status: 200},
		{name: "readyz", method: "GET", path: "/readyz", status: 200},
		{name: "readyz: store down", storeDown: true, method: "GET", path: "/readyz", status: 503, code: "store_unavailable"},
		{
			name: "readyz: shutting down", method: "GET", path: "/readyz", status: 503, code: "store_unavailable",
			prepare: func(t *testing.T, b *testbroker.Broker) string {
				if err := b.API.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
				return ""
			},
		},
		{name: "metrics", prepare: publishTo(defaultStream, nil), method: "GET", path: "/metrics", status: 200},
		{name: "demo page", method: "GET", path: "/", status: 200},
		{name: "demo page: demo off", opts: testbroker.Options{NoDemo: true}, method: "GET", path: "/", status: 404, code: "not_found"},

		// The operator's page.
		{name: "admin page", method: "GET", path: "/admin", status: 200},
		{name: "admin page, trailing slash", method: "GET", path: "/admin/", status: 200},
		{name: "admin snapshot", prepare: publishTo(defaultStream, nil), method: "GET", path: "/admin/api/streams", status: 200, contains: `"stream":"s"`},
		{
			name: "admin snapshot, a subscriber waiting for a new stream", method: "GET", path: "/admin/api/streams", status: 200, contains: `"exists":false`,
			prepare: func(t *testing.T, b *testbroker.Broker) string { openSubscription(t, b); return "" },
		},
		{name: "admin live", method: "GET", path: "/admin/api/live", status: 200},
		{
			name: "admin live: rate limited", opts: testbroker.Options{SubscribeRate: 0.001},
			prepare: func(t *testing.T, b *testbroker.Broker) string { openStream(t, b, "/admin/api/live"); return "" },
			method:  "GET", path: "/admin/api/live", status: 429, code: "rate_limited",
		},
		{
			name: "admin live: too many live pages",
			prepare: func(t *testing.T, b *testbroker.Broker) string {
				for range 64 {
					openStream(t, b, "/admin/api/live")
				}
				return ""
			},
			method: "GET", path: "/admin/api/live", status: 503, code: "too_many_subscribers",
		},
		{name: "admin page: off", opts: testbroker.Options{NoAdmin: true}, method: "GET", path: "/admin", status: 404, code: "not_found"},
		{name: "admin page, trailing slash: off", opts: testbroker.Options{NoAdmin: true}, method: "GET", path: "/admin/", status: 404, code: "not_found"},
		{name: "admin snapshot: off", opts: testbroker.Options{NoAdmin: true}, method: "GET", path: "/admin/api/streams", status: 404, code: "not_found"},
		{name: "admin live: off", opts: testbroker.Options{NoAdmin: true}, method: "GET", path: "/admin/api/live", status: 404, code: "not_found"},
		{name: "auth: admin snapshot, subscribe-all token", opts: authOn, method: "GET", path: "/admin/api/streams", header: bearer(admin), status: 200},

		// Requests of no operation.
		{name: "unknown path", method: "GET", path: "/v1/nothing-here", status: 404, code: "not_found", undeclared: "NotFound"},
		{name: "wrong method on a stream", method: "PUT", path: "/v1/streams/{s}", body: "x", status: 405, code: "method_not_allowed", undeclared: "MethodNotAllowed"},
		{name: "wrong method on healthz", method: "POST", path: "/healthz", status: 405, code: "method_not_allowed", undeclared: "MethodNotAllowed"},

		// With auth on: the three places a token can be.
		{name: "auth: create, bearer token", opts: authOn, method: "POST", path: "/v1/streams", header: with(bearer(admin), "Content-Type", "application/json"), body: `{"prefix":"chat-"}`, status: 201},
		{name: "auth: subscribe, access_token query", opts: authOn, method: "GET", path: "/v1/streams/{s}/events?access_token=" + admin, status: 200},
		{name: "auth: info, access_token cookie", opts: authOn, prepare: publishTo(defaultStream, bearer(admin)), method: "GET", path: "/v1/streams/{s}", header: http.Header{"Cookie": {"access_token=" + admin}}, status: 200},
		{name: "auth: bad token", opts: authOn, method: "GET", path: "/v1/streams/{s}", header: bearer("not-a-jwt"), status: 401, code: "unauthorized"},
	}

	// Every operation behind auth: no token is 401, a token without the
	// right 403.
	authed := []struct {
		method, path string
		header       http.Header
		body         string
	}{
		{"POST", "/v1/streams", nil, ""},
		{"POST", "/v1/streams/{s}/messages", nil, "x"},
		{"POST", "/v1/streams/{s}/close", nil, ""},
		{"GET", "/v1/streams/{s}/events", nil, ""},
		{"GET", "/v1/streams/{s}", nil, ""},
		{"GET", "/v1/streams/{s}/messages", nil, ""},
		{"DELETE", "/v1/streams/{s}", nil, ""},
		{"POST", "/v1/demo/chat", jsonHeader, `{"stream":"s","message":"hi"}`},
		{"GET", "/admin", nil, ""},
		{"GET", "/admin/", nil, ""},
		{"GET", "/admin/api/streams", nil, ""},
		{"GET", "/admin/api/live", nil, ""},
	}
	for _, c := range authed {
		rows = append(rows,
			exchange{name: "auth: no token: " + c.method + " " + c.path, opts: authOn,
				method: c.method, path: c.path, header: c.header, body: c.body, status: 401, code: "unauthorized"},
			exchange{name: "auth: no right: " + c.method + " " + c.path, opts: authOn,
				method: c.method, path: c.path, header: with(c.header, "Authorization", "Bearer "+none), body: c.body, status: 403, code: "forbidden"},
		)
	}
	return rows
}

// unreachableStatus are statuses the document declares that no test can
// provoke, with the reason. The coverage guard accepts them unseen.
var unreachableStatus = map[int]string{
	// 500 "internal" is the answer to an error the transport does not map
	// (a bug) or to a panic; a broker that works never gives one.
	http.StatusInternalServerError: "internal: only a bug or a panic answers it",
}

// unreachableCode are error codes no test can provoke, with the reason.
var unreachableCode = map[string]string{
	"internal": "only a bug or a panic answers it",
}

// coverage records what the table exercised.
type coverage struct {
	ops        map[string]bool // "METHOD /path"
	statuses   map[string]bool // "METHOD /path STATUS"
	codes      map[string]bool
	undeclared map[string]bool // components.responses entries
}

func opKey(method, path string) string { return method + " " + path }

func TestOpenAPIMatchesRealAnswers(t *testing.T) {
	s := loadSpec(t)
	cov := coverage{ops: map[string]bool{}, statuses: map[string]bool{}, codes: map[string]bool{}, undeclared: map[string]bool{}}
	for _, x := range table(t) {
		t.Run(x.name, func(t *testing.T) { s.check(t, x, &cov) })
	}
	if t.Failed() {
		return // coverage of a failed run says nothing
	}
	s.checkCoverage(t, cov)
}

// check runs one row: the request against the document, the request against
// a fresh broker, the answer against the row and the document.
func (s spec) check(t *testing.T, x exchange, cov *coverage) {
	var base string
	stream := defaultStream
	if x.storeDown {
		base = storeDown(t)
	} else {
		b := testbroker.Start(t, x.opts)
		if x.prepare != nil {
			if id := x.prepare(t, b); id != "" {
				stream = id
			}
		}
		base = b.URL
	}
	path := strings.ReplaceAll(x.path, "{s}", stream)
	ctx := context.Background()

	// The request, as the document sees it.
	docReq := x.request(t, context.Background(), base, path)
	route, params, routeErr := s.router.FindRoute(docReq)
	var in *openapi3filter.RequestValidationInput
	switch {
	case x.undeclared != "":
		want := routers.ErrPathNotFound
		if x.undeclared == "MethodNotAllowed" {
			want = routers.ErrMethodNotAllowed
		}
		if !errors.Is(routeErr, want) {
			t.Fatalf("the document routes %s %s (%v); the row says no operation covers it (%v)", x.method, path, routeErr, want)
		}
		in = s.undeclaredInput(t, docReq, x.undeclared, x.status)
	case routeErr != nil:
		t.Fatalf("the document has no operation for %s %s: %v", x.method, path, routeErr)
	default:
		in = &openapi3filter.RequestValidationInput{Request: docReq, PathParams: params, Route: route, Options: validationOptions()}
		err := openapi3filter.ValidateRequest(ctx, in)
		switch {
		case x.docRejects && err == nil:
			t.Errorf("the document accepts the request; the broker refuses it (%d %s)", x.status, x.code)
		case !x.docRejects && err != nil:
			t.Errorf("the document refuses the request: %v", err)
		}
		s.checkCredentials(t, in)
		cov.ops[opKey(route.Method, route.Path)] = true
	}

	// The request, as the broker answers it.
	status, header, body := send(t, x.request(t, ctx, base, path))
	if status != x.status {
		t.Fatalf("status %d, want %d; body %s", status, x.status, body)
	}
	if x.code != "" {
		var e struct{ Error string }
		if err := json.Unmarshal(body, &e); err != nil || e.Error != x.code {
			t.Fatalf("error %q (%v), want %q; body %s", e.Error, err, x.code, body)
		}
		cov.codes[x.code] = true
	}
	if !strings.Contains(string(body), x.contains) {
		t.Errorf("body %s does not hold %q", body, x.contains)
	}
	for k, v := range x.want {
		if got := header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}

	// The answer, as the document describes it.
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: in.Options}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Fatalf("the answer breaks the document: %v\nbody: %s", err, body)
	}
	if x.undeclared != "" {
		cov.undeclared[x.undeclared] = true
	} else {
		cov.statuses[opKey(route.Method, route.Path)+" "+strconv.Itoa(status)] = true
	}
}

// request builds the row's request; each call makes a fresh one, since
// validation reads (and may rewrite) the body.
func (x exchange) request(t *testing.T, ctx context.Context, base, path string) *http.Request {
	t.Helper()
	var body io.Reader
	if x.body != "" {
		body = strings.NewReader(x.body)
	}
	req, err := http.NewRequestWithContext(ctx, x.method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range x.header {
		for _, v := range vs {
			req.Header.Add(k, v) // canonical keys, as a server sees them
		}
	}
	return req
}

// undeclaredInput is a validation input for an answer no operation of the
// document covers: a stand-in operation that declares only the named
// components.responses entry under status.
func (s spec) undeclaredInput(t *testing.T, req *http.Request, name string, status int) *openapi3filter.RequestValidationInput {
	t.Helper()
	resp := s.doc.Components.Responses[name]
	if resp == nil {
		t.Fatalf("components.responses has no %s", name)
	}
	op := &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(status, resp))}
	route := &routers.Route{Spec: s.doc, Method: req.Method, Operation: op, PathItem: &openapi3.PathItem{}}
	return &openapi3filter.RequestValidationInput{Request: req, Route: route, Options: validationOptions()}
}

// checkCredentials checks the security schemes against the request: one of
// them must find the credential the request carries, and none may find one
// in a request without. (The empty requirement, for a broker without auth,
// lets every request through, so ValidateRequest alone would not tell.)
func (s spec) checkCredentials(t *testing.T, in *openapi3filter.RequestValidationInput) {
	t.Helper()
	reqs := s.doc.Security
	if in.Route.Operation.Security != nil {
		reqs = *in.Route.Operation.Security
	}
	var withToken openapi3.SecurityRequirements
	for _, r := range reqs {
		if len(r) > 0 {
			withToken = append(withToken, r)
		}
	}
	if len(withToken) == 0 {
		return // an operation without auth
	}
	r := in.Request
	_, cookieErr := r.Cookie("access_token")
	carries := r.Header.Get("Authorization") != "" || r.URL.Query().Has("access_token") || cookieErr == nil
	err := openapi3filter.ValidateSecurityRequirements(context.Background(), in, withToken)
	if carries != (err == nil) {
		t.Errorf("request carries a token: %v; the security schemes find one: %v (%v)", carries, err == nil, err)
	}
}

// send sends req and returns the answer. Of an event stream it reads only
// the first block (the retry line) and then hangs up: the body is endless.
func send(t *testing.T, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt == "text/event-stream" {
		block, err := firstBlock(bufio.NewReader(res.Body))
		if err != nil {
			t.Fatalf("reading the first block of the event stream: %v", err)
		}
		if block != "retry: 3000\n\n" {
			t.Fatalf("first block %q, want %q", block, "retry: 3000\n\n")
		}
		return res.StatusCode, res.Header, []byte(block)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL.Path, err)
	}
	return res.StatusCode, res.Header, body
}

// firstBlock reads lines up to and including the first blank one.
func firstBlock(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if line == "\n" {
			return b.String(), nil
		}
	}
}

// checkCoverage is the drift guard: every operation of the document was
// called, every status it declares was answered (or is unreachable), every
// error code was seen (or is unreachable), and every components.responses
// entry is used by an operation or was answered to a request of none.
func (s spec) checkCoverage(t *testing.T, cov coverage) {
	var missingOps, missingStatus []string
	used := map[string]bool{}
	for path, item := range s.doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := opKey(method, path)
			if !cov.ops[key] {
				missingOps = append(missingOps, key)
			}
			for code, ref := range op.Responses.Map() {
				if name, ok := strings.CutPrefix(ref.Ref, "#/components/responses/"); ok {
					used[name] = true
				}
				status, err := strconv.Atoi(code)
				if err != nil {
					t.Errorf("%s: response %q is not a status code", key, code)
					continue
				}
				if _, ok := unreachableStatus[status]; !ok && !cov.statuses[key+" "+code] {
					missingStatus = append(missingStatus, key+" "+code)
				}
			}
		}
	}
	slices.Sort(missingOps)
	slices.Sort(missingStatus)
	if len(missingOps) > 0 {
		t.Errorf("operations of openapi.yaml no row calls:\n  %s", strings.Join(missingOps, "\n  "))
	}
	if len(missingStatus) > 0 {
		t.Errorf("declared answers no row provokes (add a row, or to unreachableStatus with the reason):\n  %s", strings.Join(missingStatus, "\n  "))
	}

	codes := s.doc.Components.Schemas["ErrorCode"].Value.Enum
	if len(codes) == 0 {
		t.Fatal("components.schemas.ErrorCode has no enum")
	}
	var missingCodes []string
	for _, c := range codes {
		code := fmt.Sprint(c)
		if _, ok := unreachableCode[code]; !ok && !cov.codes[code] {
			missingCodes = append(missingCodes, code)
		}
	}
	if len(missingCodes) > 0 {
		t.Errorf("error codes no row provokes: %v", missingCodes)
	}
	for code := range cov.codes {
		if !slices.ContainsFunc(codes, func(c any) bool { return c == code }) {
			t.Errorf("the broker answered error %q, which ErrorCode does not list", code)
		}
	}

	for name := range s.doc.Components.Responses {
		if !used[name] && !cov.undeclared[name] {
			t.Errorf("components.responses.%s is used by no operation and answered to no row", name)
		}
	}
}

// ---------------------------------------------------------------------------
// The validator checks what it is given.

// TestOpenAPICatchesWrongAnswers hands the validator hand-made answers:
// correct ones, which must pass, and each one slightly broken, which must
// fail. So a green table means the real answers were checked, not waved
// through.
func TestOpenAPICatchesWrongAnswers(t *testing.T) {
	s := loadSpec(t)
	// base holds every header some answer needs; a case removes one by
	// setting it to "".
	base := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"d0abcdefghijklmnopqr"}}
	sse := http.Header{"Content-Type": {"text/event-stream"}, "Cache-Control": {"no-cache"}, "X-Accel-Buffering": {"no"}}
	limited := http.Header{"Retry-After": {"1"}}
	unauthorized := http.Header{"Www-Authenticate": {`Bearer realm="sse-broker"`}}
	const info = `{"stream":"s","first_id":%s,"last_id":null,"retained":0,"subscribers":0,"closed":false,"created_at":"%s"}`
	cases := []struct {
		name         string
		ok           bool
		method, path string
		status       int
		header       http.Header
		body         string
	}{
		{"publish 201", true, "POST", "/v1/streams/s/messages", 201, nil, `{"stream":"s","ids":["5","6"]}`},
		{"publish 201 without ids", false, "POST", "/v1/streams/s/messages", 201, nil, `{"stream":"s"}`},
		{"publish 201 with a numeric id", false, "POST", "/v1/streams/s/messages", 201, nil, `{"stream":"s","ids":[5]}`},
		{"publish 201 with an id of 21 digits", false, "POST", "/v1/streams/s/messages", 201, nil, `{"stream":"s","ids":["123456789012345678901"]}`},
		{"publish 201 with an extra member", false, "POST", "/v1/streams/s/messages", 201, nil, `{"stream":"s","ids":["5"],"replayed":true}`},
		{"publish 201 as text", false, "POST", "/v1/streams/s/messages", 201, http.Header{"Content-Type": {"text/plain"}}, `ok`},
		{"publish answering an undeclared status", false, "POST", "/v1/streams/s/messages", 418, nil, `{"error":"internal","message":"m"}`},

		{"publish 400", true, "POST", "/v1/streams/s/messages", 400, nil, `{"error":"invalid_event","message":"m"}`},
		{"publish 400 with a code of another status", false, "POST", "/v1/streams/s/messages", 400, nil, `{"error":"not_found","message":"m"}`},
		{"publish 400 without a message", false, "POST", "/v1/streams/s/messages", 400, nil, `{"error":"invalid_event"}`},

		{"close 200", true, "POST", "/v1/streams/s/close", 200, nil, `{"stream":"s","ids":["1"]}`},
		{"close 200 with two ids", false, "POST", "/v1/streams/s/close", 200, nil, `{"stream":"s","ids":["1","2"]}`},

		{"info 200", true, "GET", "/v1/streams/s", 200, nil, fmt.Sprintf(info, `"1"`, "2025-01-02T03:04:05.678Z")},
		{"info 200 with a time without milliseconds", false, "GET", "/v1/streams/s", 200, nil, fmt.Sprintf(info, `"1"`, "2025-01-02T03:04:05Z")},
		{"info 200 with a time that is not a time", false, "GET", "/v1/streams/s", 200, nil, fmt.Sprintf(info, `"1"`, "yesterday")},
		{"info 200 with a numeric first_id", false, "GET", "/v1/streams/s", 200, nil, fmt.Sprintf(info, `1`, "2025-01-02T03:04:05.678Z")},

		{"history 200", true, "GET", "/v1/streams/s/messages", 200, nil, `{"stream":"s","events":[{"id":"1","event":"message","data":"","time":"2025-01-02T03:04:05.678Z"}],"gap":false}`},
		{"history 200 without gap", false, "GET", "/v1/streams/s/messages", 200, nil, `{"stream":"s","events":[]}`},
		{"history 200 with data as JSON", false, "GET", "/v1/streams/s/messages", 200, nil, `{"stream":"s","events":[{"id":"1","event":"message","data":{},"time":"2025-01-02T03:04:05.678Z"}],"gap":false}`},

		{"429", true, "POST", "/v1/streams/s/messages", 429, limited, `{"error":"rate_limited","message":"m"}`},
		{"429 without Retry-After", false, "POST", "/v1/streams/s/messages", 429, nil, `{"error":"rate_limited","message":"m"}`},
		{"401", true, "GET", "/v1/streams/s", 401, unauthorized, `{"error":"unauthorized","message":"m"}`},
		{"401 without WWW-Authenticate", false, "GET", "/v1/streams/s", 401, nil, `{"error":"unauthorized","message":"m"}`},

		{"healthz 200", true, "GET", "/healthz", 200, nil, `{"status":"ok"}`},
		{"healthz 200 without X-Request-Id", false, "GET", "/healthz", 200, http.Header{"X-Request-Id": {""}}, `{"status":"ok"}`},

		{"event stream", true, "GET", "/v1/streams/s/events", 200, sse, "retry: 3000\n\n"},
		{"event stream without X-Accel-Buffering", false, "GET", "/v1/streams/s/events", 200, with(sse, "X-Accel-Buffering", ""), "retry: 3000\n\n"},
		{"event stream as JSON", false, "GET", "/v1/streams/s/events", 200, with(sse, "Content-Type", "application/json"), `{}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := base.Clone()
			for k, v := range c.header {
				if v[0] == "" {
					h.Del(k)
				} else {
					h[k] = v
				}
			}
			err := s.validateAnswer(t, c.method, c.path, c.status, h, c.body)
			switch {
			case c.ok && err != nil:
				t.Fatalf("ValidateResponse refuses a correct answer: %v", err)
			case !c.ok && err == nil:
				t.Fatalf("ValidateResponse accepts %d %v %s", c.status, h, c.body)
			}
		})
	}
}

// validateAnswer validates a hand-made answer to method path.
func (s spec) validateAnswer(t *testing.T, method, path string, status int, header http.Header, body string) error {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: validationOptions()}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: in.Options}
	out.SetBodyBytes(bytes.Clone([]byte(body)))
	return openapi3filter.ValidateResponse(context.Background(), out)
}

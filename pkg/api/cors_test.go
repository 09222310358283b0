package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sse-broker/broker/internal/testbroker"
)

const (
	allowedOrigin = "https://app.example"
	foreignOrigin = "https://evil.example"
)

// preflight sends the OPTIONS a browser sends before a cross-origin
// request with method and the non-simple request headers.
func preflight(t *testing.T, b *testbroker.Broker, path, origin, method, headers string) (int, http.Header) {
	t.Helper()
	h := http.Header{"Origin": {origin}, "Access-Control-Request-Method": {method}}
	if headers != "" {
		h.Set("Access-Control-Request-Headers", headers)
	}
	status, rh, _ := b.Do(t, http.MethodOptions, path, h, "")
	return status, rh
}

// Every /v1 route answers a preflight from an allowed origin, without a
// token even when auth is on.
func TestCORSPreflightAllowedOrigin(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{
		CORSOrigins: []string{allowedOrigin, "http://localhost:3000"},
		Auth:        rateLimitVerifier(t),
	})
	for _, tc := range []struct{ method, path, headers string }{
		{"POST", "/v1/streams", "authorization, content-type"},
		{"POST", "/v1/streams/s/messages", "content-type, idempotency-key, authorization"},
		{"POST", "/v1/streams/s/close", "content-type"},
		{"GET", "/v1/streams/s/events", "last-event-id"},
		{"GET", "/v1/streams/s/messages", "authorization"},
		{"GET", "/v1/streams/s", "authorization"},
		{"DELETE", "/v1/streams/s", "authorization"},
		{"POST", "/v1/demo/chat", "content-type"},
	} {
		status, h := preflight(t, b, tc.path, allowedOrigin, tc.method, tc.headers)
		if status/100 != 2 {
			t.Errorf("preflight %s %s: status %d, want 2xx", tc.method, tc.path, status)
		}
		if got := h.Get("Access-Control-Allow-Origin"); got != allowedOrigin {
			t.Errorf("preflight %s %s: Allow-Origin %q, want %q", tc.method, tc.path, got, allowedOrigin)
		}
		if got := h.Get("Access-Control-Allow-Credentials"); got != "true" {
			t.Errorf("preflight %s %s: Allow-Credentials %q, want true", tc.method, tc.path, got)
		}
		if got := h.Get("Access-Control-Allow-Methods"); got != tc.method {
			t.Errorf("preflight %s %s: Allow-Methods %q", tc.method, tc.path, got)
		}
		if got := strings.ToLower(h.Get("Access-Control-Allow-Headers")); got != tc.headers {
			t.Errorf("preflight %s %s: Allow-Headers %q, want %q", tc.method, tc.path, got, tc.headers)
		}
		if h.Get("Access-Control-Max-Age") == "" {
			t.Errorf("preflight %s %s: no Max-Age", tc.method, tc.path)
		}
		if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
			t.Errorf("preflight %s %s: Vary %q lacks Origin", tc.method, tc.path, h.Values("Vary"))
		}
	}

	// The actual request: the origin is echoed with credentials, and the
	// headers a page needs are exposed (here on a 401: the page can read
	// why it was refused).
	status, h, _ := b.Do(t, "GET", "/v1/streams/s", http.Header{"Origin": {allowedOrigin}}, "")
	if status != http.StatusUnauthorized {
		t.Fatalf("GET without a token: %d, want 401", status)
	}
	if h.Get("Access-Control-Allow-Origin") != allowedOrigin || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("actual request: Allow-Origin %q Allow-Credentials %q", h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Credentials"))
	}
	exposed := strings.ToLower(h.Get("Access-Control-Expose-Headers"))
	for _, want := range []string{"x-request-id", "idempotent-replayed", "retry-after"} {
		if !strings.Contains(exposed, want) {
			t.Errorf("Expose-Headers %q lacks %s", exposed, want)
		}
	}
}

// A foreign origin, or a header or method the API does not take, gets no
// allow headers: the browser refuses the request.
func TestCORSPreflightRefused(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{CORSOrigins: []string{allowedOrigin}})
	for _, tc := range []struct{ what, origin, method, headers string }{
		{"foreign origin", foreignOrigin, "POST", "content-type"},
		{"origin differing in port", allowedOrigin + ":8443", "POST", "content-type"},
		{"origin differing in scheme", "http://app.example", "POST", "content-type"},
		{"unknown header", allowedOrigin, "POST", "x-custom"},
		{"PUT", allowedOrigin, "PUT", ""},
	} {
		_, h := preflight(t, b, "/v1/streams/s/messages", tc.origin, tc.method, tc.headers)
		for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} {
			if v := h.Get(k); v != "" {
				t.Errorf("%s: %s %q, want none", tc.what, k, v)
			}
		}
	}
	_, h, _ := b.Do(t, "GET", "/v1/streams/s/messages", http.Header{"Origin": {foreignOrigin}}, "")
	if v := h.Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("actual request from a foreign origin: Allow-Origin %q", v)
	}
}

// "*" lets any origin read, never with credentials.
func TestCORSWildcardHasNoCredentials(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{CORSOrigins: []string{"*"}})
	status, h := preflight(t, b, "/v1/streams/s/messages", foreignOrigin, "POST", "content-type")
	if status/100 != 2 || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight with *: %d Allow-Origin %q, want 2xx and *", status, h.Get("Access-Control-Allow-Origin"))
	}
	if v, ok := h["Access-Control-Allow-Credentials"]; ok {
		t.Fatalf("preflight with *: Allow-Credentials %q, want none", v)
	}
	_, h, _ = b.Do(t, "GET", "/v1/streams/s/messages", http.Header{"Origin": {foreignOrigin}}, "")
	if _, ok := h["Access-Control-Allow-Credentials"]; ok || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("actual request with *: Allow-Origin %q Allow-Credentials %q", h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Credentials"))
	}
}

// Without origins the broker sends no CORS headers, and OPTIONS is just a
// method the routes do not have.
func TestCORSOffByDefault(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{})
	status, h := preflight(t, b, "/v1/streams/s/messages", allowedOrigin, "POST", "content-type")
	if status != http.StatusMethodNotAllowed || h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight without CORS: %d Allow-Origin %q, want 405 and none", status, h.Get("Access-Control-Allow-Origin"))
	}
}

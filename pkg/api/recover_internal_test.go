package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// withRecoverer is the head of the real middleware chain (routes) around
// h: logger, request id, recoverer.
func withRecoverer(log *syncBuffer, h http.HandlerFunc) http.Handler {
	return hlog.NewHandler(zerolog.New(log))(
		hlog.RequestIDHandler("req_id", "X-Request-Id")(
			recoverer(h)))
}

// A panic in a handler becomes a 500 with the JSON error body and the
// request id header; the panic value and the stack stay in the log, with
// the same request id.
func TestRecovererAnswers500JSON(t *testing.T) {
	t.Parallel()
	for _, value := range []any{
		"secret detail in a panic",
		errors.New("secret detail in an error"),
		&struct{ Secret string }{"secret detail in a struct"},
	} {
		log := &syncBuffer{}
		srv := httptest.NewServer(withRecoverer(log, func(http.ResponseWriter, *http.Request) {
			panic(value)
		}))
		res, err := http.Get(srv.URL + "/v1/streams/s")
		if err != nil {
			srv.Close()
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(res.Body)
		_ = res.Body.Close()
		srv.Close()

		if res.StatusCode != http.StatusInternalServerError || res.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("panic(%v): %d %q, want 500 application/json", value, res.StatusCode, res.Header.Get("Content-Type"))
		}
		var e struct{ Error, Message string }
		if err := json.Unmarshal(body.Bytes(), &e); err != nil || e.Error != "internal" {
			t.Fatalf("panic(%v): body %q, want {\"error\":\"internal\"}", value, body.String())
		}
		for _, leak := range []string{"secret", "goroutine", ".go:", "panic"} {
			if strings.Contains(body.String(), leak) {
				t.Errorf("panic(%v): the body %q shows %q", value, body.String(), leak)
			}
		}
		reqID := res.Header.Get("X-Request-Id")
		if reqID == "" {
			t.Fatalf("panic(%v): no X-Request-Id header", value)
		}
		var entry struct {
			Level, Message string
			ReqID          string `json:"req_id"`
		}
		found := false
		for line := range strings.Lines(log.String()) {
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Message == "handler panicked" {
				found = true
				break
			}
		}
		if !found || entry.Level != "error" || entry.ReqID != reqID || !strings.Contains(log.String(), "secret detail") {
			t.Fatalf("panic(%v): log %q, want an error line with req_id %s and the panic value", value, log.String(), reqID)
		}
	}
}

// http.ErrAbortHandler is net/http's way to abort a response on purpose:
// it passes through, and the client sees the connection end rather than
// a 500.
func TestRecovererLetsErrAbortHandlerThrough(t *testing.T) {
	t.Parallel()
	log := &syncBuffer{}
	srv := httptest.NewServer(withRecoverer(log, func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler)
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL + "/")
	if err == nil {
		_ = res.Body.Close()
		t.Fatalf("ErrAbortHandler answered %d, want the connection aborted", res.StatusCode)
	}
	if strings.Contains(log.String(), "handler panicked") {
		t.Fatalf("ErrAbortHandler was logged as a panic: %s", log.String())
	}
}

// The recoverer is in the real chain: a route that panics inside the
// Server answers 500 JSON too.
func TestServerRecoversFromHandlerPanics(t *testing.T) {
	t.Parallel()
	log := &syncBuffer{}
	// A Server without a broker panics (nil pointer) in every handler that
	// reaches the broker: a real panic from a real route.
	s := New(Options{Logger: zerolog.New(log), MaxBody: 1 << 10})
	srv := httptest.NewServer(s)
	defer srv.Close()
	res, err := http.Post(srv.URL+"/v1/streams/s/messages", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusInternalServerError || !strings.Contains(body.String(), `"error":"internal"`) {
		t.Fatalf("panicking route: %d %s", res.StatusCode, body.String())
	}
	if strings.Contains(body.String(), "nil pointer") || strings.Contains(body.String(), "goroutine") {
		t.Fatalf("the body shows the panic: %s", body.String())
	}
	if !strings.Contains(log.String(), "handler panicked") || !strings.Contains(log.String(), res.Header.Get("X-Request-Id")) {
		t.Fatalf("log %q lacks the panic line with the request id", log.String())
	}
}

package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/pkg/api"
	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

func pprofServer(t *testing.T, on bool, v *auth.Verifier) *api.Server {
	t.Helper()
	hub := broker.NewHub(10, 16)
	store := memory.New(broker.StoreOptions{MaxEvents: 10, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	t.Cleanup(func() { _ = store.Close() })
	return api.New(api.Options{
		Broker: broker.New(store, hub), Logger: zerolog.Nop(),
		Retry: time.Second, Heartbeat: time.Second, MaxBody: 1 << 10,
		Auth: v, Pprof: on,
	})
}

func pprofStatus(srv http.Handler, path string, h http.Header) int {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec.Code
}

// debug.pprof off: nothing under /debug/pprof/; on: the index and the
// named profiles answer.
func TestPprofOnlyWhenConfigured(t *testing.T) {
	paths := []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"}
	off := pprofServer(t, false, nil)
	for _, p := range paths {
		if code := pprofStatus(off, p, nil); code != http.StatusNotFound {
			t.Errorf("off: GET %s = %d, want 404", p, code)
		}
	}
	on := pprofServer(t, true, nil)
	for _, p := range paths {
		if code := pprofStatus(on, p, nil); code != http.StatusOK {
			t.Errorf("on: GET %s = %d, want 200", p, code)
		}
	}
}

// With auth on, profiles need a token that may publish to every stream.
func TestPprofBehindAuth(t *testing.T) {
	srv := pprofServer(t, true, hsVerifier(t))
	for _, tc := range []struct {
		name   string
		header http.Header
		want   int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"subscriber", bearer(authHS(t, rights(nil, []string{"*"}))), http.StatusForbidden},
		{"publisher of some streams", bearer(authHS(t, rights([]string{"chat-*"}, nil))), http.StatusForbidden},
		{"publisher of every stream", bearer(authHS(t, rights([]string{"*"}, nil))), http.StatusOK},
	} {
		if code := pprofStatus(srv, "/debug/pprof/heap?debug=1", tc.header); code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.want)
		}
	}
}

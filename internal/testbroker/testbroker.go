// Package testbroker starts a whole broker (memory store, hub, API) on a
// real loopback listener for tests, and gives them small helpers to talk to
// it over real HTTP.
package testbroker

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/pkg/api"
	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// Options change the defaults of a test broker (zero values keep them).
type Options struct {
	MaxEvents      int
	MaxAge         time.Duration
	IdleTTL        time.Duration
	MaxStreams     int
	MaxSubscribers int
	Queue          int
	Retry          time.Duration
	Heartbeat      time.Duration
	MaxBody        int64
	NoDemo         bool
	NoAdmin        bool
	DemoTokenDelay time.Duration
	// Log receives the broker's log; nil discards it.
	Log io.Writer
	// Auth verifies tokens; nil: auth off.
	Auth *auth.Verifier
	// CORSOrigins, PublishRate and SubscribeRate are passed to api.Options.
	CORSOrigins                []string
	PublishRate, SubscribeRate float64
}

// Broker is a running test broker.
type Broker struct {
	URL    string
	API    *api.Server
	Broker *broker.Broker
	Server *httptest.Server
}

// Start runs a broker until the test ends.
func Start(t testing.TB, o Options) *Broker {
	t.Helper()
	def := func(v, d int) int {
		if v == 0 {
			return d
		}
		return v
	}
	defDur := func(v, d time.Duration) time.Duration {
		if v == 0 {
			return d
		}
		return v
	}
	hub := broker.NewHub(def(o.MaxSubscribers, 100000), def(o.Queue, 256))
	store := memory.New(broker.StoreOptions{
		MaxEvents:  def(o.MaxEvents, 1000),
		MaxAge:     defDur(o.MaxAge, time.Hour),
		IdleTTL:    defDur(o.IdleTTL, 24*time.Hour),
		MaxStreams: def(o.MaxStreams, 100000),
	}, hub)
	b := broker.New(store, hub)
	logOut := o.Log
	if logOut == nil {
		logOut = io.Discard
	}
	maxBody := o.MaxBody
	if maxBody == 0 {
		maxBody = 1 << 20
	}
	srv := api.New(api.Options{
		Broker:         b,
		Logger:         zerolog.New(logOut),
		Retry:          defDur(o.Retry, 3*time.Second),
		Heartbeat:      defDur(o.Heartbeat, 15*time.Second),
		MaxBody:        maxBody,
		Demo:           !o.NoDemo,
		Admin:          !o.NoAdmin,
		DemoTokenDelay: o.DemoTokenDelay,
		Auth:           o.Auth,
		CORSOrigins:    o.CORSOrigins,
		PublishRate:    o.PublishRate,
		SubscribeRate:  o.SubscribeRate,
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
		_ = store.Close()
	})
	return &Broker{URL: ts.URL, API: srv, Broker: b, Server: ts}
}

// Do sends a request and returns the status, headers and body.
func (b *Broker) Do(t testing.TB, method, path string, header http.Header, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, b.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if host := header.Get("Host"); host != "" {
		req.Host = host // net/http sends req.Host, never a Host header field
	}
	// The server's own client, not http.DefaultClient: every httptest
	// server's Close closes the default transport's idle connections,
	// which breaks a request of a parallel test that was reusing one
	// ("http: CloseIdleConnections called").
	res, err := b.Server.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return res.StatusCode, res.Header, string(data)
}

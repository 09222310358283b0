package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/client"
)

// Failures that no retry can mend end a call at once with an error that
// says why, and errors keep their cause.

// An event id with a control character could never be sent back as
// Last-Event-ID: the event is delivered, then the subscription ends with an
// error instead of reconnecting forever with requests that never leave.
func TestUnsendableEventIDIsFinal(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "retry: 10\n\nid: 1\x012\ndata: x\n\n")
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var final error
	var got []string
	for ev, err := range client.New(srv.URL).Subscribe(ctx, "s", client.SubscribeOptions{}) {
		if err != nil {
			final = err
			break
		}
		got = append(got, ev.Data)
	}
	if len(got) != 1 || got[0] != "x" {
		t.Fatalf("events %q, want the one event delivered", got)
	}
	if final == nil || errors.Is(final, context.DeadlineExceeded) || !strings.Contains(final.Error(), "control character") {
		t.Fatalf("final error %v, want one about the id's control character", final)
	}
	if hits.Load() != 1 {
		t.Fatalf("%d connections, want 1", hits.Load())
	}
}

// A base URL without http:// or https:// fails every call at once: net/http
// would refuse each attempt, and a subscription would retry it forever.
func TestBaseURLWithoutSchemeIsFinal(t *testing.T) {
	for _, base := range []string{"localhost:8080", "ftp://127.0.0.1:8080"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var final error
		for _, err := range client.New(base).Subscribe(ctx, "s", client.SubscribeOptions{}) {
			final = err
			break
		}
		start := time.Now()
		_, perr := client.New(base).Publish(ctx, "s", client.Message{Data: "x"})
		cancel()
		for what, err := range map[string]error{"subscribe": final, "publish": perr} {
			if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "must start with http://") {
				t.Errorf("%s with base %q: %v, want an error about the URL", what, base, err)
			}
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("publish with base %q took %v: retried what cannot be sent", base, d)
		}
	}
}

// A publish whose context ends while it waits to retry still says what the
// last attempt met: errors.Is and errors.As see the broker's answer.
func TestPublishCancelledInBackoffKeepsTheCause(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":"rate_limited","message":"slow down"}`)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := client.New(srv.URL).Publish(ctx, "s", client.Message{Data: "x"})
	var ae *client.APIError
	if !errors.As(err, &ae) || !errors.Is(err, client.ErrRateLimited) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v: want it to match *APIError, ErrRateLimited and the context's error", err)
	}
}

// A Retry-After too large for a time.Duration in nanoseconds waits the
// cap (5 minutes, plus up to 20% of spread), not whatever the overflow
// wraps to.
func TestHugeRetryAfterWaitsTheCap(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "18446744074")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wait time.Duration
	for _, err := range client.New(srv.URL).Subscribe(ctx, "s", client.SubscribeOptions{
		OnReconnect: func(_ error, w time.Duration) { wait = w; cancel() },
	}) {
		if err != nil {
			break
		}
	}
	if wait < 5*time.Minute || wait > 6*time.Minute {
		t.Fatalf("Retry-After 18446744074 s: waited %v, want the 5 min cap", wait)
	}
}

package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/pkg/api"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// heldStore holds every publish after the first one until release is
// closed, and, like the bolt and Redis stores, gives up with ctx's error
// when ctx ends first.
type heldStore struct {
	broker.Store
	publishes atomic.Int32
	holding   chan struct{} // closed when a publish is being held
	release   chan struct{}
}

func (s *heldStore) Publish(ctx context.Context, stream string, msgs []broker.Message, key string) (broker.PublishResult, error) {
	if s.publishes.Add(1) == 2 {
		close(s.holding)
		select {
		case <-s.release:
		case <-ctx.Done():
			return broker.PublishResult{}, ctx.Err()
		}
	}
	return s.Store.Publish(ctx, stream, msgs, key)
}

// A shutdown that comes while a demo token is inside the store's publish
// still ends the answer with its stop: the page would otherwise wait with
// its Send button disabled for good (docs/operations.md: the demo's
// background answers close their streams).
func TestDemoShutdownDuringAPublishClosesTheStream(t *testing.T) {
	hub := broker.NewHub(10, 64)
	mem := memory.New(broker.StoreOptions{MaxEvents: 100, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	defer mem.Close()
	store := &heldStore{Store: mem, holding: make(chan struct{}), release: make(chan struct{})}
	b := broker.New(store, hub)
	srv := api.New(api.Options{Broker: b, Logger: zerolog.New(io.Discard), Retry: time.Second, Heartbeat: time.Hour,
		MaxBody: 1 << 20, Demo: true, DemoTokenDelay: time.Millisecond})
	ts := httptest.NewServer(srv)
	defer ts.Close()

	res, err := http.Post(ts.URL+"/v1/demo/chat", "application/json", strings.NewReader(`{"stream":"conv","message":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("demo chat: %d", res.StatusCode)
	}
	<-store.holding // the second token is inside Publish

	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdownDone <- srv.Shutdown(ctx)
	}()
	// Shutdown cancels the demo's context at once (nothing else to wait
	// for here); give it ample time to, then let the store answer.
	time.Sleep(200 * time.Millisecond)
	close(store.release)
	if err := <-shutdownDone; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	info, err := b.Info(context.Background(), "conv")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Closed {
		t.Fatalf("after shutdown the demo's stream is open (%d events, no stop): its page waits for good", info.Retained)
	}
}

// A drain whose time ran out elsewhere (a slow upload, say) calls Shutdown
// again with an expired context; with no demo answer streaming it must not
// blame the demo.
func TestDemoShutdownWithNoAnswerAndNoTimeLeft(t *testing.T) {
	hub := broker.NewHub(10, 64)
	mem := memory.New(broker.StoreOptions{MaxEvents: 100, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	defer mem.Close()
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	for range 50 {
		srv := api.New(api.Options{Broker: broker.New(mem, hub), Logger: zerolog.New(io.Discard), Retry: time.Second, Heartbeat: time.Hour, MaxBody: 1 << 20, Demo: true})
		if err := srv.Shutdown(expired); err != nil {
			t.Fatalf("shutdown with no demo answer: %v", err)
		}
	}
}

package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/pkg/api"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// heldStore holds its holdAt-th publish (1 is the first) until release
// is closed, and, like the bolt and Redis stores, gives up with ctx's
// error when ctx ends first.
type heldStore struct {
	broker.Store
	holdAt    int32
	publishes atomic.Int32
	holding   chan struct{} // closed when a publish is being held
	release   chan struct{}
}

func (s *heldStore) Publish(ctx context.Context, stream string, msgs []broker.Message, key string) (broker.PublishResult, error) {
	if s.publishes.Add(1) == s.holdAt {
		close(s.holding)
		select {
		case <-s.release:
		case <-ctx.Done():
			return broker.PublishResult{}, ctx.Err()
		}
	}
	return s.Store.Publish(ctx, stream, msgs, key)
}

// askDemo starts the demo's answer into stream.
func askDemo(t *testing.T, url, stream string) {
	t.Helper()
	res, err := http.Post(url+"/v1/demo/chat", "application/json", strings.NewReader(`{"stream":"`+stream+`","message":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("demo chat: %d", res.StatusCode)
	}
}

// A shutdown that comes while a demo token is inside the store's publish
// still ends the answer with its stop: the page would otherwise wait with
// its Send button disabled for good (docs/operations.md: the demo's
// background answers close their streams).
func TestDemoShutdownDuringAPublishClosesTheStream(t *testing.T) {
	hub := broker.NewHub(10, 64)
	mem := memory.New(broker.StoreOptions{MaxEvents: 100, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	defer mem.Close()
	store := &heldStore{Store: mem, holdAt: 2, holding: make(chan struct{}), release: make(chan struct{})}
	b := broker.New(store, hub)
	srv := api.New(api.Options{Broker: b, Logger: zerolog.New(io.Discard), Retry: time.Second, Heartbeat: time.Hour,
		MaxBody: 1 << 20, Demo: true, DemoTokenDelay: time.Millisecond})
	ts := httptest.NewServer(srv)
	defer ts.Close()

	askDemo(t, ts.URL, "conv")
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
	// The stop says the answer was cut short, so the page does not show
	// it as complete.
	hist, err := b.History(context.Background(), "conv", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if stop := hist.Events[len(hist.Events)-1]; stop.Name != broker.EventStop || stop.Data != "interrupted" {
		t.Fatalf("the cut answer ends with %s %q, want stop \"interrupted\"", stop.Name, stop.Data)
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

// Demo requests still arriving while the drain waits for the answers (net/http
// lets requests in flight finish) are refused with a 503, never started:
// starting one then raced the drain's wait, and the process panicked
// ("WaitGroup is reused before previous Wait has returned").
func TestDemoRequestsDuringShutdownAreRefused(t *testing.T) {
	hub := broker.NewHub(10, 64)
	mem := memory.New(broker.StoreOptions{MaxEvents: 100, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 1 << 20}, hub)
	defer mem.Close()
	log := &syncBuffer{}
	srv := api.New(api.Options{Broker: broker.New(mem, hub), Logger: zerolog.New(log), Retry: time.Second,
		Heartbeat: time.Hour, MaxBody: 1 << 20, Demo: true, DemoTokenDelay: time.Millisecond})
	var refusal atomic.Value // the body of a 503
	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		accepted atomic.Int64
		refused  atomic.Int64
		shutDown atomic.Bool
		late     atomic.Int64 // accepted after a Shutdown had returned
	)
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req := httptest.NewRequest(http.MethodPost, "/v1/demo/chat", strings.NewReader(fmt.Sprintf(`{"stream":"s%d-%d","message":"hi"}`, g, i)))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				wasDown := shutDown.Load()
				srv.ServeHTTP(rec, req)
				switch rec.Code {
				case http.StatusAccepted:
					accepted.Add(1)
					if wasDown {
						late.Add(1)
					}
				case http.StatusServiceUnavailable:
					refused.Add(1)
					refusal.Store(rec.Body.String())
				case http.StatusTooManyRequests: // all 64 places taken
				default:
					t.Errorf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond) // answers streaming
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 200 { // each Shutdown waits for the answers streaming then
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		shutDown.Store(true)
	}
	for deadline := time.Now().Add(5 * time.Second); refused.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // until a request has come after the shutdown
	}
	close(stop)
	wg.Wait()
	if accepted.Load() == 0 || refused.Load() == 0 || late.Load() != 0 {
		t.Fatalf("%d answers accepted (%d after the shutdown), %d refused", accepted.Load(), late.Load(), refused.Load())
	}
	// The refusal says why, and the drain is no store failure in the log.
	if body, _ := refusal.Load().(string); !strings.Contains(body, "shutting down") || strings.Contains(log.String(), "store unavailable") {
		t.Fatalf("a refusal during the drain: %s; the log has a store failure: %v", body, strings.Contains(log.String(), "store unavailable"))
	}
}

// The demo is stopped when the drain starts, also when the wait for the
// subscriptions runs out of time: it was stopped only after that wait
// succeeded, so a subscription still being set up when the drain's time
// ended left the demo publishing into a store about to close, and new
// answers were accepted all through the wait.
func TestShutdownStopsTheDemoWhenTheDrainRunsOutOfTime(t *testing.T) {
	hub := broker.NewHub(10, 64)
	mem := memory.New(broker.StoreOptions{MaxEvents: 1000, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	defer mem.Close()
	b := broker.New(slowReads{mem, 2 * time.Second}, hub)
	srv := api.New(api.Options{Broker: b, Logger: zerolog.New(io.Discard), Retry: time.Second, Heartbeat: time.Hour,
		MaxBody: 1 << 20, Demo: true, DemoTokenDelay: 100 * time.Millisecond})
	ts := httptest.NewServer(srv)
	defer ts.Close()

	askDemo(t, ts.URL, "conv")
	go func() { // a subscription still reading its backlog when the drain's time ends
		if res, err := http.Get(ts.URL + "/v1/streams/other/events"); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}
	}()
	time.Sleep(200 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned nil while a subscription was still being set up")
	}
	// The answer (some 40 tokens, one every 100 ms) is cut short and its
	// stream closed within a token's pause or two, not at its natural end.
	deadline := time.Now().Add(time.Second)
	for {
		info, err := mem.Info(context.Background(), "conv")
		if err != nil {
			t.Fatal(err)
		}
		if info.Closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo's answer still streams after a Shutdown that ran out of time (%d events)", info.Retained)
		}
		time.Sleep(10 * time.Millisecond)
	}
	hist, err := mem.Read(context.Background(), "conv", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if stop := hist.Events[len(hist.Events)-1]; stop.Name != broker.EventStop || stop.Data != "interrupted" {
		t.Fatalf("the cut answer ends with %s %q, want stop \"interrupted\"", stop.Name, stop.Data)
	}
}

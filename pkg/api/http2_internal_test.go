package api

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
	"github.com/sse-broker/broker/pkg/sse"
)

// An HTTP/2 subscription (TLS, or h2c: net/http serves it, it cannot be
// taken over) quiet for longer than the write timeout keeps its stream.
// HTTP/2 turns a write deadline into a timer that resets the stream when
// it fires, written to or not; a deadline left set after a delivery cut
// every idle HTTP/2 subscriber before its first heartbeat.
func TestHTTP2QuietSubscriptionOutlivesTheWriteTimeout(t *testing.T) {
	s, ts := newWriteTimeoutServer(t, 64, 200*time.Millisecond)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	client := ts.Client()

	res, err := client.Get(ts.URL + "/v1/streams/h2/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ProtoMajor != 2 {
		t.Fatalf("subscribed over %s, want HTTP/2", res.Proto)
	}
	events := make(chan sse.Event)
	failed := make(chan error, 1)
	go func() {
		dec := sse.NewDecoder(res.Body)
		for {
			ev, err := dec.Next()
			if err != nil {
				failed <- err
				return
			}
			events <- ev
		}
	}()

	// Quiet for five write timeouts after the retry block, then an event.
	time.Sleep(5 * s.writeTimeout)
	pub, err := client.Post(ts.URL+"/v1/streams/h2/messages", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Body.Close()
	select {
	case ev := <-events:
		if ev.ID == "" || ev.Type != "message" {
			t.Fatalf("got %+v, want the published event", ev)
		}
	case err := <-failed:
		t.Fatalf("the quiet HTTP/2 subscription failed: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the event published after the quiet time did not arrive")
	}
}

// newWriteTimeoutServer is an unstarted test server of a Server on the
// memory store with the given subscriber queue and write timeout; the test
// sets its protocols and starts it.
func newWriteTimeoutServer(t *testing.T, queue int, timeout time.Duration) (*Server, *httptest.Server) {
	t.Helper()
	hub := broker.NewHub(10, queue)
	store := memory.New(broker.StoreOptions{MaxEvents: 10, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	s := New(Options{Broker: broker.New(store, hub), Retry: time.Second, Heartbeat: time.Hour, MaxBody: 1 << 20})
	s.writeTimeout = timeout
	ts := httptest.NewUnstartedServer(s)
	t.Cleanup(func() {
		_ = s.Shutdown(context.Background())
		ts.CloseClientConnections()
		ts.Close()
		_ = store.Close()
	})
	return s, ts
}

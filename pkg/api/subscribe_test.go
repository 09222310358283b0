package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/testbroker"
)

// The thin end-to-end slice: publish over HTTP, receive over SSE, resume.
func TestPublishSubscribeResume(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	sub := subscribe(t, b, "/v1/streams/chat-1/events", "")
	if r, ok := sub.dec.Retry(); ok {
		t.Fatalf("retry before reading = %d", r)
	}
	id1 := publish(t, b, "chat-1", "hello")
	ev := sub.next(t)
	if ev.ID != id1 || ev.Data != "hello" || ev.Type != "message" {
		t.Fatalf("got %+v, want id %s data hello", ev, id1)
	}
	if r, ok := sub.dec.Retry(); !ok || r != 3000 {
		t.Fatalf("retry = %d, %v; want 3000", r, ok)
	}
	id2 := publish(t, b, "chat-1", "world")
	id3 := publish(t, b, "chat-1", "again")

	// A client that saw id1 comes back and gets exactly id2 and id3.
	again := subscribe(t, b, "/v1/streams/chat-1/events", id1)
	for _, want := range []string{id2, id3} {
		if ev := again.next(t); ev.ID != want {
			t.Fatalf("resumed: got id %s, want %s", ev.ID, want)
		}
	}
	stopID := closeStream(t, b, "chat-1")
	if ev := again.next(t); ev.Type != "stop" || ev.ID != stopID || ev.Data != "" {
		t.Fatalf("got %+v, want stop %s", ev, stopID)
	}
	status, _, _ := b.Do(t, http.MethodGet, "/v1/streams/chat-1/events", http.Header{"Last-Event-ID": {stopID}}, "")
	if status != http.StatusNoContent {
		t.Fatalf("resume at stop: status %d, want 204", status)
	}
}

// A closed stream needs no subscriber place: on a full node its late
// reader still gets the backlog and stop, and a resume at stop its 204
// (EventSource gives up for good on the 503). An open stream is refused.
func TestClosedStreamIsReadOnAFullNode(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxSubscribers: 1, Heartbeat: time.Hour})
	publish(t, b, "done", "answer")
	stop := closeStream(t, b, "done")
	publish(t, b, "open", "x")
	_ = rawSubscribe(t, b, "/v1/streams/other/events") // the node is now full
	waitFor(t, "the node to be full", func() bool { return b.Broker.Stats().Subscribers == 1 })

	status, _, body := b.Do(t, http.MethodGet, "/v1/streams/done/events", http.Header{"Last-Event-ID": {stop}}, "")
	if status != http.StatusNoContent {
		t.Errorf("resume at stop on a full node: %d %s, want 204", status, body)
	}
	status, _, body = b.Do(t, http.MethodGet, "/v1/streams/done/events", nil, "")
	if status != http.StatusOK || !strings.Contains(body, "data: answer") || !strings.Contains(body, "event: stop") {
		t.Errorf("late reader of a closed stream on a full node: %d %q, want 200 with the backlog and stop", status, body)
	}
	status, _, body = b.Do(t, http.MethodGet, "/v1/streams/open/events", nil, "")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "too_many_subscribers") {
		t.Errorf("open stream on a full node: %d %s, want 503 too_many_subscribers", status, body)
	}
	if n := b.Broker.Stats().Subscribers; n != 1 {
		t.Errorf("%d subscribers after the closed-stream reads, want 1", n)
	}
}

package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// discardWriter is a ResponseWriter that keeps nothing, with the Flush
// and SetWriteDeadline of net/http's own. (http.ResponseController's
// "not supported" error is allocated on every call; net/http's writer
// supports both.)
type discardWriter struct {
	h        http.Header
	deadline time.Time
}

func (d *discardWriter) SetWriteDeadline(t time.Time) error { d.deadline = t; return nil }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Flush()                      {}

// The subscriber side of delivery allocates nothing per event in steady
// state: the hub's push, Drain, sseWriter's write (metrics, delivery
// latency), the heartbeat check and the flush, as wait runs them.
func TestSubscriberWritePathDoesNotAllocate(t *testing.T) {
	hub := broker.NewHub(10, 64)
	store := memory.New(broker.StoreOptions{MaxEvents: 10, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	t.Cleanup(func() { store.Close() })
	b := broker.New(store, hub)
	sub, err := b.Subscribe(context.Background(), "s", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	w := &discardWriter{h: http.Header{}}
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), srv: &Server{metrics: newMetrics(b), writeTimeout: time.Second}}
	sw.write = sw.writeWire

	const runs = 200
	frames := make([]*broker.Frame, runs+10)
	now := time.Now()
	for i := range frames {
		frames[i] = broker.EncodeFrame("s", []broker.Event{
			{ID: uint64(i + 1), Name: broker.EventMessage, Data: "0123456789abcdef", Time: now},
		}, false)
	}
	next := 0
	deliver := func() {
		hub.Deliver(frames[next])
		next++
		<-sub.Ready()
		reason, err := sw.deliver(sub)
		if err != nil || reason != broker.EndNone {
			t.Fatalf("drain: %v, %v", reason, err)
		}
	}
	for range 5 { // warm up: the queue reaches its steady capacity
		deliver()
	}
	if allocs := testing.AllocsPerRun(runs, deliver); allocs != 0 {
		t.Fatalf("%v allocations per delivered event", allocs)
	}
}

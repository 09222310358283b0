package api

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// A parked subscription's delivery allocates nothing per event in steady
// state: the hub's push, the wake that starts a delivery goroutine, Drain,
// the chunk from the pool, the metrics and the socket write.
func TestParkedWritePathDoesNotAllocate(t *testing.T) {
	hub := broker.NewHub(10, 64)
	store := memory.New(broker.StoreOptions{MaxEvents: 10, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	t.Cleanup(func() { store.Close() })
	b := broker.New(store, hub)
	s := New(Options{Broker: b, Retry: time.Second, Heartbeat: time.Hour})
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}

	sub, err := b.Subscribe(context.Background(), "s", 0)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v1/streams/s/events", nil)
	p := s.newParkedSubscription(r, server, sub)
	s.heartbeats.join()
	s.parked.add(p)
	s.park(r, p)

	const runs = 200
	frames := make([]*broker.Frame, runs+10)
	now := time.Now()
	for i := range frames {
		frames[i] = broker.EncodeFrame("s", []broker.Event{
			{ID: uint64(i + 1), Name: broker.EventMessage, Data: "0123456789abcdef", Time: now},
		}, false)
	}
	// Each delivery is one chunk: size line, the event, CRLF.
	chunkLen := make([]int, len(frames))
	for i, f := range frames {
		chunkLen[i] = len(strconv.FormatInt(int64(len(f.Wire)), 16)) + 2 + len(f.Wire) + 2
	}
	buf := make([]byte, 4096)
	next := 0
	deliver := func() {
		f, n := frames[next], chunkLen[next]
		next++
		hub.Deliver(f)
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(client, buf[:n]); err != nil {
			t.Fatalf("reading the chunk: %v", err)
		}
		if got := buf[n-2-len(f.Wire) : n-2]; !bytes.Equal(got, f.Wire) {
			t.Fatalf("chunk holds %q, want %q", got, f.Wire)
		}
	}
	for range 5 { // warm up: goroutine free list, chunk pool, queue capacity
		deliver()
	}
	if allocs := testing.AllocsPerRun(runs, deliver); allocs != 0 {
		t.Fatalf("%v allocations per delivered event", allocs)
	}
}

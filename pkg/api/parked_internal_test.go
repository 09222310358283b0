package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// parkedPair is a parked subscription to stream "s" on a real socket, fed
// directly through the hub, with the client's end of the socket.
type parkedPair struct {
	hub    *broker.Hub
	server *Server
	client net.Conn
}

// newParkedPair parks a subscription whose deliveries are started by a
// coalescer with the given threshold and delay.
func newParkedPair(t *testing.T, above int, delay time.Duration) *parkedPair {
	t.Helper()
	hub := broker.NewHub(10, 64)
	store := memory.New(broker.StoreOptions{MaxEvents: 10, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	t.Cleanup(func() { store.Close() })
	b := broker.New(store, hub)
	s := New(Options{Broker: b, Retry: time.Second, Heartbeat: time.Hour})
	s.coalesce = newCoalescer(above, delay)
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}

	sub, err := b.Subscribe(context.Background(), "s", 0)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v1/streams/s/events", nil)
	p := s.newParkedSubscription(r, server, sub, time.Now())
	s.heartbeats.join()
	s.parked.add(p)
	s.park(r, p)
	return &parkedPair{hub: hub, server: s, client: client}
}

// frames returns n one-event frames of stream "s", ids from 1.
func testFrames(n int) []*broker.Frame {
	frames := make([]*broker.Frame, n)
	now := time.Now()
	for i := range frames {
		frames[i] = broker.EncodeFrame("s", []broker.Event{
			{ID: uint64(i + 1), Name: broker.EventMessage, Data: "0123456789abcdef", Time: now},
		}, false)
	}
	return frames
}

// chunkLen is the length on the wire of an HTTP/1.1 chunk holding n bytes.
func chunkLen(n int) int {
	return len(strconv.FormatInt(int64(n), 16)) + 2 + n + 2
}

// assertEachDeliveryAllocatesNothing delivers frames one by one, reading
// each back as one chunk, and fails unless a delivery allocates nothing in
// steady state: the hub's push, the wake that starts (or holds) a delivery
// goroutine, Drain, the chunk from the pool, the metrics and the write.
func assertEachDeliveryAllocatesNothing(t *testing.T, pp *parkedPair) {
	t.Helper()
	const runs = 200
	frames := testFrames(runs + 10)
	lens := make([]int, len(frames)) // computed here: chunkLen allocates
	for i, f := range frames {
		lens[i] = chunkLen(len(f.Wire))
	}
	buf := make([]byte, 4096)
	next := 0
	deliver := func() {
		f, n := frames[next], lens[next]
		next++
		pp.hub.Deliver(f)
		_ = pp.client.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(pp.client, buf[:n]); err != nil {
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

// A parked subscription's delivery allocates nothing per event in steady
// state, whether it writes at once (the node is not busy) ...
func TestParkedWritePathDoesNotAllocate(t *testing.T) {
	assertEachDeliveryAllocatesNothing(t, newParkedPair(t, coalesceAbove, coalesceDelay))
}

// ... or waits for the coalescer (above -1: the node always counts as busy).
func TestHeldWritePathDoesNotAllocate(t *testing.T) {
	assertEachDeliveryAllocatesNothing(t, newParkedPair(t, -1, time.Millisecond))
}

// readChunk reads one HTTP/1.1 chunk and returns its data.
func readChunk(t *testing.T, br *bufio.Reader) []byte {
	t.Helper()
	size := readChunkSize(t, br)
	data := make([]byte, size+2)
	if _, err := io.ReadFull(br, data); err != nil {
		t.Fatalf("reading a chunk of %d bytes: %v", size, err)
	}
	return data[:size]
}

// readChunkSize reads the size line of an HTTP/1.1 chunk.
func readChunkSize(t *testing.T, br *bufio.Reader) int {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a chunk's size: %v", err)
	}
	size, err := strconv.ParseUint(strings.TrimSpace(line), 16, 32)
	if err != nil {
		t.Fatalf("chunk size line %q: %v", line, err)
	}
	return int(size)
}

// While the node is busy, events that arrive within the coalescer's delay
// go out in one write: one chunk holds them all, although they came 5 ms
// apart (time enough for a delivery that does not wait to write the first
// one alone).
func TestBusyNodeCoalescesEventsIntoOneChunk(t *testing.T) {
	pp := newParkedPair(t, -1, 500*time.Millisecond)
	frames := testFrames(10)
	var want []byte
	for _, f := range frames {
		pp.hub.Deliver(f)
		want = append(want, f.Wire...)
		time.Sleep(5 * time.Millisecond)
	}
	_ = pp.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got := readChunk(t, bufio.NewReader(pp.client)); !bytes.Equal(got, want) {
		t.Fatalf("first chunk holds %q,\nwant all 10 events: %q", got, want)
	}
}

// A node that is not busy writes at once: the first event goes out alone,
// long before a coalescer's delay would have ended.
func TestIdleNodeWritesAtOnce(t *testing.T) {
	pp := newParkedPair(t, coalesceAbove, time.Hour)
	frames := testFrames(2)
	pp.hub.Deliver(frames[0])
	_ = pp.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(pp.client)
	if got := readChunk(t, br); !bytes.Equal(got, frames[0].Wire) {
		t.Fatalf("first chunk holds %q, want only the first event %q", got, frames[0].Wire)
	}
	pp.hub.Deliver(frames[1])
	if got := readChunk(t, br); !bytes.Equal(got, frames[1].Wire) {
		t.Fatalf("second chunk holds %q, want the second event %q", got, frames[1].Wire)
	}
}

// A subscription held by the coalescer still ends on Shutdown.
func TestHeldSubscriptionEndsOnShutdown(t *testing.T) {
	pp := newParkedPair(t, -1, 50*time.Millisecond)
	pp.hub.Deliver(testFrames(1)[0])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pp.server.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	_ = pp.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(pp.client)
	if err != nil {
		t.Fatalf("reading to the end: %v", err)
	}
	if !bytes.HasSuffix(rest, lastChunk) {
		t.Fatalf("the connection ended without the last chunk: %q", rest)
	}
	// Every delivery goroutine counted on start is counted off (it does so
	// as it exits, just after the connection closed): a count that drifted
	// up would make the node look busy for ever.
	deadline := time.Now().Add(5 * time.Second)
	for pp.server.coalesce.pending.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("coalescer counts %d deliveries under way after shutdown", pp.server.coalesce.pending.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// A delivery blocked in its write (a client that stopped reading) does not
// count as under way: stalled clients, however many, never make the node
// look busy and hold the other subscribers' deliveries back.
func TestStalledWriteDoesNotMakeTheNodeBusy(t *testing.T) {
	pp := newParkedPair(t, 0, time.Hour) // busy as soon as one delivery counts
	big := broker.EncodeFrame("s", []broker.Event{
		{ID: 1, Name: broker.EventMessage, Data: strings.Repeat("x", 8<<20), Time: time.Now()},
	}, false)
	pp.hub.Deliver(big) // more than the socket buffers hold: the write blocks
	// Counted while it gets ready; not once it is in the write, which
	// cannot finish while the client reads nothing.
	deadline := time.Now().Add(10 * time.Second)
	for pp.server.coalesce.busy() {
		if time.Now().After(deadline) {
			t.Fatalf("a delivery blocked in its write counts: pending %d", pp.server.coalesce.pending.Load())
		}
		time.Sleep(time.Millisecond)
	}
	// The write goes on once the client reads, and nothing was lost.
	_ = pp.client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got := readChunk(t, bufio.NewReader(pp.client)); !bytes.Equal(got, big.Wire) {
		t.Fatalf("the chunk holds %d bytes, want the event's %d", len(got), len(big.Wire))
	}
}

// The request line of a parked subscription counts the body bytes that
// went out, also of a write its deadline cut short, and the events of the
// chunks written whole.
func TestParkedRequestLineCountsWhatWentOut(t *testing.T) {
	hub := broker.NewHub(10, 64)
	store := memory.New(broker.StoreOptions{MaxEvents: 10, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	t.Cleanup(func() { store.Close() })
	b := broker.New(store, hub)
	log := &syncBuffer{}
	s := New(Options{Broker: b, Retry: time.Second, Heartbeat: time.Hour})
	s.writeTimeout = 200 * time.Millisecond
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })

	server, client := net.Pipe() // unbuffered: a write goes out exactly as far as the client reads
	t.Cleanup(func() { client.Close() })
	sub, err := b.Subscribe(context.Background(), "s", 0)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v1/streams/s/events", nil)
	logger := zerolog.New(log)
	r = r.WithContext(logger.WithContext(r.Context())) // as the request's middleware does
	p := s.newParkedSubscription(r, server, sub, time.Now())
	s.heartbeats.join()
	s.parked.add(p)
	s.park(r, p)

	br := bufio.NewReader(client)
	if _, err := b.Publish(context.Background(), "s", []broker.Message{{Data: strings.Repeat("a", 1000)}}, ""); err != nil {
		t.Fatal(err)
	}
	first := len(readChunk(t, br))

	// The second event is far larger than what the client reads of it.
	if _, err := b.Publish(context.Background(), "s", []broker.Message{{Data: strings.Repeat("b", 100_000)}}, ""); err != nil {
		t.Fatal(err)
	}
	readChunkSize(t, br)
	const readOfSecond = 5000
	if _, err := io.ReadFull(br, make([]byte, readOfSecond)); err != nil {
		t.Fatal(err)
	}
	// The client stops reading: the write's deadline ends the subscription.
	var l map[string]any
	for deadline := time.Now().Add(10 * time.Second); l == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no request line; log:\n%s", log.String())
		}
		for _, s := range strings.Split(log.String(), "\n") {
			if strings.Contains(s, `"message":"request"`) {
				_ = json.Unmarshal([]byte(s), &l)
			}
		}
	}
	// bufio may have read ahead of what the test took: count what left
	// the server, as the client's socket saw it.
	wantSize := first + readOfSecond + br.Buffered()
	if l["size"] != float64(wantSize) || l["events"] != 1.0 || l["end"] != "write_timeout" {
		t.Errorf("size %v, events %v, end %v; want %d body bytes (the first chunk and what went out of the second), 1 event, write_timeout",
			l["size"], l["events"], l["end"], wantSize)
	}
}

// TestChunkHeaderRoomFitsAnySize: the size line of a chunk of any length
// fits the room flushChunk writes it into (with 8 hex digits of room, a
// chunk of 4 GiB or more made the slice start negative: a panic in a
// delivery goroutine, which ends the process).
func TestChunkHeaderRoomFitsAnySize(t *testing.T) {
	for _, n := range []uint64{1, 1<<32 - 1, 1 << 32, math.MaxInt} {
		line := append(strconv.AppendUint(nil, n, 16), '\r', '\n')
		if len(line) > chunkHeaderRoom {
			t.Errorf("a chunk of %d bytes has a size line of %d bytes, more than the %d kept for it", n, len(line), chunkHeaderRoom)
		}
	}
}

package client_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/client"
	"github.com/sse-broker/broker/pkg/sse"
)

// fastRetry makes the broker tell clients to reconnect after 50ms.
var fastRetry = testbroker.Options{Retry: 50 * time.Millisecond}

// collected is what one Subscribe loop yielded.
type collected struct {
	events []client.Event
	err    error
}

func (c collected) ids() []string {
	var ids []string
	for _, e := range c.events {
		if e.Kind == client.KindEvent {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// collect runs a Subscribe loop to its end.
func collect(ctx context.Context, c *client.Client, stream string, o client.SubscribeOptions) collected {
	var out collected
	for ev, err := range c.Subscribe(ctx, stream, o) {
		if err != nil {
			out.err = err
			break
		}
		out.events = append(out.events, ev)
	}
	return out
}

// TestSubscribeResumesAcrossDrops: a proxy cuts every subscribe connection
// after a random number of bytes or milliseconds while 500 events are
// published; the loop yields exactly the published ids, in order.
func TestSubscribeResumesAcrossDrops(t *testing.T) {
	b := testbroker.Start(t, fastRetry)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	var rngMu sync.Mutex
	p := startProxy(t, b.URL, func(int) plan {
		rngMu.Lock()
		defer rngMu.Unlock()
		return plan{cutAfterBytes: 150 + rng.IntN(2500), cutAfter: time.Duration(20+rng.IntN(200)) * time.Millisecond}
	})
	ctx := testCtx(t)
	sub := client.New(p.URL)
	pub := client.New(b.URL)

	var reconnects []error
	done := make(chan collected, 1)
	go func() {
		done <- collect(ctx, sub, "drops", client.SubscribeOptions{
			OnReconnect: func(err error, _ time.Duration) { reconnects = append(reconnects, err) },
		})
	}()

	pubRng := rand.New(rand.NewPCG(seed, 2)) // the proxy's rng is used by its goroutines
	var published []string
	for i := 0; i < 500; {
		batch := make([]client.Message, 1+pubRng.IntN(4))
		for j := range batch {
			batch[j] = client.Message{Data: fmt.Sprintf("m-%d", i)}
			i++
		}
		res, err := pub.Publish(ctx, "drops", batch...)
		if err != nil {
			t.Fatal(err)
		}
		published = append(published, res.IDs...)
		if pubRng.IntN(10) == 0 {
			time.Sleep(time.Duration(pubRng.IntN(20)) * time.Millisecond)
		}
	}
	stop, err := pub.Close(ctx, "drops", "end")
	if err != nil {
		t.Fatal(err)
	}
	published = append(published, stop.IDs...)

	got := <-done
	if got.err != nil {
		t.Fatalf("subscribe ended with %v after %d events", got.err, len(got.events))
	}
	if ids := got.ids(); !slices.Equal(ids, published) {
		t.Fatalf("received %d ids, published %d\nreceived:  %v\npublished: %v", len(ids), len(published), ids, published)
	}
	for i, e := range got.events[:len(got.events)-1] {
		if e.Kind != client.KindEvent || e.Name != "message" || e.Data != fmt.Sprintf("m-%d", i) {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	if last := got.events[len(got.events)-1]; last.Name != "stop" || last.Data != "end" {
		t.Fatalf("last event: %+v", last)
	}
	if cuts := p.byteCuts.Load(); cuts < 3 {
		t.Fatalf("the proxy cut %d connections mid-answer; the test needs at least 3", cuts)
	}
	// Every cut but one must have made the client come back. The one may
	// be the last connection's: its byte budget can run out on the bytes
	// that end the answer after the stop event (the closing chunk), when
	// the client has all it needs and ends without reconnecting.
	if len(reconnects) < int(p.byteCuts.Load())-1 {
		t.Fatalf("%d reconnects for %d cuts", len(reconnects), p.byteCuts.Load())
	}
	t.Logf("%d connections, %d cut by bytes, %d by time", p.conns.Load(), p.byteCuts.Load(), p.timeCuts.Load())
}

// TestSubscribeReportsAGap: the broker keeps 5 events; resuming from an
// early id yields a gap first, then the retained events.
func TestSubscribeReportsAGap(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxEvents: 5, Retry: 50 * time.Millisecond})
	c := client.New(b.URL)
	ctx := testCtx(t)
	var ids []string
	for i := range 20 {
		res, err := c.Publish(ctx, "gappy", client.Message{Data: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.IDs...)
	}

	var got []client.Event
	for ev, err := range c.Subscribe(ctx, "gappy", client.SubscribeOptions{From: ids[1]}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
		if len(got) == 6 {
			break
		}
	}
	gap := got[0]
	if gap.Kind != client.KindGap || gap.ID != "" || gap.Name != "gap" || gap.Gap == nil ||
		gap.Gap.After != ids[1] || gap.Gap.First == nil || *gap.Gap.First != ids[15] {
		t.Fatalf("first value: %+v (gap %+v); want a gap after %s, first %s", gap, gap.Gap, ids[1], ids[15])
	}
	for i, e := range got[1:] {
		if e.Kind != client.KindEvent || e.ID != ids[15+i] || e.Data != fmt.Sprint(15+i) {
			t.Fatalf("event %d after the gap: %+v, want id %s", i, e, ids[15+i])
		}
	}

	h, err := c.History(ctx, "gappy", client.HistoryOptions{After: ids[1]})
	if err != nil || !h.Gap || len(h.Events) != 5 {
		t.Fatalf("history after %s: %+v, %v", ids[1], h, err)
	}
	// No gap when nothing was lost.
	for ev, err := range c.Subscribe(ctx, "gappy", client.SubscribeOptions{From: ids[16]}) {
		if err != nil || ev.Kind != client.KindEvent || ev.ID != ids[17] {
			t.Fatalf("resume from %s: %+v, %v", ids[16], ev, err)
		}
		break
	}
}

// TestSubscribeEndsAtStop: the loop ends with no error after stop, both
// when the stop is replayed and when it arrives live; resuming from the
// stop id ends at once (204) with nothing yielded.
func TestSubscribeEndsAtStop(t *testing.T) {
	b := testbroker.Start(t, fastRetry)
	c := client.New(b.URL)
	ctx := testCtx(t)

	// Live: the subscriber waits on an empty stream.
	live, err := c.CreateStream(ctx, "live-")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan collected, 1)
	go func() { done <- collect(ctx, c, live, client.SubscribeOptions{}) }()
	waitSubscribers(t, c, live, 1)
	res, err := c.Publish(ctx, live, client.Message{Data: "a"}, client.Message{Event: "token", Data: "b"})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := c.Close(ctx, live, "bye")
	if err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil {
		t.Fatalf("live: %v", got.err)
	}
	want := append(slices.Clone(res.IDs), stop.IDs[0])
	if !slices.Equal(got.ids(), want) || got.events[2].Name != "stop" || got.events[2].Data != "bye" || got.events[1].Name != "token" {
		t.Fatalf("live: got %+v, want ids %v", got.events, want)
	}

	// Replayed: from an earlier id, the rest and stop.
	got = collect(ctx, c, live, client.SubscribeOptions{From: res.IDs[0]})
	if got.err != nil || !slices.Equal(got.ids(), want[1:]) {
		t.Fatalf("replay: %+v, %v", got.events, got.err)
	}

	// From stop: 204, nothing.
	got = collect(ctx, c, live, client.SubscribeOptions{From: stop.IDs[0]})
	if got.err != nil || len(got.events) != 0 {
		t.Fatalf("from stop: %+v, %v", got.events, got.err)
	}
}

// waitSubscribers waits until the broker counts n subscribers on stream.
func waitSubscribers(t *testing.T, c *client.Client, stream string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		info, err := c.Info(context.Background(), stream)
		if err == nil && info.Subscribers == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("stream %s never had %d subscribers", stream, n)
}

// TestSubscribeFinalErrors: 400 and 404-like answers end the loop with the
// *APIError as its last value.
func TestSubscribeFinalErrors(t *testing.T) {
	b := testbroker.Start(t, fastRetry)
	c := client.New(b.URL)
	ctx := testCtx(t)
	got := collect(ctx, c, "s", client.SubscribeOptions{From: "01"})
	if len(got.events) != 0 {
		t.Fatalf("events before the error: %+v", got.events)
	}
	wantAPIError(t, "bad resume point", got.err, http.StatusBadRequest, "invalid_last_event_id", client.ErrInvalidLastEventID)
	got = collect(ctx, c, "bad id!", client.SubscribeOptions{})
	wantAPIError(t, "bad stream id", got.err, http.StatusBadRequest, "invalid_stream_id", client.ErrInvalidStreamID)

	// Not an event stream: a final error that says so.
	got = collect(ctx, client.New(b.URL+"/healthz?"), "s", client.SubscribeOptions{})
	if got.err == nil || len(got.events) != 0 {
		t.Fatalf("subscribe to a non-stream: %+v, %v", got.events, got.err)
	}
}

// TestSubscribeWaitsForRetryAfter: over subscribers.max the broker answers
// 503 with Retry-After; the client waits that long and gets in once a slot
// is free. (The broker frees the slot of a client that hung up within one
// heartbeat, hence the short heartbeat.)
func TestSubscribeWaitsForRetryAfter(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxSubscribers: 1, Retry: 50 * time.Millisecond, Heartbeat: 200 * time.Millisecond})
	c := client.New(b.URL)
	ctx := testCtx(t)
	if _, err := c.Publish(ctx, "full", client.Message{Data: "x"}); err != nil {
		t.Fatal(err)
	}
	firstCtx, leave := context.WithCancel(ctx)
	defer leave()
	first := make(chan error, 1)
	go func() {
		for _, err := range c.Subscribe(firstCtx, "full", client.SubscribeOptions{}) {
			if err != nil {
				first <- err
				return
			}
		}
		first <- nil
	}()
	waitSubscribers(t, c, "full", 1)

	var mu sync.Mutex
	var waits []time.Duration
	var whys []error
	start := time.Now()
	time.AfterFunc(300*time.Millisecond, leave)
	for ev, err := range c.Subscribe(ctx, "full", client.SubscribeOptions{OnReconnect: func(err error, wait time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		whys, waits = append(whys, err), append(waits, wait)
	}}) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Data != "x" {
			t.Fatalf("event %+v", ev)
		}
		break
	}
	if !errors.Is(<-first, context.Canceled) {
		t.Fatal("the first subscriber did not end with its context")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(whys) == 0 {
		t.Fatal("the second subscriber got in without waiting")
	}
	var ae *client.APIError
	if !errors.As(whys[0], &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != "too_many_subscribers" || ae.RetryAfter != time.Second {
		t.Fatalf("first reconnect reason: %v", whys[0])
	}
	if waits[0] < time.Second || waits[0] > 1200*time.Millisecond {
		t.Fatalf("waited %v for Retry-After 1s; want [1s, 1.2s]", waits[0])
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("got in after %v, before Retry-After", d)
	}
}

// The time the caller spends with an event is not silence of the
// connection: a caller slower than IdleTimeout on each event, on a
// connection that carries heartbeats, is never reconnected.
func TestIdleTimeoutIsNotTheCallersTime(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Retry: 50 * time.Millisecond, Heartbeat: 100 * time.Millisecond})
	pub := client.New(b.URL)
	ctx := testCtx(t)
	go func() {
		for _, d := range []string{"a", "b", "c"} {
			time.Sleep(100 * time.Millisecond)
			if _, err := pub.Publish(ctx, "slow-reader", client.Message{Data: d}); err != nil {
				t.Error(err)
			}
		}
		if _, err := pub.Close(ctx, "slow-reader"); err != nil {
			t.Error(err)
		}
	}()
	var whys []error
	var got []string
	for ev, err := range client.New(b.URL).Subscribe(ctx, "slow-reader", client.SubscribeOptions{
		IdleTimeout: 500 * time.Millisecond,
		OnReconnect: func(err error, _ time.Duration) { whys = append(whys, err) },
	}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.Data)
		time.Sleep(800 * time.Millisecond) // the caller's work, longer than IdleTimeout
	}
	if len(whys) != 0 || !slices.Equal(got, []string{"a", "b", "c", ""}) {
		t.Fatalf("got %q with reconnects %v; want a, b, c, stop on one connection", got, whys)
	}
}

// TestSubscribeIdleTimeout: a connection that goes silent without closing
// is dropped after IdleTimeout and resumed without loss or duplicate.
func TestSubscribeIdleTimeout(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Retry: 50 * time.Millisecond, Heartbeat: time.Minute})
	p := startProxy(t, b.URL, func(conn int) plan { return plan{freezeAfterReads: map[bool]int{true: 1}[conn == 1]} })
	pub := client.New(b.URL)
	ctx := testCtx(t)
	first, err := pub.Publish(ctx, "quiet", client.Message{Data: "a"})
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var whys []error
	done := make(chan collected, 1)
	go func() {
		done <- collect(ctx, client.New(p.URL), "quiet", client.SubscribeOptions{
			IdleTimeout: 300 * time.Millisecond,
			OnReconnect: func(err error, _ time.Duration) { mu.Lock(); whys = append(whys, err); mu.Unlock() },
		})
	}()
	time.Sleep(100 * time.Millisecond)
	second, err := pub.Publish(ctx, "quiet", client.Message{Data: "b"})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := pub.Close(ctx, "quiet")
	if err != nil {
		t.Fatal(err)
	}
	got := <-done
	want := []string{first.IDs[0], second.IDs[0], stop.IDs[0]}
	if got.err != nil || !slices.Equal(got.ids(), want) {
		t.Fatalf("got %v (%v), want %v", got.ids(), got.err, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if p.freezes.Load() != 1 || len(whys) == 0 || !errors.Is(whys[0], client.ErrIdle) {
		t.Fatalf("freezes %d, reconnect reasons %v; want the idle timeout first", p.freezes.Load(), whys)
	}
}

// TestSubscribeAcrossADelete: deleting the stream ends the response
// without stop; the client waits the server's retry: (50ms, up to a fifth more) and
// resumes; the new stream of the same name did not issue the resume
// point, so the next value is a gap, then the new events.
func TestSubscribeAcrossADelete(t *testing.T) {
	b := testbroker.Start(t, fastRetry)
	c := client.New(b.URL)
	ctx := testCtx(t)
	old, err := c.Publish(ctx, "reborn", client.Message{Data: "old"})
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var whys []error
	var waits []time.Duration
	values := make(chan client.Event)
	go func() {
		defer close(values)
		for ev, err := range c.Subscribe(ctx, "reborn", client.SubscribeOptions{OnReconnect: func(err error, wait time.Duration) {
			mu.Lock()
			whys, waits = append(whys, err), append(waits, wait)
			mu.Unlock()
		}}) {
			if err != nil {
				t.Errorf("subscribe: %v", err)
				return
			}
			select {
			case values <- ev:
			case <-ctx.Done(): // the test failed and left
				return
			}
		}
	}()
	if ev := <-values; ev.ID != old.IDs[0] {
		t.Fatalf("first value %+v", ev)
	}
	if err := c.Delete(ctx, "reborn"); err != nil {
		t.Fatal(err)
	}
	// The client reconnects (and waits for the stream to exist again).
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(whys)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no reconnect after the delete")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Whether the publish comes before the client is back or after, the
	// result is the same: a gap, then the new event.
	fresh, err := c.Publish(ctx, "reborn", client.Message{Data: "new"})
	if err != nil {
		t.Fatal(err)
	}
	gap := <-values
	if gap.Kind != client.KindGap || gap.Gap.After != old.IDs[0] {
		t.Fatalf("after the delete: %+v; want a gap after %s", gap, old.IDs[0])
	}
	if ev := <-values; ev.Kind != client.KindEvent || ev.ID != fresh.IDs[0] || ev.Data != "new" {
		t.Fatalf("after the gap: %+v", ev)
	}
	if _, err := c.Close(ctx, "reborn"); err != nil {
		t.Fatal(err)
	}
	for range values { // stop, then the loop ends
	}
	mu.Lock()
	defer mu.Unlock()
	if !errors.Is(whys[0], client.ErrEndedWithoutStop) {
		t.Fatalf("reconnect reason %v", whys[0])
	}
	if waits[0] < 50*time.Millisecond || waits[0] > 60*time.Millisecond {
		t.Fatalf("waited %v for retry: 50ms; want [50ms, 60ms]", waits[0])
	}
}

// reconnectWaits subscribes to a server that answers every connection with
// body and ends it, and returns the pauses the client chose before its
// first n reconnects (the loop is ended then, so nothing actually waits).
func reconnectWaits(t *testing.T, body string, n int) []time.Duration {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	opts := client.SubscribeOptions{OnReconnect: func(_ error, wait time.Duration) {
		waits = append(waits, wait)
		if len(waits) == n {
			cancel()
		}
	}}
	for _, err := range client.New(srv.URL).Subscribe(ctx, "s", opts) {
		if err != nil {
			break
		}
	}
	return waits
}

// A retry: too large for a time.Duration in nanoseconds is capped, not
// overflowed into a negative pause (which panicked).
func TestHugeRetryIsCapped(t *testing.T) {
	waits := reconnectWaits(t, "retry: 10000000000000\n\nid: 1\ndata: x\n\n", 1)
	if len(waits) != 1 || waits[0] <= 0 || waits[0] > 5*time.Minute*6/5 {
		t.Fatalf("waits %v, want one within 1.2 × 5 min", waits)
	}
}

// A server that says retry: 0 and ends every connection at once, with no
// event, is not hammered in a tight loop: each such connection in a row
// doubles the pause, from 10 ms (up to 30 s: wait_internal_test.go).
func TestFruitlessReconnectsBackOff(t *testing.T) {
	waits := reconnectWaits(t, "retry: 0\n\n", 6)
	for i, w := range waits {
		want := 10 * time.Millisecond << i
		if w < want || w > want*6/5 {
			t.Fatalf("pause %d: %v, want [%v, %v]; all: %v", i, w, want, want*6/5, waits)
		}
	}
	// One that brings an event each time reconnects after its retry: alone.
	waits = reconnectWaits(t, "retry: 40\n\nid: 1\ndata: x\n\n", 5)
	for i, w := range waits {
		if w < 40*time.Millisecond || w > 48*time.Millisecond {
			t.Fatalf("pause %d after an event: %v, want [40ms, 48ms]", i, w)
		}
	}
}

// An event larger than MaxEventSize ends the loop with an error (it would
// come again on every resume) instead of being held whole.
func TestSubscribeMaxEventSize(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	ctx := testCtx(t)
	pub := client.New(b.URL)
	if _, err := pub.Publish(ctx, "big", client.Message{Data: "small"}, client.Message{Data: strings.Repeat("x", 4096)}); err != nil {
		t.Fatal(err)
	}
	var got []string
	var final error
	for ev, err := range pub.Subscribe(ctx, "big", client.SubscribeOptions{MaxEventSize: 1024}) {
		if err != nil {
			final = err
			break
		}
		got = append(got, ev.Data)
	}
	if !slices.Equal(got, []string{"small"}) || !errors.Is(final, sse.ErrTooLarge) {
		t.Fatalf("got %q, then %v; want the small event, then sse.ErrTooLarge", got, final)
	}
}

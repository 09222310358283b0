// Package storetest is the conformance suite of the broker.Store contract.
// Every store runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, o broker.StoreOptions, fan broker.Fanout) broker.Store { ... })
//	}
//
// It checks what does not depend on the clock: ids, order, atomicity,
// replay and gap decisions, bounds by count, close, delete, idempotency
// and limits; and, in about 3 s, that a short subscriber's read keeps a
// stream past the idle TTL (ShortSubscriberKeepsTheStream). Age and idle
// expiry themselves are each store's own tests.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
)

// Factory returns a fresh, empty store using fan; the suite closes it.
type Factory func(t *testing.T, opts broker.StoreOptions, fan broker.Fanout) broker.Store

// Recorder is a Fanout that records what it is given.
type Recorder struct {
	mu     sync.Mutex
	frames []*broker.Frame
	ended  []string
	subs   map[string]int
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{subs: map[string]int{}}
}

// Deliver records f.
func (r *Recorder) Deliver(f *broker.Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, f)
}

// End records stream.
func (r *Recorder) End(stream string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = append(r.ended, stream)
}

// EndAll records "*".
func (r *Recorder) EndAll() { r.End("*") }

// Subscribers returns what SetSubscribers set.
func (r *Recorder) Subscribers(stream string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.subs[stream]
}

// SetSubscribers pretends n subscribers watch stream.
func (r *Recorder) SetSubscribers(stream string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs[stream] = n
}

// IDs returns the ids delivered for stream, in delivery order.
func (r *Recorder) IDs(stream string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []uint64
	for _, f := range r.frames {
		if f.Stream == stream {
			for _, e := range f.Events {
				ids = append(ids, e.ID)
			}
		}
	}
	return ids
}

// WaitIDs waits until n ids of stream were delivered (shared stores
// deliver asynchronously) and returns them.
func (r *Recorder) WaitIDs(t testing.TB, stream string, n int) []uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ids := r.IDs(stream)
		if len(ids) >= n {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d ids of %s, want %d", len(ids), stream, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Ended reports whether End was called for stream.
func (r *Recorder) Ended(stream string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.ended, stream)
}

// Defaults fills the zero fields of o with the broker's defaults (1000
// events, 1h, 24h), for store tests, and 1000 streams (the broker's is
// 100,000) to keep them small.
func Defaults(o broker.StoreOptions) broker.StoreOptions {
	if o.MaxEvents == 0 {
		o.MaxEvents = 1000
	}
	if o.MaxAge == 0 {
		o.MaxAge = time.Hour
	}
	if o.IdleTTL == 0 {
		o.IdleTTL = 24 * time.Hour
	}
	if o.MaxStreams == 0 {
		o.MaxStreams = 1000
	}
	return o
}

type env struct {
	t     *testing.T
	store broker.Store
	fan   *Recorder
	ctx   context.Context
}

func open(t *testing.T, newStore Factory, o broker.StoreOptions) *env {
	fan := NewRecorder()
	s := newStore(t, Defaults(o), fan)
	t.Cleanup(func() { _ = s.Close() })
	return &env{t: t, store: s, fan: fan, ctx: context.Background()}
}

func msgs(data ...string) []broker.Message {
	out := make([]broker.Message, len(data))
	for i, d := range data {
		out[i] = broker.Message{Name: broker.EventMessage, Data: d}
	}
	return out
}

func (e *env) publish(stream string, data ...string) []uint64 {
	e.t.Helper()
	res, err := e.store.Publish(e.ctx, stream, msgs(data...), "")
	if err != nil {
		e.t.Fatalf("publish to %s: %v", stream, err)
	}
	if len(res.IDs) != len(data) || res.Replayed {
		e.t.Fatalf("publish answer %+v", res)
	}
	return res.IDs
}

func (e *env) read(stream string, after uint64, limit int) broker.ReadResult {
	e.t.Helper()
	rr, err := e.store.Read(e.ctx, stream, after, limit)
	if err != nil {
		e.t.Fatalf("read %s after %d: %v", stream, after, err)
	}
	return rr
}

func ids(rr broker.ReadResult) []uint64 {
	out := make([]uint64, len(rr.Events))
	for i, ev := range rr.Events {
		out[i] = ev.ID
	}
	return out
}

// Run runs the whole suite.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		f    func(t *testing.T, newStore Factory)
	}{
		{"PublishAndRead", testPublishAndRead},
		{"FramesInOrderExactlyOnce", testFramesInOrder},
		{"ConcurrentPublishersKeepOrder", testConcurrentPublishers},
		{"ReplayAndGap", testReplayAndGap},
		{"CountBound", testCountBound},
		{"Close", testClose},
		{"DeleteAndNewLife", testDeleteAndNewLife},
		{"Idempotency", testIdempotency},
		{"ConcurrentIdempotentRetries", testConcurrentIdempotency},
		{"MaxStreams", testMaxStreams},
		{"InfoAndCreate", testInfoAndCreate},
		{"WireBytes", testWireBytes},
		{"ShortSubscriberKeepsTheStream", testShortSubscriberKeepsTheStream},
		{"AgeBound", testAgeBound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, newStore) })
	}
}

func testPublishAndRead(t *testing.T, newStore Factory) {
	e := open(t, newStore, broker.StoreOptions{})
	a := e.publish("s", "1", "2")
	b := e.publish("s", "3")
	all := append(a, b...)
	for i := 1; i < len(all); i++ {
		if all[i] <= all[i-1] {
			t.Fatalf("ids not increasing: %v", all)
		}
	}
	rr := e.read("s", 0, 0)
	if !rr.Exists || rr.Gap || !slices.Equal(ids(rr), all) || rr.FirstID != all[0] || rr.LastID != all[2] || rr.Closed {
		t.Fatalf("read: %+v", rr)
	}
	if rr.Events[0].Data != "1" || rr.Events[0].Name != broker.EventMessage || rr.Events[0].Time.IsZero() {
		t.Fatalf("event %+v", rr.Events[0])
	}
	if got := ids(e.read("s", all[0], 0)); !slices.Equal(got, all[1:]) {
		t.Fatalf("after first: %v", got)
	}
	if got := ids(e.read("s", 0, 2)); !slices.Equal(got, all[:2]) {
		t.Fatalf("limit 2: %v", got)
	}
	if rr := e.read("nothing", 0, 0); rr.Exists || rr.Gap || len(rr.Events) != 0 {
		t.Fatalf("missing stream: %+v", rr)
	}
	if rr := e.read("nothing", 5, 0); !rr.Gap || rr.FirstID != 0 {
		t.Fatalf("missing stream with a resume point: %+v", rr)
	}
	if err := e.store.Ping(e.ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

func testFramesInOrder(t *testing.T, newStore Factory) {
	e := open(t, newStore, broker.StoreOptions{})
	var want []uint64
	for i := range 20 {
		want = append(want, e.publish("s", fmt.Sprint(i), "x")...)
	}
	got := e.fan.WaitIDs(t, "s", len(want))
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, published %v", got, want)
	}
	e.fan.mu.Lock()
	defer e.fan.mu.Unlock()
	for _, f := range e.fan.frames {
		if len(f.Events) != 2 || string(f.Wire) != string(f.Events[0].Wire)+string(f.Events[1].Wire) {
			t.Fatalf("a publish must be one frame whose wire is its events' wire: %+v", f)
		}
	}
}

func testConcurrentPublishers(t *testing.T, newStore Factory) {
	e := open(t, newStore, broker.StoreOptions{MaxEvents: 100000})
	var (
		mu        sync.Mutex
		published []uint64
		wg        sync.WaitGroup
	)
	for p := range 8 {
		wg.Go(func() {
			for i := range 50 {
				res, err := e.store.Publish(e.ctx, "s", msgs(fmt.Sprint(p, i), "b"), "")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				published = append(published, res.IDs...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(published)
	got := e.fan.WaitIDs(t, "s", len(published))
	if !slices.Equal(got, published) {
		t.Fatalf("fan-out order differs from id order (%d delivered, %d published)", len(got), len(published))
	}
	if r := ids(e.read("s", 0, 0)); !slices.Equal(r, published) {
		t.Fatalf("history differs from published ids")
	}
}

func testReplayAndGap(t *testing.T, newStore Factory) {
	e := open(t, newStore, broker.StoreOptions{MaxEvents: 3})
	all := e.publish("s", "1", "2", "3", "4", "5", "6")
	other := e.publish("other", "x")
	cases := []struct {
		name  string
		after uint64
		gap   bool
		want  []uint64
	}{
		{"evicted range", all[0], true, all[3:]},
		{"last evicted: nothing lost", all[2], false, all[3:]},
		{"retained", all[4], false, all[5:]},
		{"newest", all[5], false, nil},
		{"id of another stream", other[0], true, all[3:]},
		{"never issued, small", 1, true, all[3:]},
		{"never issued, above", all[5] + 1000, true, all[3:]},
	}
	for _, c := range cases {
		rr := e.read("s", c.after, 0)
		if rr.Gap != c.gap || !slices.Equal(ids(rr), c.want) || rr.FirstID != all[3] || rr.LastID != all[5] {
			t.Errorf("%s: gap %v ids %v first %d last %d", c.name, rr.Gap, ids(rr), rr.FirstID, rr.LastID)
		}
	}
}

func testCountBound(t *testing.T, newStore Factory) {
	e := open(t, newStore, broker.StoreOptions{MaxEvents: 5})
	var all []uint64
	for i := range 40 {
		all = append(all, e.publish("s", fmt.Sprint(i))...)
		// The bound holds after every publish, not only in the end.
		if n := len(e.read("s", 0, 0).Events); n > 5 {
			t.Fatalf("after publish %d, %d events retained, want at most 5", i, n)
		}
	}
	all = append(all, e.publish("s", "a", "b", "c", "d", "e", "f", "g")...)
	rr := e.read("s", 0, 0)
	if !slices.Equal(ids(rr), all[len(all)-5:]) {
		t.Fatalf("retained %v, want the last 5", ids(rr))
	}
	info, err := e.store.Info(e.ctx, "s")
	if err != nil || info.Retained != 5 || info.FirstID != all[len(all)-5] || info.LastID != all[len(all)-1] {
		t.Fatalf("info %+v, %v", info, err)
	}
}

func testClose(t *testing.T, newStore Factory) {
	e := open(t, newStore, broker.StoreOptions{MaxEvents: 2})
	e.publish("s", "1", "2", "3")
	res, err := e.store.CloseStream(e.ctx, "s", "bye")
	if err != nil || len(res.IDs) != 1 {
		t.Fatalf("close: %+v %v", res, err)
	}
	stop := res.IDs[0]
	rr := e.read("s", 0, 0)
	last := rr.Events[len(rr.Events)-1]
	if !rr.Closed || rr.StopID != stop || last.ID != stop || last.Name != broker.EventStop || last.Data != "bye" {
		t.Fatalf("after close: %+v", rr)
	}
	_, err = e.store.Publish(e.ctx, "s", msgs("x"), "")
	if !errors.Is(err, broker.ErrStreamClosed) {
		t.Fatalf("publish after close: %v", err)
	}
	// Broker names the operation and the stream around a store's error
	// (storeError); a store that named them too had the client's message
	// say `publish to "s": publish to "s": ...`.
	if strings.HasPrefix(err.Error(), "publish to") {
		t.Fatalf("the store's error names the operation the broker names: %v", err)
	}
	if _, err := e.store.CloseStream(e.ctx, "s", ""); !errors.Is(err, broker.ErrStreamClosed) {
		t.Fatalf("close twice: %v", err)
	}
	frames := e.fan.WaitIDs(t, "s", 4)
	if frames[3] != stop {
		t.Fatalf("stop not delivered last: %v", frames)
	}
	e.fan.mu.Lock()
	final := e.fan.frames[len(e.fan.frames)-1].Final
	e.fan.mu.Unlock()
	if !final {
		t.Fatal("the stop frame is not marked Final")
	}
	// Closing a stream that does not exist creates it closed.
	if _, err := e.store.CloseStream(e.ctx, "new", ""); err != nil {
		t.Fatalf("close of a new stream: %v", err)
	}
	if rr := e.read("new", 0, 0); !rr.Closed || len(rr.Events) != 1 {
		t.Fatalf("new closed stream: %+v", rr)
	}
}

func testDeleteAndNewLife(t *testing.T, newStore Factory) {
	e := open(t, newStore, broker.StoreOptions{})
	old := e.publish("s", "old")
	if err := e.store.Delete(e.ctx, "missing"); !errors.Is(err, broker.ErrStreamNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
	if err := e.store.Delete(e.ctx, "s"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !e.fan.Ended("s") {
		if time.Now().After(deadline) {
			t.Fatal("delete did not end the stream's subscriptions")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if _, err := e.store.Info(e.ctx, "s"); !errors.Is(err, broker.ErrStreamNotFound) {
		t.Fatalf("info after delete: %v", err)
	}
	fresh := e.publish("s", "new")
	if fresh[0] <= old[0] {
		t.Fatalf("new life id %d not above %d", fresh[0], old[0])
	}
	rr := e.read("s", old[0], 0)
	if !rr.Gap || !slices.Equal(ids(rr), fresh) {
		t.Fatalf("old resume point after delete: %+v", rr)
	}
}

func testIdempotency(t *testing.T, newStore Factory) {
	e := open(t, newStore, broker.StoreOptions{MaxEvents: 3})
	first, err := e.store.Publish(e.ctx, "s", msgs("a", "b"), "k")
	if err != nil || first.Replayed {
		t.Fatal(first, err)
	}
	again, err := e.store.Publish(e.ctx, "s", msgs("a", "b"), "k")
	if err != nil || !again.Replayed || !slices.Equal(again.IDs, first.IDs) {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	if other, _ := e.store.Publish(e.ctx, "t", msgs("a"), "k"); other.Replayed {
		t.Fatal("a key is per stream")
	}
	if rr := e.read("s", 0, 0); len(rr.Events) != 2 {
		t.Fatalf("the repeat stored events: %v", ids(rr))
	}
	e.publish("s", "c", "d", "e") // evicts a and b
	later, err := e.store.Publish(e.ctx, "s", msgs("a", "b"), "k")
	if err != nil || later.Replayed {
		t.Fatalf("key outside the history window: %+v %v", later, err)
	}

	// A publisher may retry blindly: a keyed retry whose first attempt
	// was stored gets its answer also once the stream has been closed
	// since, not 409 (the publisher would take its events for lost).
	stored, err := e.store.Publish(e.ctx, "c", msgs("last"), "k2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CloseStream(e.ctx, "c", ""); err != nil {
		t.Fatal(err)
	}
	retry, err := e.store.Publish(e.ctx, "c", msgs("last"), "k2")
	if err != nil || !retry.Replayed || !slices.Equal(retry.IDs, stored.IDs) {
		t.Fatalf("a keyed retry after close: %+v %v; want the first answer, replayed", retry, err)
	}
}

func testConcurrentIdempotency(t *testing.T, newStore Factory) {
	e := open(t, newStore, broker.StoreOptions{})
	results := make([]broker.PublishResult, 16)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			res, err := e.store.Publish(e.ctx, "s", msgs("x"), "same")
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	replayed := 0
	for _, r := range results {
		if !slices.Equal(r.IDs, results[0].IDs) {
			t.Fatalf("answers differ: %v vs %v", r.IDs, results[0].IDs)
		}
		if r.Replayed {
			replayed++
		}
	}
	if replayed != len(results)-1 {
		t.Fatalf("%d replayed answers, want %d", replayed, len(results)-1)
	}
	if rr := e.read("s", 0, 0); len(rr.Events) != 1 {
		t.Fatalf("%d events stored", len(rr.Events))
	}
}

func testMaxStreams(t *testing.T, newStore Factory) {
	e := open(t, newStore, broker.StoreOptions{MaxStreams: 2})
	e.publish("a", "x")
	if err := e.store.Create(e.ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Publish(e.ctx, "c", msgs("x"), ""); !errors.Is(err, broker.ErrTooManyStreams) {
		t.Fatalf("third stream: %v", err)
	}
	if _, err := e.store.CloseStream(e.ctx, "c", ""); !errors.Is(err, broker.ErrTooManyStreams) {
		t.Fatalf("close of a third stream: %v", err)
	}
	e.publish("a", "existing streams still take events")
	if err := e.store.Delete(e.ctx, "b"); err != nil {
		t.Fatal(err)
	}
	e.publish("c", "room again")
	if n := e.store.Len(); n != 2 {
		t.Fatalf("Len %d", n)
	}
}

func testInfoAndCreate(t *testing.T, newStore Factory) {
	e := open(t, newStore, broker.StoreOptions{})
	before := time.Now().Add(-time.Second)
	if err := e.store.Create(e.ctx, "s"); err != nil {
		t.Fatal(err)
	}
	info, err := e.store.Info(e.ctx, "s")
	if err != nil || info.Stream != "s" || info.Retained != 0 || info.FirstID != 0 || info.LastID != 0 || info.Closed || info.CreatedAt.Before(before) {
		t.Fatalf("new stream info %+v %v", info, err)
	}
	if _, err := e.store.Info(e.ctx, "missing"); !errors.Is(err, broker.ErrStreamNotFound) {
		t.Fatalf("info of a missing stream: %v", err)
	}
	if rr := e.read("s", 0, 0); !rr.Exists {
		t.Fatal("a created stream exists")
	}
}

func testWireBytes(t *testing.T, newStore Factory) {
	e := open(t, newStore, broker.StoreOptions{})
	res, err := e.store.Publish(e.ctx, "s", []broker.Message{{Name: "token", Data: "a\nb"}, {Name: broker.EventMessage, Data: ""}}, "")
	if err != nil {
		t.Fatal(err)
	}
	rr := e.read("s", 0, 0)
	want0 := fmt.Sprintf("id: %d\nevent: token\ndata: a\ndata: b\n\n", res.IDs[0])
	want1 := fmt.Sprintf("id: %d\ndata: \n\n", res.IDs[1])
	if string(rr.Events[0].Wire) != want0 || string(rr.Events[1].Wire) != want1 {
		t.Fatalf("wire %q %q", rr.Events[0].Wire, rr.Events[1].Wire)
	}
	if rr.Events[0].Name != "token" || rr.Events[0].Data != "a\nb" {
		t.Fatalf("event %+v", rr.Events[0])
	}
}

// A subscriber that stays for less than one janitor sweep (a phone that
// reads an answer and loses its network) still counts: the stream lives
// for the idle TTL after it left, not after the last publish. The read
// of its subscription, made while it is registered, is what tells.
func testShortSubscriberKeepsTheStream(t *testing.T, newStore Factory) {
	const idle = 2 * time.Second // a sweep every 500 ms
	e := open(t, newStore, broker.StoreOptions{IdleTTL: idle, MaxAge: time.Hour})
	published := time.Now()
	e.publish("s", "answer")
	time.Sleep(idle * 7 / 10)
	e.fan.SetSubscribers("s", 1)
	e.read("s", 0, 0)
	time.Sleep(10 * time.Millisecond)
	e.fan.SetSubscribers("s", 0) // gone before the next sweep
	// Idle since the publish, the stream would be gone by idle plus one
	// sweep (2.5 s); idle since its subscriber left (1.4 s), it lives past
	// 3.4 s. Asked at 2.8 s:
	time.Sleep(time.Until(published.Add(idle * 14 / 10)))
	if _, err := e.store.Info(e.ctx, "s"); err != nil {
		t.Fatalf("%v after the publish, %v after its subscriber left (idle TTL %v): %v",
			time.Since(published).Round(time.Millisecond), (time.Since(published) - idle*7/10).Round(time.Millisecond), idle, err)
	}
}

func testAgeBound(t *testing.T, newStore Factory) {
	// Each check has age/4 of room either side of the bound (375 ms): a
	// store call delayed by a loaded CI machine must not move an event
	// across it.
	const age = 1500 * time.Millisecond
	e := open(t, newStore, broker.StoreOptions{MaxAge: age})
	t0 := time.Now()
	old := e.publish("s", "o1", "o2")
	time.Sleep(age / 2)
	young := e.publish("s", "y1", "y2")
	if rr := e.read("s", 0, 0); len(rr.Events) != 4 || rr.Gap {
		t.Fatalf("before any aged: %v gap %v", ids(rr), rr.Gap)
	}
	time.Sleep(time.Until(t0.Add(age + age/4)))
	// old aged out, young did not.
	cases := []struct {
		name  string
		after uint64
		gap   bool
		want  []uint64
	}{
		{"from the start", 0, false, young},
		{"resume in aged range", old[0], true, young},
		{"resume at newest aged: nothing lost", old[1], false, young},
		{"resume at retained", young[0], false, young[1:]},
	}
	for _, c := range cases {
		rr := e.read("s", c.after, 0)
		if rr.Gap != c.gap || !slices.Equal(ids(rr), c.want) || rr.FirstID != young[0] {
			t.Errorf("%s: gap %v ids %v first %d", c.name, rr.Gap, ids(rr), rr.FirstID)
		}
	}
	time.Sleep(time.Until(t0.Add(age + age/2 + age/4)))
	// everything aged out
	cases = []struct {
		name  string
		after uint64
		gap   bool
		want  []uint64
	}{
		{"all aged, from the start", 0, false, nil},
		{"all aged, resume at newest", young[1], false, nil},
		{"all aged, resume before newest", young[0], true, nil},
	}
	for _, c := range cases {
		rr := e.read("s", c.after, 0)
		if rr.Gap != c.gap || len(rr.Events) != 0 || rr.FirstID != 0 || rr.LastID != young[1] {
			t.Errorf("%s: gap %v ids %v first %d last %d", c.name, rr.Gap, ids(rr), rr.FirstID, rr.LastID)
		}
	}
	info, err := e.store.Info(e.ctx, "s")
	if err != nil || info.Retained != 0 || info.FirstID != 0 || info.LastID != young[1] {
		t.Errorf("info %+v, %v", info, err)
	}
	// A new publish after everything aged: resume at the old newest sees it, no gap.
	next := e.publish("s", "n")
	if rr := e.read("s", young[1], 0); rr.Gap || !slices.Equal(ids(rr), next) {
		t.Errorf("after new publish: gap %v ids %v", rr.Gap, ids(rr))
	}
	if rr := e.read("s", young[0], 0); !rr.Gap || !slices.Equal(ids(rr), next) || rr.FirstID != next[0] {
		t.Errorf("after new publish, resume before: gap %v ids %v first %d", rr.Gap, ids(rr), rr.FirstID)
	}
}

package broker

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestValidateStreamID(t *testing.T) {
	ok := []string{"a", "chat-42", "A.b_c~d-e", "..a", strings.Repeat("x", 128), "0"}
	bad := []string{"", ".", "..", "....", strings.Repeat("x", 129), "a/b", "a b", "é", "a%20", "a+b", "a\x00"}
	for _, id := range ok {
		if err := ValidateStreamID(id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range bad {
		if err := ValidateStreamID(id); !errors.Is(err, ErrInvalidStreamID) {
			t.Errorf("%q: %v, want ErrInvalidStreamID", id, err)
		}
	}
}

func TestValidateEventName(t *testing.T) {
	ok := []string{"message", "token", "x", strings.Repeat("é", 64), "a b", ":colon"}
	bad := []string{"", "stop", "gap", "a\nb", "a\rb", "a\x00b", strings.Repeat("a", 65), "\xff"}
	for _, n := range ok {
		if err := ValidateEventName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range bad {
		if err := ValidateEventName(n); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%q: %v, want ErrInvalidEvent", n, err)
		}
	}
}

// TestValidateMessagesNamesTheEventOfABatch: a refused event of a batch
// is named by its place; the one event of a single-event request is not
// (an "event 0" the publisher never wrote would only puzzle).
func TestValidateMessagesNamesTheEventOfABatch(t *testing.T) {
	for _, tc := range []struct {
		msgs []Message
		want string
	}{
		{[]Message{{Name: "stop"}}, "invalid event: event name \"stop\" is reserved"},
		{[]Message{{Data: "\xff"}}, "invalid event: data is not valid UTF-8"},
		{[]Message{{Data: "ok"}, {Name: "gap"}}, "event 1: invalid event: event name \"gap\" is reserved"},
		{[]Message{{Data: "\xff"}, {Data: "ok"}}, "event 0: invalid event: data is not valid UTF-8"},
	} {
		err := ValidateMessages(tc.msgs)
		if !errors.Is(err, ErrInvalidEvent) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ValidateMessages(%+v) = %v, want an ErrInvalidEvent starting %q", tc.msgs, err, tc.want)
		}
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"7", 7, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"00", 0, false}, {"07", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {" 1", 0, false},
		{"1.0", 0, false}, {"18446744073709551616", 0, false}, {"123456789012345678901", 0, false}, {"abc", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseID(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseID(%q) = %d, %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrInvalidID) {
			t.Errorf("ParseID(%q) error %v is not ErrInvalidID", tc.in, err)
		}
	}
}

func TestNormalizeData(t *testing.T) {
	for in, want := range map[string]string{"a\r\nb": "a\nb", "a\rb": "a\nb", "\r\r\n": "\n\n", "plain": "plain", "": ""} {
		if got, err := NormalizeData(in); err != nil || got != want {
			t.Errorf("NormalizeData(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := NormalizeData("\xff"); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("invalid UTF-8: %v", err)
	}
}

func TestIDClockIncreasesUnderConcurrency(t *testing.T) {
	c := NewIDClock(nil)
	const workers, each = 8, 2000
	results := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				results[w] = append(results[w], c.Next())
			}
		})
	}
	wg.Wait()
	seen := make(map[uint64]bool, workers*each)
	for _, r := range results {
		for i, id := range r {
			if seen[id] || (i > 0 && id <= r[i-1]) {
				t.Fatalf("id %d repeated or not increasing", id)
			}
			seen[id] = true
		}
	}
}

// A new clock (a restarted broker) issues ids above every id of the old
// one, even when the old one issued many ids in its last millisecond.
func TestIDClockNewLifeIsAbove(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	old := NewIDClock(func() time.Time { return t0 })
	var last uint64
	for range 100000 {
		last = old.Next()
	}
	restarted := NewIDClock(func() time.Time { return t0.Add(time.Millisecond) })
	if first := restarted.Next(); first <= last {
		t.Fatalf("new life starts at %d, old life ended at %d", first, last)
	}
}

// A clock before the epoch (a host whose clock is not set yet) has floor
// 0, not a wrapped-around huge one: its ids stay small, and once the
// clock is right they follow it again, their top bits its milliseconds.
func TestIDClockBeforeTheEpoch(t *testing.T) {
	now := time.Unix(0, 0)
	c := NewIDClock(func() time.Time { return now })
	if f := EpochFloor(now); f != 0 {
		t.Fatalf("floor in 1970: %d, want 0", f)
	}
	if a, b := c.Next(), c.Next(); a != 1 || b != 2 {
		t.Fatalf("ids in 1970: %d, %d; want 1, 2", a, b)
	}
	now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	if id, want := c.Next(), EpochFloor(now); id != want {
		t.Fatalf("first id once the clock is set: %d, want the epoch's first, %d", id, want)
	}
}

func frame(stream string, ids ...uint64) *Frame {
	events := make([]Event, len(ids))
	for i, id := range ids {
		events[i] = Event{ID: id, Name: EventMessage, Data: "x"}
	}
	return EncodeFrame(stream, events, false)
}

// The queue bound counts publish requests: one big batch does not cut off
// a subscriber that was keeping up; falling behind by more than the bound
// does, without blocking the publisher.
func TestHubQueueBoundCountsFrames(t *testing.T) {
	h := NewHub(10, 2)
	sub, err := h.Register("s")
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]uint64, 1000)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	h.Deliver(frame("s", ids...))
	s := &Subscription{sub: sub}
	var got int
	reason, err := s.Drain(func(_ []byte, n int, _ time.Time) error { got += n; return nil })
	if err != nil || reason != EndNone || got != 1000 {
		t.Fatalf("after one batch: reason %v, %d events", reason, got)
	}
	h.Deliver(frame("s", 1001))
	h.Deliver(frame("s", 1002))
	h.Deliver(frame("s", 1003)) // third unread frame: over the bound
	if h.Count() != 0 || h.SlowDisconnects() != 1 {
		t.Fatalf("count %d, slow %d", h.Count(), h.SlowDisconnects())
	}
	reason, _ = s.Drain(func([]byte, int, time.Time) error { return nil })
	if reason != EndSlow {
		t.Fatalf("reason %v, want EndSlow", reason)
	}
	if _, err := h.Register("s"); err != nil {
		t.Fatalf("place not freed: %v", err)
	}
}

// TestHubCutOffInTheMiddleMissesNoOne: a slow subscriber cut off by
// Deliver while it walks a stream's subscribers leaves every other one its
// frame, whichever place the cut one had (removal swaps the last one into
// its place, and a walk in the wrong direction skips that one).
func TestHubCutOffInTheMiddleMissesNoOne(t *testing.T) {
	for slow := range 3 {
		h := NewHub(10, 1)
		subs := make([]*Subscription, 3)
		for i := range subs {
			sub, err := h.Register("s")
			if err != nil {
				t.Fatal(err)
			}
			subs[i] = &Subscription{sub: sub}
		}
		h.Deliver(frame("s", 1)) // every queue now holds its one frame
		for i, s := range subs {
			if i != slow {
				if _, err := s.Drain(func([]byte, int, time.Time) error { return nil }); err != nil {
					t.Fatal(err)
				}
			}
		}
		h.Deliver(frame("s", 2)) // the slow one's second unread frame: over the bound
		if h.SlowDisconnects() != 1 || h.Count() != 2 {
			t.Fatalf("slow %d: slow disconnects %d, count %d", slow, h.SlowDisconnects(), h.Count())
		}
		for i, s := range subs {
			if i == slow {
				continue
			}
			got := 0
			reason, err := s.Drain(func(_ []byte, n int, _ time.Time) error { got += n; return nil })
			if err != nil || reason != EndNone || got != 1 || s.sent != 2 {
				t.Fatalf("slow %d: subscriber %d got %d events up to id %d (reason %v, %v), want event 2", slow, i, got, s.sent, reason, err)
			}
		}
	}
}

func TestHubMaxSubscribers(t *testing.T) {
	h := NewHub(2, 4)
	a, _ := h.Register("a")
	if _, err := h.Register("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Register("c"); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("third: %v", err)
	}
	h.unregister(a)
	h.unregister(a) // idempotent
	if _, err := h.Register("c"); err != nil || h.Count() != 2 {
		t.Fatalf("after unregister: %v, count %d", err, h.Count())
	}
}

// Drain drops what the backlog already covered, also inside a frame.
func TestDrainSkipsWhatTheBacklogSent(t *testing.T) {
	h := NewHub(10, 8)
	sub, _ := h.Register("s")
	s := &Subscription{sub: sub, sent: 5}
	h.Deliver(frame("s", 3, 4))
	h.Deliver(frame("s", 4, 5, 6, 7))
	h.Deliver(frame("s", 8))
	var wire strings.Builder
	if _, err := s.Drain(func(b []byte, _ int, _ time.Time) error { wire.Write(b); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := wire.String(); got != "id: 6\ndata: x\n\nid: 7\ndata: x\n\nid: 8\ndata: x\n\n" {
		t.Fatalf("wire %q", got)
	}
}

func TestHubEndAndSubscribers(t *testing.T) {
	h := NewHub(10, 8)
	a, _ := h.Register("s")
	h.Register("s")
	if n := h.Subscribers("s"); n != 2 {
		t.Fatalf("subscribers %d", n)
	}
	h.End("s")
	s := &Subscription{sub: a}
	if reason, _ := s.Drain(func([]byte, int, time.Time) error { return nil }); reason != EndDeleted {
		t.Fatalf("reason %v", reason)
	}
	if h.Count() != 0 || h.Subscribers("s") != 0 {
		t.Fatalf("count %d", h.Count())
	}
	s.Close() // unregistering an ended subscriber is harmless
	if h.Count() != 0 {
		t.Fatalf("count went to %d", h.Count())
	}
}

// Steady-state delivery allocates nothing per event: the frame is encoded
// once by the store, the hub appends a pointer to a recycled queue.
func TestDeliverAndDrainDoNotAllocate(t *testing.T) {
	h := NewHub(10, 64)
	subs := make([]*Subscription, 4)
	for i := range subs {
		sub, _ := h.Register("s")
		subs[i] = &Subscription{sub: sub}
	}
	f := frame("s", 1)
	write := WriteFunc(func([]byte, int, time.Time) error { return nil })
	// Warm up: queues reach their steady capacity.
	for range 3 {
		h.Deliver(f)
		for _, s := range subs {
			s.sent = 0
			s.Drain(write)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		h.Deliver(f)
		for _, s := range subs {
			s.sent = 0
			s.Drain(write)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per delivered frame", allocs)
	}
}

// A subscriber cut off as slow leaves no empty entry behind once its
// handler ends; a deleted stream's subscribers can still unregister.
func TestHubForgetsEmptyStreams(t *testing.T) {
	h := NewHub(10, 1)
	sub, _ := h.Register("s")
	h.Deliver(frame("s", 1))
	h.Deliver(frame("s", 2)) // over the bound: removed by Deliver
	(&Subscription{sub: sub}).Close()
	if len(h.streams) != 0 {
		t.Fatalf("%d entries left", len(h.streams))
	}
	a, _ := h.Register("t")
	h.End("t")
	b, _ := h.Register("t") // a new entry for the same stream
	(&Subscription{sub: a}).Close()
	if h.Subscribers("t") != 1 || h.Count() != 1 {
		t.Fatalf("closing an ended subscriber touched the new entry: %d, count %d", h.Subscribers("t"), h.Count())
	}
	(&Subscription{sub: b}).Close()
	if len(h.streams) != 0 || h.Count() != 0 {
		t.Fatalf("entries %d, count %d", len(h.streams), h.Count())
	}
}

func TestHubEndAll(t *testing.T) {
	h := NewHub(10, 8)
	a, _ := h.Register("a")
	b, _ := h.Register("b")
	h.EndAll()
	for _, sub := range []*Subscriber{a, b} {
		s := &Subscription{sub: sub}
		if reason, _ := s.Drain(func([]byte, int, time.Time) error { return nil }); reason != EndResync {
			t.Fatalf("reason %v", reason)
		}
		s.Close()
	}
	if h.Count() != 0 || len(h.streams) != 0 {
		t.Fatalf("count %d, entries %d", h.Count(), len(h.streams))
	}
}

package memory

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/storetest"
)

func newStore(t *testing.T, o broker.StoreOptions) (*Store, *broker.Hub) {
	t.Helper()
	o = storetest.Defaults(o)
	hub := broker.NewHub(100, 16)
	s := New(o, hub)
	t.Cleanup(func() { _ = s.Close() })
	return s, hub
}

func pub(t *testing.T, s *Store, stream, data string) uint64 {
	t.Helper()
	res, err := s.Publish(context.Background(), stream, []broker.Message{{Name: broker.EventMessage, Data: data}}, "")
	if err != nil {
		t.Fatal(err)
	}
	return res.IDs[0]
}

func read(t *testing.T, s *Store, stream string, after uint64) broker.ReadResult {
	t.Helper()
	rr, err := s.Read(context.Background(), stream, after, 0)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func ids(rr broker.ReadResult) []uint64 {
	out := make([]uint64, len(rr.Events))
	for i, e := range rr.Events {
		out[i] = e.ID
	}
	return out
}

func TestAgeBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newStore(t, broker.StoreOptions{MaxAge: time.Minute})
		a := pub(t, s, "s", "a")
		time.Sleep(30 * time.Second)
		b := pub(t, s, "s", "b")
		time.Sleep(31 * time.Second) // a is older than a minute
		if rr := read(t, s, "s", 0); len(rr.Events) != 1 || rr.Events[0].ID != b || rr.FirstID != b {
			t.Fatalf("after a aged out: %v", ids(rr))
		}
		// Resuming at a lost nothing: a itself aged out, b is there.
		if rr := read(t, s, "s", a); rr.Gap || len(rr.Events) != 1 {
			t.Fatalf("resume at a: gap %v, %v", rr.Gap, ids(rr))
		}
		time.Sleep(time.Minute)
		rr := read(t, s, "s", a)
		if !rr.Gap || len(rr.Events) != 0 || rr.FirstID != 0 || rr.LastID != b {
			t.Fatalf("resume at a after b aged out: %+v", rr)
		}
		if rr := read(t, s, "s", b); rr.Gap {
			t.Fatal("resume at the last id reported a gap although nothing after it was lost")
		}
	})
}

// The janitor frees aged events even when nobody reads or publishes.
func TestJanitorTrimsAndExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, hub := newStore(t, broker.StoreOptions{MaxAge: time.Minute, IdleTTL: time.Hour})
		pub(t, s, "idle", "x")
		pub(t, s, "watched", "x")
		if _, err := hub.Register("watched"); err != nil { // a subscriber keeps a stream alive
			t.Fatal(err)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		s.mu.RLock()
		retained := len(s.streams["idle"].events)
		s.mu.RUnlock()
		if retained != 0 {
			t.Fatalf("janitor left %d aged events", retained)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if _, err := s.Info(context.Background(), "idle"); !errors.Is(err, broker.ErrStreamNotFound) {
			t.Fatalf("idle stream not expired: %v", err)
		}
		if _, err := s.Info(context.Background(), "watched"); err != nil {
			t.Fatalf("stream with a subscriber expired: %v", err)
		}
	})
}

// A stream whose last publish is long past but that had a subscriber
// until a moment ago is kept a whole idle TTL from then: a client that
// drops and reconnects after EventSource's retry: finds its history.
func TestWatchedStreamOutlivesItsSubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, hub := newStore(t, broker.StoreOptions{MaxAge: 24 * time.Hour, IdleTTL: time.Hour})
		b := broker.New(s, hub)
		pub(t, s, "read", "answer")
		sub, err := b.Subscribe(context.Background(), "read", 0)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Hour) // read long after the answer ended
		synctest.Wait()
		sub.Close() // the connection drops
		time.Sleep(time.Hour - time.Minute)
		synctest.Wait()
		if _, err := s.Info(context.Background(), "read"); err != nil {
			t.Fatalf("%v after its subscriber left (idle TTL 1h): %v", time.Hour-time.Minute, err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if _, err := s.Info(context.Background(), "read"); !errors.Is(err, broker.ErrStreamNotFound) {
			t.Fatalf("an hour past the idle TTL, the stream is still there: %v", err)
		}
	})
}

func TestCountBoundAndStopIsKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newStore(t, broker.StoreOptions{MaxEvents: 3, MaxAge: time.Minute})
		for range 10 {
			pub(t, s, "s", "x")
		}
		if rr := read(t, s, "s", 0); len(rr.Events) != 3 {
			t.Fatalf("retained %d, want 3", len(rr.Events))
		}
		res, err := s.CloseStream(context.Background(), "s", "")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Hour)
		rr := read(t, s, "s", 0)
		if len(rr.Events) != 1 || rr.Events[0].ID != res.IDs[0] || rr.Events[0].Name != broker.EventStop || !rr.Closed {
			t.Fatalf("closed stream after its events aged out: %+v", rr)
		}
		if _, err := s.Publish(context.Background(), "s", []broker.Message{{Name: "m"}}, ""); !errors.Is(err, broker.ErrStreamClosed) {
			t.Fatalf("publish after close: %v", err)
		}
		if _, err := s.CloseStream(context.Background(), "s", ""); !errors.Is(err, broker.ErrStreamClosed) {
			t.Fatalf("close after close: %v", err)
		}
	})
}

func TestMaxStreams(t *testing.T) {
	s, _ := newStore(t, broker.StoreOptions{MaxStreams: 2})
	pub(t, s, "a", "x")
	if err := s.Create(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(context.Background(), "c", []broker.Message{{Name: "m"}}, ""); !errors.Is(err, broker.ErrTooManyStreams) {
		t.Fatalf("third stream: %v", err)
	}
	pub(t, s, "a", "still fine")
	if err := s.Delete(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	pub(t, s, "c", "room again")
	if s.Len() != 2 {
		t.Fatalf("Len %d", s.Len())
	}
}

func TestIdempotencyForgottenWithHistory(t *testing.T) {
	s, _ := newStore(t, broker.StoreOptions{MaxEvents: 2})
	ctx := context.Background()
	msgs := []broker.Message{{Name: "m", Data: "x"}}
	first, _ := s.Publish(ctx, "s", msgs, "k")
	again, _ := s.Publish(ctx, "s", msgs, "k")
	if !again.Replayed || again.IDs[0] != first.IDs[0] {
		t.Fatalf("repeat: %+v", again)
	}
	pub(t, s, "s", "y")
	pub(t, s, "s", "z")
	later, _ := s.Publish(ctx, "s", msgs, "k")
	if later.Replayed {
		t.Fatal("key remembered after its event left the history")
	}
	s.mu.RLock()
	n := len(s.streams["s"].idem)
	s.mu.RUnlock()
	if n != 1 {
		t.Fatalf("%d keys held, want 1", n)
	}
}

// Read and Publish after Close fail with ErrStoreUnavailable.
func TestClosedStore(t *testing.T) {
	s, _ := newStore(t, broker.StoreOptions{})
	_ = s.Close()
	if _, err := s.Publish(context.Background(), "s", []broker.Message{{Name: "m"}}, ""); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("publish: %v", err)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("ping: %v", err)
	}
}

package broker

import (
	"testing"
	"time"
)

// drainBeat drains s and reports whether Ready was signalled and whether
// a heartbeat was due.
func drainBeat(t *testing.T, s *Subscription) (signalled, due bool) {
	t.Helper()
	select {
	case <-s.Ready():
		signalled = true
	default:
	}
	if _, err := s.Drain(func([]byte, int, time.Time) error { return nil }); err != nil {
		t.Fatal(err)
	}
	return signalled, s.HeartbeatDue()
}

// The shared clock marks an idle subscriber every second tick (ticks come
// every half interval), and a subscriber that was handed frames since the
// previous tick not at all on the next one.
func TestHeartbeatMarksIdleSubscribersOncePerTwoTicks(t *testing.T) {
	h := NewHub(10, 8)
	sub, _ := h.Register("s")
	s := &Subscription{sub: sub}
	other, _ := h.Register("t")
	o := &Subscription{sub: other}

	want := func(step string, s *Subscription, due bool) {
		t.Helper()
		signalled, got := drainBeat(t, s)
		if got != due || signalled != due {
			t.Fatalf("%s: signalled %v, due %v; want %v", step, signalled, got, due)
		}
	}
	// Just registered: active (its backlog is being written).
	h.Heartbeat()
	want("tick 1", s, false)
	h.Heartbeat()
	want("tick 2", s, true)
	h.Heartbeat()
	want("tick 3: a heartbeat counts as activity", s, false)
	h.Heartbeat()
	want("tick 4", s, true)

	h.Deliver(frame("s", 1))
	if _, due := drainBeat(t, s); due {
		t.Fatal("delivery: a heartbeat was due")
	}
	h.Heartbeat()
	want("tick 5: the frame was taken since tick 4", s, false)
	h.Heartbeat()
	want("tick 6", s, true)

	// The other stream was idle all along.
	if _, due := drainBeat(t, o); !due {
		t.Fatal("the idle subscriber of another stream was not marked")
	}

	// An ended subscriber is not marked.
	h.End("t")
	drainBeat(t, o)
	h.Heartbeat()
	h.Heartbeat()
	if _, due := drainBeat(t, o); due {
		t.Fatal("an ended subscriber was marked")
	}
}

func TestHeartbeatDoesNotAllocate(t *testing.T) {
	h := NewHub(100, 8)
	for i := range 50 {
		h.Register(string(rune('a' + i%5)))
	}
	h.Heartbeat() // the snapshot slice reaches its size
	if allocs := testing.AllocsPerRun(100, h.Heartbeat); allocs != 0 {
		t.Fatalf("%v allocations per tick", allocs)
	}
}

package broker

import (
	"fmt"
	"sync"
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
	h.Heartbeat(0, 1)
	want("tick 1", s, false)
	h.Heartbeat(0, 1)
	want("tick 2", s, true)
	h.Heartbeat(0, 1)
	want("tick 3: a heartbeat counts as activity", s, false)
	h.Heartbeat(0, 1)
	want("tick 4", s, true)

	h.Deliver(frame("s", 1))
	if _, due := drainBeat(t, s); due {
		t.Fatal("delivery: a heartbeat was due")
	}
	h.Heartbeat(0, 1)
	want("tick 5: the frame was taken since tick 4", s, false)
	h.Heartbeat(0, 1)
	want("tick 6", s, true)

	// The other stream was idle all along.
	if _, due := drainBeat(t, o); !due {
		t.Fatal("the idle subscriber of another stream was not marked")
	}

	// An ended subscriber is not marked.
	h.End("t")
	drainBeat(t, o)
	h.Heartbeat(0, 1)
	h.Heartbeat(0, 1)
	if _, due := drainBeat(t, o); due {
		t.Fatal("an ended subscriber was marked")
	}
}

func TestHeartbeatDoesNotAllocate(t *testing.T) {
	h := NewHub(100, 8)
	for i := range 50 {
		h.Register(string(rune('a' + i%5)))
	}
	h.Heartbeat(0, 1) // the snapshot slice reaches its size
	if allocs := testing.AllocsPerRun(100, func() { h.Heartbeat(1, 4) }); allocs != 0 {
		t.Fatalf("%v allocations per tick", allocs)
	}
}

// With parts, a tick visits one part of the subscribers, each in turn: the
// heartbeats of a node's idle subscribers are spread over the interval,
// evenly, and each subscriber is still visited once per parts ticks.
func TestHeartbeatVisitsOnePartPerTick(t *testing.T) {
	const streams, parts = 256, 4
	h := NewHub(streams, 8)
	subs := make([]*Subscription, streams)
	for i := range subs {
		sub, err := h.Register(fmt.Sprintf("s%d", i))
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = &Subscription{sub: sub}
	}
	for part := range parts { // every stream visited once: active since Register, now not
		h.Heartbeat(part, parts)
	}
	beaten := make([]int, streams) // the tick at which each was marked
	for tick := 1; tick <= 3*parts; tick++ {
		h.Heartbeat((tick-1)%parts, parts)
		marked := 0
		for i, s := range subs {
			if _, due := drainBeat(t, s); due {
				marked++
				if beaten[i] != 0 && tick-beaten[i] != 2*parts {
					t.Fatalf("stream %d marked at ticks %d and %d, want %d apart", i, beaten[i], tick, 2*parts)
				}
				beaten[i] = tick
			}
		}
		// New streams join the smallest group, so the parts are equal: in
		// the first round of ticks one part each, in the second none (a
		// heartbeat counts as activity), in the third one part each again.
		want := streams / parts
		if round := (tick - 1) / parts; round == 1 {
			want = 0
		}
		if marked != want {
			t.Fatalf("tick %d marked %d subscribers, want %d", tick, marked, want)
		}
	}
	for i, at := range beaten {
		if at == 0 {
			t.Fatalf("stream %d was never marked", i)
		}
	}
}

// heartbeatParts rounds down to a power of two within 1..HeartbeatGroups.
func TestHeartbeatParts(t *testing.T) {
	for _, c := range []struct{ in, want int }{{-1, 1}, {0, 1}, {1, 1}, {3, 2}, {4, 4}, {63, 32}, {64, 64}, {1000, 64}} {
		if got := heartbeatParts(c.in); got != c.want {
			t.Errorf("heartbeatParts(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

// Subscribers are in their heartbeat group from Register to unregister,
// however they end (unregister, End, EndAll, a slow cut-off), and the
// groups hold exactly those.
func TestHeartbeatGroupsFollowTheSubscribers(t *testing.T) {
	h := NewHub(1000, 1)
	registered := map[*Subscriber]bool{}
	var subs []*Subscriber
	for i := range 300 {
		sub, err := h.Register(fmt.Sprintf("s%d", i%150)) // two per stream
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
		registered[sub] = true
	}
	leave := func(s *Subscriber) {
		h.unregister(s)
		delete(registered, s)
	}
	check := func(when string) {
		t.Helper()
		h.mu.RLock()
		defer h.mu.RUnlock()
		n := 0
		for g, group := range h.beats.groups {
			for i, s := range group {
				if s.group != g || s.groupIndex != i {
					t.Fatalf("%s: subscriber at group %d index %d says %d/%d", when, g, i, s.group, s.groupIndex)
				}
				if !registered[s] {
					t.Fatalf("%s: an unregistered subscriber is in group %d", when, g)
				}
				n++
			}
		}
		if n != len(registered) {
			t.Fatalf("%s: groups hold %d subscribers, want %d", when, n, len(registered))
		}
	}
	check("registered")
	for i := 0; i < 150; i += 3 { // both subscribers leave: the stream goes
		leave(subs[i])
		leave(subs[i+150])
	}
	for i := 1; i < 150; i += 3 { // one leaves: the stream stays
		leave(subs[i])
	}
	leave(subs[1]) // twice: nothing more
	check("unregistered")
	for i := 2; i < 150; i += 6 {
		h.End(fmt.Sprintf("s%d", i))
	}
	check("ended, still to unregister")
	leave(subs[2])
	leave(subs[152])
	check("ended, then unregistered")
	h.Deliver(frame("s5", 1))
	h.Deliver(frame("s5", 2)) // past the queue bound of 1: both cut off
	check("cut off, still to unregister")
	leave(subs[5])
	leave(subs[155])
	check("cut off, then unregistered")
	h.EndAll()
	check("all ended")
	for _, s := range subs {
		leave(s)
	}
	check("all unregistered")
	again, err := h.Register("again")
	if err != nil {
		t.Fatal(err)
	}
	registered[again] = true
	check("registered again")
}

// One stream's many idle subscribers are spread over the parts too.
func TestHeartbeatSpreadsTheSubscribersOfOneStream(t *testing.T) {
	const subscribers, parts = 256, 4
	h := NewHub(subscribers, 8)
	subs := make([]*Subscription, subscribers)
	for i := range subs {
		sub, err := h.Register("broadcast")
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = &Subscription{sub: sub}
	}
	for part := range parts { // active since Register, now not
		h.Heartbeat(part, parts)
	}
	for part := range parts {
		h.Heartbeat(part, parts)
		marked := 0
		for _, s := range subs {
			if _, due := drainBeat(t, s); due {
				marked++
			}
		}
		if marked != subscribers/parts {
			t.Fatalf("part %d marked %d of the stream's %d subscribers, want %d", part, marked, subscribers, subscribers/parts)
		}
	}
}

// A new subscriber joins the smallest group, so subscribers that come and
// go in a pattern (a short-lived stream opened beside each lasting one) do
// not pile the lasting ones into a few groups and bring the burst back.
func TestHeartbeatGroupsStayEvenUnderChurn(t *testing.T) {
	h := NewHub(10000, 8)
	for i := range 1000 {
		if _, err := h.Register(fmt.Sprintf("room-%d", i)); err != nil {
			t.Fatal(err)
		}
		short, err := h.Register(fmt.Sprintf("reply-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		h.unregister(short)
	}
	smallest, biggest := 1000, 0
	for _, g := range h.beats.groups {
		smallest, biggest = min(smallest, len(g)), max(biggest, len(g))
	}
	if biggest-smallest > 1 {
		t.Fatalf("1,000 streams in groups of %d to %d, want within one of each other", smallest, biggest)
	}
}

// Subscribers come and go on several goroutines while heartbeats, slow
// cut-offs, End and EndAll run: every one leaves its group at its
// unregister, so nothing is left once all are closed. (A tick holds no
// stream lock, only the subscriber's.)
func TestHeartbeatGroupsEmptyAfterConcurrentChurn(t *testing.T) {
	h := NewHub(100000, 2)
	var (
		mu   sync.Mutex
		open []*Subscription
		wg   sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				sub, err := h.Register(fmt.Sprintf("s%d", (w*7+i)%10))
				if err != nil {
					t.Error(err)
					return
				}
				s := &Subscription{sub: sub}
				if i%3 == 0 {
					s.Close()
					s.Close()
					continue
				}
				mu.Lock()
				open = append(open, s)
				mu.Unlock()
			}
		})
	}
	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			h.Heartbeat(i%8, 8)
			h.Deliver(frame(fmt.Sprintf("s%d", i%10), uint64(i+1)))
			if i%50 == 0 {
				h.End(fmt.Sprintf("s%d", i%10))
			}
			if i%500 == 0 {
				h.EndAll()
			}
		}
	})
	wg.Wait()
	close(stop)
	churn.Wait()
	for _, s := range open {
		s.Close()
	}
	inGroups := 0
	for _, g := range h.beats.groups {
		inGroups += len(g)
	}
	if inGroups != 0 || h.Count() != 0 || len(h.streams) != 0 {
		t.Fatalf("all closed: %d subscribers left in groups, count %d, %d streams", inGroups, h.Count(), len(h.streams))
	}
}

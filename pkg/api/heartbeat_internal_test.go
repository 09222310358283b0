package api

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// The clock ticks as many times per half interval as the parts it asks
// the broker to visit, never closer than minHeartbeatStep: the default
// 15 s interval visits the streams in 64 parts, 117 ms apart.
func TestHeartbeatClockSpreadsTheIntervalIntoParts(t *testing.T) {
	for _, c := range []struct {
		interval time.Duration
		parts    int
	}{
		{15 * time.Second, 64},
		{2560 * time.Millisecond, 64},
		{2500 * time.Millisecond, 32},
		{100 * time.Millisecond, 2},
		{50 * time.Millisecond, 1},
		{time.Millisecond, 1},
	} {
		t.Run(c.interval.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ticks int
				clock := heartbeatClock{interval: c.interval, tick: func(part, parts int) {
					if parts != c.parts || part != ticks%c.parts {
						t.Errorf("tick %d asked for part %d of %d, want %d of %d", ticks, part, parts, ticks%c.parts, c.parts)
					}
					ticks++
				}}
				clock.join()
				time.Sleep(c.interval/2 + time.Millisecond/2)
				synctest.Wait()
				clock.leave()
				if want := c.parts; c.interval/2 >= time.Millisecond && ticks != want {
					t.Fatalf("%d ticks in half an interval, want %d", ticks, want)
				}
			})
		})
	}
}

// A clock that wakes late (a busy node) visits every part that came due
// meanwhile. time.Ticker drops the ticks it could not deliver; visiting
// only the next part would push every later visit back, and with a late
// wake-up every few ticks an idle subscriber went 18.75 s without a
// heartbeat at a 15 s interval. SPEC: a comment at least every interval.
func TestHeartbeatClockCatchesUpAfterLateWakeUps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 15 * time.Second
		hub := broker.NewHub(10, 8)
		store := memory.New(broker.StoreOptions{MaxEvents: 10, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
		defer store.Close()
		b := broker.New(store, hub)
		sub, err := b.Subscribe(context.Background(), "s", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		calls := 0
		clock := heartbeatClock{interval: interval, tick: func(part, parts int) {
			calls++
			if calls%4 == 0 {
				time.Sleep(250 * time.Millisecond) // two steps of 117 ms, and some
			}
			b.Heartbeat(part, parts)
		}}
		clock.join()
		var beats []time.Time
		deadline := time.After(3 * time.Minute)
	wait:
		for {
			select {
			case <-sub.Ready():
				if _, err := sub.Drain(func([]byte, int, time.Time) error { return nil }); err != nil {
					t.Fatal(err)
				}
				if sub.HeartbeatDue() {
					beats = append(beats, time.Now())
				}
			case <-deadline:
				break wait
			}
		}
		clock.leave()
		time.Sleep(time.Second) // the clock's goroutine may be in a late tick
		synctest.Wait()
		if len(beats) < 10 {
			t.Fatalf("%d heartbeats in 3 minutes", len(beats))
		}
		for i := 1; i < len(beats); i++ {
			if gap := beats[i].Sub(beats[i-1]); gap > interval {
				t.Fatalf("heartbeats %d and %d were %v apart (interval %v)", i-1, i, gap, interval)
			}
		}
	})
}

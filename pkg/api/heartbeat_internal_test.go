package api

import (
	"testing"
	"testing/synctest"
	"time"
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
				clock := heartbeatClock{interval: c.interval, tick: func(parts int) {
					if parts != c.parts {
						t.Errorf("tick asked for %d parts, want %d", parts, c.parts)
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

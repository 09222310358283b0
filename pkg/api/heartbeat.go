package api

import (
	"sync"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
)

// heartbeatClock is the one ticker behind every subscription's heartbeat:
// a goroutine that calls tick (Broker.Heartbeat) parts times every round
// (a little under half the interval) while at least one subscription of
// this Server is live, instead of a timer per connection. Each tick visits
// one part of the streams, so the heartbeats' writes are spread over the
// interval rather than made all at once. It starts with the first live
// subscription and stops with the last, so an idle Server runs nothing.
type heartbeatClock struct {
	interval time.Duration
	tick     func(part, parts int)

	mu   sync.Mutex
	live int
	stop chan struct{} // nil: no goroutine runs
}

func (c *heartbeatClock) join() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live++
	if c.stop == nil {
		c.stop = make(chan struct{})
		go c.run(c.stop)
	}
}

func (c *heartbeatClock) leave() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live--
	if c.live == 0 && c.stop != nil {
		close(c.stop)
		c.stop = nil
	}
}

func (c *heartbeatClock) run(stop <-chan struct{}) {
	round := heartbeatRound(c.interval)
	parts := partsPerRound(round)
	step := max(round/time.Duration(parts), minTickerStep)
	due := time.Now().Add(step) // before the ticker's first tick, never after
	t := time.NewTicker(step)
	defer t.Stop()
	part := 0
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		// A late wake-up (a busy node), or a tick that took long, visits
		// every part that came due meanwhile, at most one round (a burst,
		// but only after a stall). time.Ticker drops the ticks it could
		// not deliver, and the time it sends is when the first missed
		// tick was due, so the clock is read here: visiting only the next
		// part would push every later visit back, and the pushes would
		// add up past the heartbeat interval.
		for n := 0; n < parts && !time.Now().Before(due); n++ {
			select {
			case <-stop:
				return
			default:
			}
			c.tick(part, parts)
			part = (part + 1) % parts
			due = due.Add(step)
		}
		if now := time.Now(); !now.Before(due) { // more than a round late: start afresh
			due = now.Add(step)
		}
	}
}

// heartbeatRound is how long the clock takes to visit every stream once:
// a little under half the interval. An idle subscriber is marked every
// second visit, so its comments come every 0.9 interval when the clock is
// on time, and a visit may be late by a tenth of the interval (1.5 s at
// 15 s) before a connection goes longer than the interval without one.
func heartbeatRound(interval time.Duration) time.Duration { return interval * 9 / 20 }

// minTickerStep is the shortest time between two ticks of a clock with
// one part: below that, a heartbeat interval is too short to be kept.
// (sse.heartbeat is at least 1 ms.)
const minTickerStep = 100 * time.Microsecond

// minHeartbeatStep is the shortest time between two ticks of a clock
// that visits the streams in several parts. 15 s heartbeats tick every
// 105 ms (64 parts); only intervals under 2.85 s, which tests use, tick in
// fewer parts, and under 89 ms in one part per round.
const minHeartbeatStep = 20 * time.Millisecond

// partsPerRound is how many ticks the clock makes per round: as many as
// broker.HeartbeatGroups allows while ticks stay minHeartbeatStep apart.
func partsPerRound(round time.Duration) int {
	parts := 1
	for parts < broker.HeartbeatGroups && round/time.Duration(parts*2) >= minHeartbeatStep {
		parts *= 2
	}
	return parts
}

package api

import (
	"sync"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
)

// heartbeatClock is the one ticker behind every subscription's heartbeat:
// a goroutine that calls tick (Broker.Heartbeat) parts times every half
// interval while at least one subscription of this Server is live, instead
// of a timer per connection. Each tick visits one part of the streams, so
// the heartbeats' writes are spread over the interval rather than made all
// at once. It starts with the first live subscription and stops with the
// last, so an idle Server runs nothing.
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
	parts := heartbeatParts(c.interval)
	step := max(c.interval/2/time.Duration(parts), time.Millisecond)
	due := time.Now().Add(step) // before the ticker's first tick, never after
	t := time.NewTicker(step)
	defer t.Stop()
	part := 0
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			// A late wake-up (a busy node) visits every part that came due
			// meanwhile, at most one round. time.Ticker drops the ticks it
			// could not deliver; visiting only the next part would push
			// every later visit back by a step, and the pushes would add
			// up past the heartbeat interval.
			for n := 0; n < parts && !now.Before(due); n++ {
				c.tick(part, parts)
				part = (part + 1) % parts
				due = due.Add(step)
			}
			if !now.Before(due) { // more than a round late: start afresh
				due = now.Add(step)
			}
		}
	}
}

// minHeartbeatStep is the shortest time between two ticks of a clock
// that visits the streams in several parts. 15 s heartbeats tick every
// 117 ms (64 parts); only intervals under 2.56 s, which tests use, tick in
// fewer parts, and under 80 ms in one part every half interval.
const minHeartbeatStep = 20 * time.Millisecond

// heartbeatParts is how many ticks the clock makes per half interval: as
// many as broker.HeartbeatGroups allows while ticks stay minHeartbeatStep
// apart.
func heartbeatParts(interval time.Duration) int {
	parts := 1
	for parts < broker.HeartbeatGroups && interval/2/time.Duration(parts*2) >= minHeartbeatStep {
		parts *= 2
	}
	return parts
}

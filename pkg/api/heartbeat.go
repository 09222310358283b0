package api

import (
	"sync"
	"time"
)

// heartbeatClock is the one ticker behind every subscription's heartbeat:
// a goroutine that calls tick (Broker.Heartbeat) every half interval while
// at least one subscription of this Server is live, instead of a timer per
// connection. It starts with the first live subscription and stops with
// the last, so an idle Server runs nothing.
type heartbeatClock struct {
	interval time.Duration
	tick     func()

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
	t := time.NewTicker(max(c.interval/2, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			c.tick()
		}
	}
}

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
// one part of the subscribers, so the heartbeats' writes are spread over the
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
	// due is set before the ticker starts, so never after its first tick.
	sched := &heartbeatSchedule{parts: parts, step: step, due: time.Now().Add(step)}
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if !sched.visitDue(time.Now, c.tick, stop) {
			return
		}
	}
}

// heartbeatSchedule is where a heartbeat clock is in its rounds: the part
// it visits next, and when that part is due.
type heartbeatSchedule struct {
	parts int
	step  time.Duration
	part  int
	due   time.Time
}

// visitDue visits, in turn, every part that is due by now, at most one
// round, and reports false if stop closed meanwhile. The clock is read
// after each visit, not taken from the ticker: a late wake-up (a busy
// node) or a visit that took long must catch up with every part that came
// due meanwhile, since time.Ticker drops the ticks it could not deliver
// (and the time it sends is when the first missed one was due). Visiting
// only the next part would push every later visit back, and the pushes
// would add up past the heartbeat interval. The catch-up is a burst, but
// only after a stall.
func (s *heartbeatSchedule) visitDue(now func() time.Time, tick func(part, parts int), stop <-chan struct{}) bool {
	n := 0
	for ; n < s.parts && !now().Before(s.due); n++ {
		select {
		case <-stop:
			return false
		default:
		}
		tick(s.part, s.parts)
		s.part = (s.part + 1) % s.parts
		s.due = s.due.Add(s.step)
	}
	// A whole round visited and still behind: the clock was more than a
	// round late. Start afresh rather than go round again at once. Only
	// after a whole round: a clock on time that was paused just here
	// would otherwise restart off its schedule, and its visits drift late.
	if n == s.parts {
		if t := now(); !t.Before(s.due) {
			s.due = t.Add(s.step)
		}
	}
	return true
}

// heartbeatRound is how long the clock takes to visit every subscriber once:
// a little under half the interval. An idle subscriber is marked every
// second visit, so its comments come every 0.9 interval when the clock is
// on time, and a visit may be late by a tenth of the interval (1.5 s at
// 15 s) before a connection goes longer than the interval without one.
// (Lateness adds up over consecutive slow visits: no single clock can
// promise more than the slack it keeps.)
func heartbeatRound(interval time.Duration) time.Duration { return interval * 9 / 20 }

// minTickerStep is the shortest time between two ticks of a clock with
// one part: below that, a heartbeat interval is too short to be kept.
// (sse.heartbeat is at least 1 ms.)
const minTickerStep = 100 * time.Microsecond

// minHeartbeatStep is the shortest time between two ticks of a clock
// that visits the subscribers in several parts. 15 s heartbeats tick every
// 105 ms (64 parts); only intervals under 2.85 s (2.844 s), which tests
// use, tick in fewer parts, and under 89 ms (88.9 ms) in one part per
// round.
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

package api

import (
	"sync"
	"sync/atomic"
	"time"
)

// Coalescing: while many deliveries are under way on this node, a parked
// subscription that has something to write waits a moment first, so that
// its one write carries more events.
//
// On a busy stream the system call per write is most of the broker's CPU
// (the fanout profile: 65% in write(2)). A publish to a stream of 1,000
// subscribers starts 1,000 deliveries at once. If they all write at once,
// the publishes that arrive meanwhile wait behind them (the Go runtime
// looks at the network only when its run queue is empty, or every 10 ms),
// so the next round again has about one event per subscriber, and the node
// settles at one write per subscriber per event. Holding deliveries back
// for coalesceDelay when more than coalesceAbove are under way lets those
// publishes in first, and every subscriber's next write carries all of
// them. (Measured in docs/performance-log.md, "Coalesced writes".)
//
// The wait costs a busy node little: with coalesceAbove deliveries ahead of
// it a write waits for those to be written anyway, and that takes about as
// long as the delay. A node that is not busy never waits: a conversation,
// a quiet stream or a lone subscriber writes at once.
//
// "Ahead" means started and not yet writing. A delivery blocked in its
// write (a client that stopped reading, for up to the write timeout) is
// not counted: stalled clients, however many, never make the node look
// busy and hold the others back.
const (
	coalesceAbove = 128
	coalesceDelay = 2 * time.Millisecond
)

// coalescer starts the delivery goroutines of parked subscriptions: at
// once while few are under way, after its delay while many are.
type coalescer struct {
	above int32
	delay time.Duration

	// pending counts delivery goroutines started and not yet at their
	// write (or ended without one); see parkedSubscription.enterQueue.
	pending atomic.Int32

	mu sync.Mutex
	// held waits for the timer; spare is the slice of the round before,
	// reused so that holding does not allocate.
	held, spare []*parkedSubscription
	timer       *time.Timer // fires release; armed while held is not empty
}

func newCoalescer(above int, delay time.Duration) *coalescer {
	return &coalescer{above: int32(above), delay: delay}
}

// start runs p's delivery now, or after the delay when the node is busy.
// p's state is parkRunning. It never blocks (it runs under the hub's locks).
func (c *coalescer) start(p *parkedSubscription) {
	if c.busy() {
		c.hold(p)
		return
	}
	p.enterQueue()
	go p.run()
}

// busy reports whether more deliveries are under way than c lets through
// at once.
func (c *coalescer) busy() bool { return c.pending.Load() > c.above }

func (c *coalescer) hold(p *parkedSubscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = append(c.held, p)
	if len(c.held) > 1 {
		return // the timer is armed
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(c.delay, c.release)
		return
	}
	c.timer.Reset(c.delay)
}

// release starts the delivery goroutine of every held subscription.
func (c *coalescer) release() {
	c.mu.Lock()
	held := c.held
	c.held, c.spare = c.spare, nil
	c.mu.Unlock()

	for i, p := range held {
		held[i] = nil
		p.enterQueue()
		go p.run()
	}

	c.mu.Lock()
	if c.spare == nil {
		c.spare = held[:0]
	}
	c.mu.Unlock()
}

package broker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Hub is this node's fan-out: it keeps the subscribers of every stream and
// puts each delivered frame on their queues. It never blocks on a
// subscriber: a subscriber whose queue is full is removed and told to end
// (EndSlow), and catches up from history when its client reconnects.
type Hub struct {
	maxSubscribers int
	queueLimit     int

	mu      sync.RWMutex
	streams map[string]*hubStream
	beats   beatGroups // every registered subscriber, grouped for Heartbeat (under mu)

	subscribers     atomic.Int64
	slowDisconnects atomic.Uint64

	// tickMu serialises Heartbeat, whose snapshot of a part is reused
	// from tick to tick so that a tick does not allocate.
	tickMu   sync.Mutex
	tickSubs []*Subscriber

	// activity counts every frame handed to Deliver, for the operator's
	// page (see Activity).
	activity *activity
}

type hubStream struct {
	mu   sync.Mutex
	subs []*Subscriber
}

var _ Fanout = (*Hub)(nil)

// NewHub returns a Hub that admits at most maxSubscribers subscriptions in
// all and queues at most queueLimit frames per subscriber.
func NewHub(maxSubscribers, queueLimit int) *Hub {
	h := &Hub{
		maxSubscribers: maxSubscribers,
		queueLimit:     queueLimit,
		streams:        make(map[string]*hubStream),
	}
	h.activity = newActivity(time.Now, activityIdleTTL, activityMaxStreams, h.Subscribers)
	return h
}

// Register adds a subscriber to stream. It fails with
// ErrTooManySubscribers when the node is full.
func (h *Hub) Register(stream string) (*Subscriber, error) {
	for {
		n := h.subscribers.Load()
		if n >= int64(h.maxSubscribers) {
			return nil, fmt.Errorf("%w: this node holds its maximum of %d", ErrTooManySubscribers, h.maxSubscribers)
		}
		if h.subscribers.CompareAndSwap(n, n+1) {
			break
		}
	}
	// active: the handler writes its first block and the backlog now.
	s := &Subscriber{hub: h, stream: stream, limit: h.queueLimit, ready: make(chan struct{}, 1), active: true}
	h.mu.Lock()
	hs := h.streams[stream]
	if hs == nil {
		hs = &hubStream{}
		h.streams[stream] = hs
	}
	h.beats.add(s)
	hs.mu.Lock()
	s.hs, s.index = hs, len(hs.subs)
	hs.subs = append(hs.subs, s)
	hs.mu.Unlock()
	h.mu.Unlock()
	h.activity.watch(stream)
	return s, nil
}

// unregister removes s if it is still registered, and drops its stream's
// entry once it is empty. Idempotent. It locks the hubStream s was
// registered on (not whatever the map holds now), because that is the lock
// that guards s.index.
func (h *Hub) unregister(s *Subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hs := s.hs
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if s.index >= 0 {
		hs.remove(s)
		h.subscribers.Add(-1)
	}
	// Deliver removes slow subscribers without h.mu, so an entry can be left
	// empty; every subscriber ends with unregister, which tidies it.
	if len(hs.subs) == 0 && h.streams[s.stream] == hs {
		delete(h.streams, s.stream)
	}
	// Subscribers leave their heartbeat group here only, whether they were
	// removed from hs before (End, EndAll, a slow cut-off) or not: a
	// visit to one that ended does nothing (see tick).
	h.beats.remove(s)
}

// remove swap-removes s; hs.mu is held.
func (hs *hubStream) remove(s *Subscriber) {
	last := len(hs.subs) - 1
	moved := hs.subs[last]
	hs.subs[s.index] = moved
	moved.index = s.index
	hs.subs[last] = nil
	hs.subs = hs.subs[:last]
	s.index = -1
}

// Deliver puts f on the queue of every subscriber of its stream.
func (h *Hub) Deliver(f *Frame) {
	h.mu.RLock()
	hs := h.streams[f.Stream]
	h.mu.RUnlock()
	if hs == nil {
		h.activity.record(f, 0)
		return
	}
	// An entry leaves the map either empty (unregister) or about to be
	// emptied under hs.mu (End, EndAll); Register appends only to the entry
	// in the map, under h.mu. So a stale hs is never refilled, and using it
	// after RUnlock is safe: at worst Deliver queues for subscribers that
	// End is ending.
	handed := 0
	hs.mu.Lock()
	// Backwards: remove swaps the last subscriber in, already visited.
	for i := len(hs.subs) - 1; i >= 0; i-- {
		s := hs.subs[i]
		if s.push(f) {
			handed++
		} else {
			hs.remove(s)
			h.subscribers.Add(-1)
			h.slowDisconnects.Add(1)
		}
	}
	hs.mu.Unlock()
	// Counted after hs.mu is released: the tracker's lock is never taken
	// under the hub's (it asks the hub for subscriber counts under it).
	h.activity.record(f, handed)
}

// Passed counts, for the activity figures, a frame of n events of stream
// (the last with id lastID) that this node has no subscriber for and so
// was not handed: a shared store's feed skips decoding those frames.
func (h *Hub) Passed(stream string, n int, lastID uint64) {
	h.activity.add(stream, n, 0, lastID)
}

// Heartbeat is one tick of the node's single heartbeat clock, which
// replaces a timer per subscription. It visits part (0 to parts-1) of the
// subscribers; parts is a power of two up to HeartbeatGroups (others are
// rounded down). A clock that calls it with part 0, 1, ..., parts-1 in
// turn visits every subscriber once per round of parts calls. On each visit
// it marks "heartbeat due" and signals every subscriber that was handed no
// frame since the visit before; a subscriber just marked counts as active
// for the next visit. An idle subscriber is therefore marked every second
// visit, and no subscriber stays silent for longer than two rounds: a
// drain right after a visit is followed by a visit that clears the mark
// and one that finds it idle. A clock whose rounds take less than half
// the heartbeat interval keeps every idle connection's comments less than
// an interval apart.
//
// Visiting a part at a time spreads the heartbeats' writes over the
// interval: one visit of every subscriber at once would make every idle
// connection of the node write in the same moment (tens of thousands of
// system calls), and a live event published then would wait behind them.
func (h *Hub) Heartbeat(part, parts int) {
	parts = heartbeatParts(parts)
	part = (part%parts + parts) % parts
	h.tickMu.Lock()
	defer h.tickMu.Unlock()
	h.mu.RLock()
	subs := h.tickSubs[:0]
	for g := part; g < HeartbeatGroups; g += parts {
		subs = append(subs, h.beats.groups[g]...)
	}
	h.mu.RUnlock()
	for _, s := range subs {
		s.tick()
	}
	clear(subs)
	h.tickSubs = subs[:0]
}

// End ends every subscription of stream with EndDeleted.
func (h *Hub) End(stream string) {
	h.mu.Lock()
	hs := h.streams[stream]
	delete(h.streams, stream)
	h.mu.Unlock()
	if hs == nil {
		return
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, s := range hs.subs {
		s.end(EndDeleted)
		s.index = -1
		h.subscribers.Add(-1)
	}
	hs.subs = nil
}

// EndAll ends every subscription on this node with EndResync.
func (h *Hub) EndAll() {
	h.mu.Lock()
	streams := h.streams
	h.streams = make(map[string]*hubStream)
	h.mu.Unlock()
	for _, hs := range streams {
		hs.mu.Lock()
		for _, s := range hs.subs {
			s.end(EndResync)
			s.index = -1
			h.subscribers.Add(-1)
		}
		hs.subs = nil
		hs.mu.Unlock()
	}
}

// Subscribers returns the number of subscriptions to stream.
func (h *Hub) Subscribers(stream string) int {
	h.mu.RLock()
	hs := h.streams[stream]
	h.mu.RUnlock()
	if hs == nil {
		return 0
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return len(hs.subs)
}

// Activity reports what this node's hub saw of each stream: at most limit
// streams, the busiest first (see ActivityReport).
func (h *Hub) Activity(limit int) ActivityReport {
	return h.activity.snapshot(limit)
}

// Count is the number of subscriptions on this node.
func (h *Hub) Count() int { return int(h.subscribers.Load()) }

// SlowDisconnects counts subscribers cut off because their queue was full.
func (h *Hub) SlowDisconnects() uint64 { return h.slowDisconnects.Load() }

// EndReason says why a subscription ends.
type EndReason int

const (
	// EndNone: the subscription goes on.
	EndNone EndReason = iota
	// EndStopped: the stream's stop event was delivered.
	EndStopped
	// EndSlow: the subscriber's queue overflowed; it was cut off.
	EndSlow
	// EndDeleted: the stream was deleted or expired.
	EndDeleted
	// EndResync: this node may have missed events; the client must resume
	// from history.
	EndResync
)

func (r EndReason) String() string {
	switch r {
	case EndNone:
		return "none"
	case EndStopped:
		return "stopped"
	case EndSlow:
		return "slow"
	case EndDeleted:
		return "deleted"
	case EndResync:
		return "resync"
	}
	return fmt.Sprintf("EndReason(%d)", int(r))
}

// Subscriber is one subscription's bounded queue of frames. The Hub pushes;
// one consumer (the transport's handler) drains.
type Subscriber struct {
	hub    *Hub
	stream string
	limit  int
	// hs is the entry s was registered on; index is s's place in hs.subs,
	// -1 once removed, guarded by hs.mu.
	hs    *hubStream
	index int
	// group and groupIndex place s in Hub.beats, groupIndex -1 once it
	// left; guarded by Hub.mu.
	group, groupIndex int

	ready chan struct{} // capacity 1: "something changed"
	// wake, when set (see Subscription.OnReady), replaces ready: it is
	// called instead of signalling the channel. Guarded by mu.
	wake func()

	mu     sync.Mutex
	queue  []*Frame
	reason EndReason
	// active: frames were taken (or a heartbeat marked) since the last
	// heartbeat tick; beat: a heartbeat is due, for the consumer to take.
	active, beat bool
	// spare is the consumer's: drained queues are recycled through it so
	// that steady-state delivery does not allocate.
	spare []*Frame
}

// push queues f. It returns false when the queue is full: the subscriber is
// then ending with EndSlow and must be removed from the hub.
func (s *Subscriber) push(f *Frame) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason != EndNone {
		return true
	}
	if len(s.queue) >= s.limit {
		s.reason = EndSlow
		s.queue = nil
		s.notify()
		return false
	}
	s.queue = append(s.queue, f)
	s.notify()
	return true
}

func (s *Subscriber) end(r EndReason) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason == EndNone {
		s.reason = r
		s.notify()
	}
}

// notify tells the consumer that something changed; s.mu is held.
func (s *Subscriber) notify() {
	if s.wake != nil {
		s.wake()
		return
	}
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// onReady installs wake (see Subscription.OnReady).
func (s *Subscriber) onReady(wake func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wake = wake
	select {
	case <-s.ready:
		wake() // a signal was already pending on the channel
	default:
	}
}

// tick is Heartbeat's visit. It may come just after the subscription
// closed (Heartbeat took its part's snapshot before): it then signals a
// consumer that is gone, which is harmless.
func (s *Subscriber) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.reason != EndNone:
	case s.active:
		s.active = false
	default:
		s.active, s.beat = true, true
		s.notify()
	}
}

// take hands the queued frames to the consumer and gives it a fresh
// queue, with whether a heartbeat is due. The consumer passes the slice
// back through recycle.
func (s *Subscriber) take() ([]*Frame, EndReason, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = s.spare
	s.spare = nil
	if len(q) > 0 {
		s.active = true
	}
	beat := s.beat
	s.beat = false
	return q, s.reason, beat
}

func (s *Subscriber) recycle(q []*Frame) {
	clear(q)
	s.mu.Lock()
	s.spare = q[:0]
	s.mu.Unlock()
}

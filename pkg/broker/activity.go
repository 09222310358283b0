package broker

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Bounds of the activity tracker. They bound memory and what an operator
// sees, nothing a client does, so they are constants, not configuration.
const (
	// ActivityWindow is the span publish and delivery rates average over.
	ActivityWindow = activitySeconds * time.Second
	// activitySeconds is ActivityWindow in one-second buckets.
	activitySeconds = 10
	// activityIdleTTL: a stream without subscribers on this node is
	// forgotten this long after its last frame or subscription.
	activityIdleTTL = 10 * time.Minute
	// activityMaxStreams bounds the tracked streams. A new stream beyond it
	// first drops a tenth of them, the least recently active of those
	// without a subscriber on this node; of those with subscribers only
	// when too few have none. (Not every stream with subscribers: a node
	// can hold a million, and their buckets would cost ~300 B each; the
	// page lists the busiest 100 anyway.)
	activityMaxStreams = 10_000
)

// StreamActivity is what this node saw of one stream.
type StreamActivity struct {
	Stream string
	// Subscribers on this node now.
	Subscribers int
	// Published counts the events of every stored frame since this node
	// tracks the stream, published on any node: a shared store's feed
	// reaches every node, and counts the frames of streams this node has no
	// subscriber of through Hub.Passed. Delivered counts events times the
	// subscribers of this node each frame was handed to.
	Published, Delivered uint64
	// PublishRate and DeliveryRate are events per second, averaged over
	// the last ActivityWindow.
	PublishRate, DeliveryRate float64
	// LastID is the id of the last event seen, 0 for none.
	LastID uint64
	// LastActive is the time of the last frame or new subscription.
	LastActive time.Time
}

// ActivityReport is a snapshot of the node's activity.
type ActivityReport struct {
	// Since is when tracking started (the Hub's creation): the node's age.
	Since time.Time
	// Tracked is how many streams the tracker holds; Streams lists the
	// busiest of them.
	Tracked int
	// PublishRate and DeliveryRate are the node's: every frame counts,
	// whether its stream is still tracked or not.
	PublishRate, DeliveryRate float64
	// Streams are the busiest first: by publish rate, then delivery rate,
	// then most recently active, then name.
	Streams []StreamActivity
}

// activity counts, per stream, the frames this node's Hub is handed or
// told of, for the operator's page. The store interface cannot list
// streams, and a shared store may hold far more than one node cares about;
// the Hub hears of every stored frame of every stream (the single node of
// an embedded store; each node of a shared one, whose feed reaches every
// node and tells the Hub of the frames it does not decode, Hub.Passed), so
// it is where activity can be counted without asking the store.
//
// Its mutex comes after the store's stream lock (record runs under it) and
// before the Hub's locks: dropping streams at the bound asks the Hub for
// subscriber counts under it, so the Hub calls in only after releasing
// its own. Recording a frame of a tracked stream does not allocate.
type activity struct {
	now        func() time.Time
	idleTTL    time.Duration
	maxStreams int
	since      time.Time
	// subscribers counts a stream's subscribers on this node.
	subscribers func(stream string) int

	mu      sync.Mutex
	streams map[string]*streamActivity
	// node counts every frame, so that the node's rates stay exact when
	// streams are dropped at the bound. Only its buckets are used.
	node streamActivity
}

// streamActivity is one tracked stream; activity.mu guards it.
type streamActivity struct {
	stream               string
	published, delivered uint64
	lastID               uint64
	lastActive           time.Time
	// sec is the Unix second of the newest bucket; pub[s%activitySeconds]
	// and del[s%activitySeconds] hold the events of second s, for s in
	// (sec-activitySeconds, sec].
	sec      int64
	pub, del [activitySeconds]uint64
}

// newActivity makes a tracker; subscribers asks the Hub.
func newActivity(now func() time.Time, idleTTL time.Duration, maxStreams int, subscribers func(string) int) *activity {
	return &activity{
		now:         now,
		idleTTL:     idleTTL,
		maxStreams:  max(maxStreams, 1),
		since:       now(),
		subscribers: subscribers,
		streams:     make(map[string]*streamActivity),
	}
}

// record counts frame f, handed to handed subscribers of this node.
func (a *activity) record(f *Frame, handed int) {
	var lastID uint64
	if len(f.Events) > 0 {
		lastID = f.LastID()
	}
	a.add(f.Stream, len(f.Events), handed, lastID)
}

// add counts a frame of n events of stream, the last with id lastID (0:
// none), handed to handed subscribers of this node.
func (a *activity) add(stream string, n, handed int, lastID uint64) {
	now := a.now()
	events := uint64(n)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.node.count(now.Unix(), events, events*uint64(handed))
	e := a.entry(stream)
	e.count(now.Unix(), events, events*uint64(handed))
	e.published += events
	e.delivered += events * uint64(handed)
	if lastID != 0 {
		e.lastID = lastID
	}
	e.lastActive = now
}

// watch notes a new subscription to stream, so a stream that has
// subscribers but no publish yet is listed too.
func (a *activity) watch(stream string) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entry(stream).lastActive = now
}

// entry returns stream's entry, making it (the only allocation) when it is
// new; a.mu is held.
func (a *activity) entry(stream string) *streamActivity {
	if e := a.streams[stream]; e != nil {
		return e
	}
	if len(a.streams) >= a.maxStreams {
		a.dropLeastActive(max(a.maxStreams/10, 1))
	}
	// A copy: the frame's string may share memory with a larger buffer
	// (a store's decoded feed message) that the entry would keep alive.
	e := &streamActivity{stream: strings.Clone(stream)}
	a.streams[e.stream] = e
	return e
}

// dropLeastActive forgets n streams: the least recently active of those
// without a subscriber on this node, then, if there are fewer, of those
// with; a.mu is held. It runs once per n new streams, so its pass over
// the streams and its sort are cheap per stream.
func (a *activity) dropLeastActive(n int) {
	var unwatched, watched []*streamActivity
	for _, e := range a.streams {
		if a.subscribers(e.stream) == 0 {
			unwatched = append(unwatched, e)
		} else {
			watched = append(watched, e)
		}
	}
	for _, group := range [][]*streamActivity{unwatched, watched} {
		slices.SortFunc(group, func(x, y *streamActivity) int { return x.lastActive.Compare(y.lastActive) })
		for _, e := range group[:min(n, len(group))] {
			delete(a.streams, e.stream)
		}
		n -= min(n, len(group))
	}
}

func bucket(sec int64) int {
	return int(((sec % activitySeconds) + activitySeconds) % activitySeconds)
}

// advance moves the newest bucket to second sec, emptying the buckets of
// the seconds in between. A clock that steps back counts in the newest.
func (e *streamActivity) advance(sec int64) {
	if sec <= e.sec {
		return
	}
	if sec-e.sec >= activitySeconds {
		clear(e.pub[:])
		clear(e.del[:])
	} else {
		for s := e.sec + 1; s <= sec; s++ {
			e.pub[bucket(s)], e.del[bucket(s)] = 0, 0
		}
	}
	e.sec = sec
}

// count adds pub published and del delivered events to second sec.
func (e *streamActivity) count(sec int64, pub, del uint64) {
	e.advance(sec)
	i := bucket(e.sec)
	e.pub[i] += pub
	e.del[i] += del
}

// inWindow counts the events of the window that ends with second now: the
// buckets of seconds (now-activitySeconds, now].
func (e *streamActivity) inWindow(now int64) (pub, del uint64) {
	// Both spans are activitySeconds long: they meet in
	// (max-activitySeconds, min].
	for s := max(e.sec, now) - activitySeconds + 1; s <= min(e.sec, now); s++ {
		pub += e.pub[bucket(s)]
		del += e.del[bucket(s)]
	}
	return pub, del
}

// perSecond is a window's count as a rate.
func perSecond(n uint64) float64 { return float64(n) / activitySeconds }

// snapshot reports the tracked streams, at most limit of them (the
// busiest), with their subscriber counts from a.subscribers; it first
// forgets the streams idle past the TTL that have no subscribers.
func (a *activity) snapshot(limit int) ActivityReport {
	now := a.now()
	a.mu.Lock()
	pubSum, delSum := a.node.inWindow(now.Unix())
	all := make([]StreamActivity, 0, len(a.streams))
	for _, e := range a.streams {
		pub, del := e.inWindow(now.Unix())
		all = append(all, StreamActivity{
			Stream: e.stream, Published: e.published, Delivered: e.delivered,
			PublishRate: perSecond(pub), DeliveryRate: perSecond(del), LastID: e.lastID, LastActive: e.lastActive,
		})
	}
	a.mu.Unlock()

	// Subscriber counts are asked without a.mu: there is no need to hold
	// publishes up meanwhile.
	all = slices.DeleteFunc(all, func(s StreamActivity) bool {
		return now.Sub(s.LastActive) > a.idleTTL && a.subscribers(s.Stream) == 0 && a.forget(s.Stream, s.LastActive)
	})

	r := ActivityReport{Since: a.since, Tracked: len(all), PublishRate: perSecond(pubSum), DeliveryRate: perSecond(delSum)}
	slices.SortFunc(all, func(x, y StreamActivity) int {
		if c := cmp.Compare(y.PublishRate, x.PublishRate); c != 0 {
			return c
		}
		if c := cmp.Compare(y.DeliveryRate, x.DeliveryRate); c != 0 {
			return c
		}
		if c := y.LastActive.Compare(x.LastActive); c != 0 {
			return c
		}
		return strings.Compare(x.Stream, y.Stream)
	})
	r.Streams = all[:min(max(limit, 0), len(all))]
	for i := range r.Streams {
		r.Streams[i].Subscribers = a.subscribers(r.Streams[i].Stream)
	}
	return r
}

// forget drops stream's entry unless it was active after lastActive (a
// frame or a subscription since the snapshot read it), and reports
// whether it did.
func (a *activity) forget(stream string, lastActive time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.streams[stream]
	if e == nil || !e.lastActive.Equal(lastActive) {
		return e == nil
	}
	delete(a.streams, stream)
	return true
}

package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Broker is what the transport talks to. It validates input, keeps the
// replay rules, and joins a Store (ids, history) with the Hub (this node's
// subscribers).
type Broker struct {
	store Store
	hub   *Hub

	published   atomic.Uint64
	storeErrors atomic.Uint64
}

// New returns a Broker over store, whose Fanout must be hub.
func New(store Store, hub *Hub) *Broker {
	return &Broker{store: store, hub: hub}
}

// Publish validates msgs and stores them as events of stream.
func (b *Broker) Publish(ctx context.Context, stream string, msgs []Message, idempotencyKey string) (PublishResult, error) {
	if err := ValidateStreamID(stream); err != nil {
		return PublishResult{}, err
	}
	if err := ValidateIdempotencyKey(idempotencyKey); err != nil {
		return PublishResult{}, err
	}
	if err := ValidateMessages(msgs); err != nil {
		return PublishResult{}, err
	}
	res, err := b.store.Publish(ctx, stream, msgs, idempotencyKey)
	if err != nil {
		return PublishResult{}, b.storeError(err, "publish to %q", stream)
	}
	if !res.Replayed {
		b.published.Add(uint64(len(res.IDs)))
	}
	return res, nil
}

// CloseStream publishes the stop event and closes the stream.
func (b *Broker) CloseStream(ctx context.Context, stream, data string) (PublishResult, error) {
	if err := ValidateStreamID(stream); err != nil {
		return PublishResult{}, err
	}
	data, err := NormalizeData(data)
	if err != nil {
		return PublishResult{}, err
	}
	res, err := b.store.CloseStream(ctx, stream, data)
	if err != nil {
		return PublishResult{}, b.storeError(err, "close %q", stream)
	}
	b.published.Add(uint64(len(res.IDs)))
	return res, nil
}

// CreateStream makes a stream with an unguessable id: prefix followed by 26
// characters of crypto/rand.Text (130 random bits).
func (b *Broker) CreateStream(ctx context.Context, prefix string) (string, error) {
	stream := prefix + rand.Text()
	if err := ValidateStreamID(stream); err != nil {
		return "", err
	}
	if err := b.store.Create(ctx, stream); err != nil {
		return "", b.storeError(err, "create %q", stream)
	}
	return stream, nil
}

// Info describes a stream, with this node's subscriber count.
type Info struct {
	StreamInfo
	Subscribers int
}

// Info describes stream.
func (b *Broker) Info(ctx context.Context, stream string) (Info, error) {
	if err := ValidateStreamID(stream); err != nil {
		return Info{}, err
	}
	si, err := b.store.Info(ctx, stream)
	if err != nil {
		return Info{}, b.storeError(err, "info of %q", stream)
	}
	return Info{StreamInfo: si, Subscribers: b.hub.Subscribers(stream)}, nil
}

// History returns up to limit retained events after the given id (from
// the oldest when Gap is set), with the subscribe rule's gap flag. A stream
// that does not exist is ErrStreamNotFound.
func (b *Broker) History(ctx context.Context, stream string, after uint64, limit int) (ReadResult, error) {
	if err := ValidateStreamID(stream); err != nil {
		return ReadResult{}, err
	}
	rr, err := b.store.Read(ctx, stream, after, limit)
	if err != nil {
		return ReadResult{}, b.storeError(err, "history of %q", stream)
	}
	if !rr.Exists {
		return ReadResult{}, fmt.Errorf("%w: %q", ErrStreamNotFound, stream)
	}
	if rr.Closed && after > rr.StopID {
		// Not an id the stream issued, yet a subscribe from it answers
		// 204 rather than a gap (Subscription.NoContent): nothing was
		// lost there, and nothing will come.
		rr.Events, rr.Gap = nil, false
	}
	return rr, nil
}

// Delete removes a stream, its history and its subscriptions.
func (b *Broker) Delete(ctx context.Context, stream string) error {
	if err := ValidateStreamID(stream); err != nil {
		return err
	}
	if err := b.store.Delete(ctx, stream); err != nil {
		return b.storeError(err, "delete %q", stream)
	}
	return nil
}

// Ready reports whether the store answers.
func (b *Broker) Ready(ctx context.Context) error {
	if err := b.store.Ping(ctx); err != nil {
		return b.storeError(err, "ping")
	}
	return nil
}

// Activity reports what this node saw of each stream (publishes on any
// node, deliveries on this one; see StreamActivity): at most limit streams, the busiest first.
func (b *Broker) Activity(limit int) ActivityReport { return b.hub.Activity(limit) }

// Stats are the broker's counters, for metrics.
type Stats struct {
	Streams         int
	Subscribers     int
	EventsPublished uint64
	SlowDisconnects uint64
	StoreErrors     uint64
}

// Stats returns the current counters.
func (b *Broker) Stats() Stats {
	return Stats{
		Streams:         b.store.Len(),
		Subscribers:     b.hub.Count(),
		EventsPublished: b.published.Load(),
		SlowDisconnects: b.hub.SlowDisconnects(),
		StoreErrors:     b.storeErrors.Load(),
	}
}

// storeError wraps err with what was being done and counts errors that
// are the store's fault rather than the request's.
func (b *Broker) storeError(err error, format string, args ...any) error {
	switch {
	case errors.Is(err, ErrStreamClosed), errors.Is(err, ErrStreamNotFound),
		errors.Is(err, ErrTooManyStreams), errors.Is(err, context.Canceled):
	default:
		b.storeErrors.Add(1)
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}

// Subscribe starts a subscription to stream from the resume point after
// (0: from the oldest retained event).
//
// It registers the subscriber before it reads history, so an event
// published meanwhile is in the backlog, in the queue, or in both; the
// Subscription drops the copies by id. That is what makes resume exact
// without holding any lock across the store read.
func (b *Broker) Subscribe(ctx context.Context, stream string, after uint64) (*Subscription, error) {
	if err := ValidateStreamID(stream); err != nil {
		return nil, err
	}
	sub, err := b.hub.Register(stream)
	if errors.Is(err, ErrTooManySubscribers) {
		return b.subscribeWhenFull(ctx, stream, after, err)
	}
	if err != nil {
		return nil, err
	}
	read := false
	defer func() {
		// Also when Read panics (the HTTP layer recovers): a registration
		// left behind would count as a subscriber for good and hold a
		// place in subscribers.max.
		if !read {
			b.hub.unregister(sub)
		}
	}()
	rr, err := b.store.Read(ctx, stream, after, 0)
	if err != nil {
		return nil, b.storeError(err, "subscribe to %q", stream)
	}
	read = true
	if rr.Closed {
		// Everything the subscriber will get is in the backlog.
		b.hub.unregister(sub)
	}
	return newSubscription(stream, after, rr, sub), nil
}

// subscribeWhenFull answers a subscription the node has no place for
// (full is the hub's refusal). A closed stream needs none: its reader gets
// the backlog and stop, or 204 past stop, as on a node with room (SPEC: a
// late reader of a finished answer still sees it all). Closed is final,
// so no publish can slip between the check and the read. Anything else
// is refused.
func (b *Broker) subscribeWhenFull(ctx context.Context, stream string, after uint64, full error) (*Subscription, error) {
	info, err := b.store.Info(ctx, stream)
	if err != nil || !info.Closed {
		return nil, full // unknown, open, or the store is down: still no place
	}
	rr, err := b.store.Read(ctx, stream, after, 0)
	if err != nil {
		return nil, b.storeError(err, "subscribe to %q", stream)
	}
	if !rr.Closed { // deleted and re-created meanwhile
		return nil, full
	}
	return newSubscription(stream, after, rr, nil), nil
}

// newSubscription is a subscription from what rr read: live through sub,
// or, when the stream is closed, with everything it will get in the
// backlog (sub is then unregistered, or nil).
func newSubscription(stream string, after uint64, rr ReadResult, sub *Subscriber) *Subscription {
	s := &Subscription{
		Stream:  stream,
		After:   after,
		Backlog: rr.Events,
		Gap:     rr.Gap,
		FirstID: rr.FirstID,
		sent:    rr.LastID,
		sub:     sub,
	}
	if rr.Closed {
		s.sub = nil
		s.NoContent = after >= rr.StopID
	}
	return s
}

// Subscription is one subscriber's view of a stream: first a gap report
// (when Gap), then Backlog, then live frames through Drain.
type Subscription struct {
	Stream string
	After  uint64
	// Gap: events after After are missing (evicted, or After is not an id
	// of this stream). FirstID is the first retained id (0: none).
	Gap     bool
	FirstID uint64
	Backlog []Event
	// NoContent: the stream is closed and After is at or past its stop
	// event; nothing will ever come (HTTP 204).
	NoContent bool

	sub  *Subscriber // nil: the subscription ends after the backlog
	sent uint64      // the read's LastID, then the id of the last live event written: queued events at or below it are skipped
	beat bool        // a heartbeat is due (see HeartbeatDue)
}

// Heartbeat is one tick of the node's shared heartbeat clock: call it
// with part 0, 1, ..., parts-1 in turn, a round of parts calls in less
// than half the heartbeat interval, while subscriptions are live (see
// Hub.Heartbeat; parts up to HeartbeatGroups, more spreads the heartbeats
// more evenly). Each idle subscription's Ready is then signalled at least
// once per interval, and HeartbeatDue reports true after its Drain.
func (b *Broker) Heartbeat(part, parts int) { b.hub.Heartbeat(part, parts) }

// HeartbeatDue reports, once, that the subscription has been idle for a
// heartbeat interval: the consumer should write a comment if its last
// Drain wrote nothing. It is set by Drain.
func (s *Subscription) HeartbeatDue() bool {
	beat := s.beat
	s.beat = false
	return beat
}

// Live reports whether live events follow the backlog.
func (s *Subscription) Live() bool { return s.sub != nil }

// Ready is signalled when Drain has something to do. It is nil when the
// subscription is not live.
func (s *Subscription) Ready() <-chan struct{} {
	if s.sub == nil {
		return nil
	}
	return s.sub.ready
}

// OnReady makes the subscription call wake, from then on, whenever Drain
// has something to do, instead of signalling Ready: a transport that keeps
// no goroutine per idle subscriber schedules its consumer from wake. wake
// runs under the subscriber's and the hub's locks, and sometimes a store's
// (the memory store delivers every publish and ends a deleted stream's
// subscribers under its locks), so it must only schedule work, never do it
// or block. If Ready was already signalled, wake is called at once.
func (s *Subscription) OnReady(wake func()) {
	if s.sub != nil {
		s.sub.onReady(wake)
	}
}

// WriteFunc writes the wire bytes of events (count of them, the oldest
// published at published).
type WriteFunc func(wire []byte, events int, published time.Time) error

// Drain writes every queued event not yet sent, in order, and returns why
// the subscription ends (EndNone: it goes on). It must be called from one
// goroutine at a time.
func (s *Subscription) Drain(write WriteFunc) (EndReason, error) {
	if s.sub == nil {
		return EndStopped, nil
	}
	q, reason, beat := s.sub.take()
	s.beat = s.beat || beat
	defer s.sub.recycle(q)
	for _, f := range q {
		if f.LastID() <= s.sent {
			continue
		}
		wire, events := f.Wire, f.Events
		if events[0].ID <= s.sent {
			// Part of this frame was already in the backlog: skip it.
			off := 0
			for len(events) > 0 && events[0].ID <= s.sent {
				off += len(events[0].Wire)
				events = events[1:]
			}
			wire = wire[off:]
		}
		if err := write(wire, len(events), events[0].Time); err != nil {
			return EndNone, err
		}
		s.sent = f.LastID()
		if f.Final {
			return EndStopped, nil
		}
	}
	return reason, nil
}

// EndReason is why the broker ended the subscription, EndNone while it
// has not. A write that failed may have been blocked while the broker cut
// the subscriber off (EndSlow): the usual slow client stopped reading.
func (s *Subscription) EndReason() EndReason {
	if s.sub == nil {
		return EndNone
	}
	s.sub.mu.Lock()
	defer s.sub.mu.Unlock()
	return s.sub.reason
}

// Close ends the subscription and frees its place on the node.
func (s *Subscription) Close() {
	if s.sub != nil {
		s.sub.hub.unregister(s.sub)
	}
}

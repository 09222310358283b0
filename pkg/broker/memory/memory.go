// Package memory is the embedded in-memory Store: the default store of a
// single node, and the reference implementation of the broker.Store
// contract. Nothing survives a restart; ids of the next life are above
// every id of this one (see broker.IDClock), so old resume points get a
// gap.
package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
)

// Store is the in-memory store. Lock order: Store.mu, then stream.mu, then
// the Fanout's locks.
type Store struct {
	opts broker.StoreOptions
	fan  broker.Fanout
	ids  *broker.IDClock

	mu      sync.RWMutex
	streams map[string]*stream
	closed  bool

	stopJanitor chan struct{}
	janitorDone chan struct{}
}

var _ broker.Store = (*Store)(nil)

type stream struct {
	mu sync.Mutex
	// deleted is set, under Store.mu and mu, when the stream leaves the map;
	// a caller holding a stale pointer looks the stream up again.
	deleted bool

	events      []broker.Event // retained, in id order
	lastEvicted uint64         // id of the newest evicted event, 0: none
	lastID      uint64
	closed      bool
	stopID      uint64
	createdAt   time.Time
	lastPublish time.Time
	lastWatched time.Time // when a sweep or a subscribe's read last saw a subscriber; zero: none

	idem      map[string][]uint64 // Idempotency-Key → ids of that publish
	idemOrder []idemRef           // keys in publish order, for eviction
}

type idemRef struct {
	key    string
	lastID uint64
}

// New returns a store that hands stored frames to fan, and starts its
// janitor (age trimming and idle expiry), which Close stops.
func New(opts broker.StoreOptions, fan broker.Fanout) *Store {
	s := &Store{
		opts:        opts,
		fan:         fan,
		ids:         broker.NewIDClock(nil),
		streams:     make(map[string]*stream),
		stopJanitor: make(chan struct{}),
		janitorDone: make(chan struct{}),
	}
	go broker.RunJanitor(opts.SweepInterval(), s.stopJanitor, s.janitorDone, s.sweep)
	return s
}

// lookup returns the live stream named name, creating it when create is
// set. The returned stream is locked.
func (s *Store) lookup(name string, create bool) (*stream, error) {
	for {
		s.mu.RLock()
		st, closed := s.streams[name], s.closed
		s.mu.RUnlock()
		if closed {
			return nil, fmt.Errorf("%w: store closed", broker.ErrStoreUnavailable)
		}
		if st == nil {
			if !create {
				return nil, nil
			}
			var err error
			if st, err = s.create(name); err != nil {
				return nil, err
			}
		}
		st.mu.Lock()
		if !st.deleted {
			return st, nil
		}
		st.mu.Unlock() // deleted meanwhile: look again
	}
}

func (s *Store) create(name string) (*stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[name]; st != nil {
		return st, nil
	}
	if len(s.streams) >= s.opts.MaxStreams {
		return nil, fmt.Errorf("%w: the store holds its maximum of %d", broker.ErrTooManyStreams, s.opts.MaxStreams)
	}
	now := time.Now()
	st := &stream{createdAt: now, lastPublish: now}
	s.streams[name] = st
	s.opts.Logger.Info().Str("stream", name).Msg("stream created")
	return st, nil
}

// Create makes an empty stream.
func (s *Store) Create(_ context.Context, name string) error {
	st, err := s.lookup(name, true)
	if err != nil {
		return err
	}
	st.mu.Unlock()
	return nil
}

// Publish stores msgs as one frame.
func (s *Store) Publish(_ context.Context, name string, msgs []broker.Message, key string) (broker.PublishResult, error) {
	st, err := s.lookup(name, true)
	if err != nil {
		return broker.PublishResult{}, err
	}
	defer st.mu.Unlock()
	now := time.Now()
	s.trim(st, now)
	if key != "" {
		if ids, ok := st.idem[key]; ok {
			return broker.PublishResult{IDs: slices.Clone(ids), Replayed: true}, nil
		}
	}
	if st.closed {
		return broker.PublishResult{}, fmt.Errorf("%w: %q got its stop event", broker.ErrStreamClosed, name)
	}
	events := make([]broker.Event, len(msgs))
	ids := make([]uint64, len(msgs))
	for i, m := range msgs {
		ids[i] = s.ids.Next()
		events[i] = broker.Event{ID: ids[i], Name: m.Name, Data: m.Data, Time: now}
	}
	s.append(st, name, events, false, now)
	if key != "" {
		if st.idem == nil {
			st.idem = make(map[string][]uint64)
		}
		st.idem[key] = ids
		st.idemOrder = append(st.idemOrder, idemRef{key: key, lastID: ids[len(ids)-1]})
	}
	return broker.PublishResult{IDs: slices.Clone(ids)}, nil
}

// CloseStream publishes the stop event and closes the stream.
func (s *Store) CloseStream(_ context.Context, name, data string) (broker.PublishResult, error) {
	st, err := s.lookup(name, true)
	if err != nil {
		return broker.PublishResult{}, err
	}
	defer st.mu.Unlock()
	now := time.Now()
	s.trim(st, now)
	if st.closed {
		return broker.PublishResult{}, fmt.Errorf("%w: %q is already closed", broker.ErrStreamClosed, name)
	}
	id := s.ids.Next()
	st.closed, st.stopID = true, id
	s.append(st, name, []broker.Event{{ID: id, Name: broker.EventStop, Data: data, Time: now}}, true, now)
	return broker.PublishResult{IDs: []uint64{id}}, nil
}

// append stores events and hands them to fan-out; st.mu is held, which is
// what makes id, append and delivery one step per stream.
func (s *Store) append(st *stream, name string, events []broker.Event, final bool, now time.Time) {
	f := broker.EncodeFrame(name, events, final)
	st.events = append(st.events, f.Events...)
	st.lastID = f.LastID()
	st.lastPublish = now
	s.trim(st, now)
	s.fan.Deliver(f)
}

// trim applies the count and age bounds; st.mu is held. The stop event of
// a closed stream is the last event and is never trimmed, so a late
// subscriber always learns that the stream ended.
func (s *Store) trim(st *stream, now time.Time) {
	n := 0
	oldest := now.Add(-s.opts.MaxAge)
	for n < len(st.events) {
		e := &st.events[n]
		tooMany := len(st.events)-n > s.opts.MaxEvents
		tooOld := e.Time.Before(oldest)
		if !(tooMany || tooOld) || (st.closed && e.ID == st.stopID) {
			break
		}
		n++
	}
	if n == 0 {
		return
	}
	st.lastEvicted = st.events[n-1].ID
	clear(st.events[:n]) // drop references to data and wire bytes
	st.events = st.events[n:]
	if len(st.events) == 0 {
		st.events = nil // let the backing array go
	}
	k := 0
	for k < len(st.idemOrder) && st.idemOrder[k].lastID <= st.lastEvicted {
		delete(st.idem, st.idemOrder[k].key)
		k++
	}
	if k > 0 {
		clear(st.idemOrder[:k])
		st.idemOrder = st.idemOrder[k:]
	}
}

// Read returns a snapshot of retained events after the given id.
func (s *Store) Read(_ context.Context, name string, after uint64, limit int) (broker.ReadResult, error) {
	st, err := s.lookup(name, false)
	if err != nil {
		return broker.ReadResult{}, err
	}
	if st == nil {
		return broker.ReadResult{Gap: after > 0}, nil
	}
	defer st.mu.Unlock()
	now := time.Now()
	if s.fan.Subscribers(name) > 0 {
		// A subscriber shorter than a sweep counts too, as in the other
		// stores: the idle TTL runs from when it may have left.
		st.lastWatched = now
	}
	s.trim(st, now)
	rr := broker.ReadResult{Exists: true, LastID: st.lastID, Closed: st.closed, StopID: st.stopID}
	if len(st.events) > 0 {
		rr.FirstID = st.events[0].ID
	}
	start := 0
	if after > 0 {
		i, found := slices.BinarySearchFunc(st.events, after, func(e broker.Event, id uint64) int {
			switch {
			case e.ID < id:
				return -1
			case e.ID > id:
				return 1
			}
			return 0
		})
		switch {
		case found:
			start = i + 1
		case after == st.lastEvicted:
			start = 0 // evicted, but nothing after it was
		default:
			// Not an id this stream issued, or events after it were evicted:
			// report the gap and send everything retained.
			rr.Gap = true
		}
	}
	end := len(st.events)
	if limit > 0 && end-start > limit {
		end = start + limit
	}
	rr.Events = slices.Clone(st.events[start:end])
	return rr, nil
}

// Info describes a stream.
func (s *Store) Info(_ context.Context, name string) (broker.StreamInfo, error) {
	st, err := s.lookup(name, false)
	if err != nil {
		return broker.StreamInfo{}, err
	}
	if st == nil {
		return broker.StreamInfo{}, fmt.Errorf("%w: %q", broker.ErrStreamNotFound, name)
	}
	defer st.mu.Unlock()
	s.trim(st, time.Now())
	si := broker.StreamInfo{
		Stream: name, LastID: st.lastID, Retained: len(st.events),
		Closed: st.closed, CreatedAt: st.createdAt,
	}
	if len(st.events) > 0 {
		si.FirstID = st.events[0].ID
	}
	return si, nil
}

// Delete removes a stream and ends its subscriptions.
func (s *Store) Delete(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("%w: store closed", broker.ErrStoreUnavailable)
	}
	st := s.streams[name]
	if st == nil {
		return fmt.Errorf("%w: %q", broker.ErrStreamNotFound, name)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	s.remove(name, st)
	return nil
}

// remove takes st out of the map and ends its subscriptions; s.mu and
// st.mu are held. Holding s.mu keeps a new stream of the same name from
// being created until the old one's subscribers are ended.
func (s *Store) remove(name string, st *stream) {
	st.deleted = true
	st.events, st.idem, st.idemOrder = nil, nil, nil
	delete(s.streams, name)
	s.fan.End(name)
}

// Ping answers nil while the store is open.
func (s *Store) Ping(context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("%w: store closed", broker.ErrStoreUnavailable)
	}
	return nil
}

// Len is the number of streams.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.streams)
}

// Close stops the janitor and the store.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stopJanitor)
	<-s.janitorDone
	return nil
}

// sweep trims every stream and deletes idle ones.
func (s *Store) sweep(now time.Time) {
	s.mu.RLock()
	names := make([]string, 0, len(s.streams))
	for name := range s.streams {
		names = append(names, name)
	}
	s.mu.RUnlock()
	for _, name := range names {
		s.mu.RLock()
		st := s.streams[name]
		s.mu.RUnlock()
		if st == nil {
			continue
		}
		st.mu.Lock()
		s.trim(st, now)
		if s.fan.Subscribers(name) > 0 {
			st.lastWatched = now
		}
		idle := s.idle(name, st, now)
		st.mu.Unlock()
		if idle {
			s.expire(name, now)
		}
	}
}

// idle reports whether st has had no publish and no subscriber for longer
// than the idle TTL.
func (s *Store) idle(name string, st *stream, now time.Time) bool {
	return !st.deleted && now.Sub(s.opts.IdleSince(st.lastPublish, st.lastWatched)) > s.opts.IdleTTL &&
		s.fan.Subscribers(name) == 0
}

// expire deletes name if it is still idle once the map lock is held.
func (s *Store) expire(name string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if s.idle(name, st, now) {
		s.remove(name, st)
		s.opts.Logger.Info().Str("stream", name).Dur("idle", now.Sub(s.opts.IdleSince(st.lastPublish, st.lastWatched))).Msg("stream expired")
	}
}

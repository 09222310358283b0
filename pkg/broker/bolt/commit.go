package bolt

import (
	"context"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/sse-broker/broker/pkg/broker"
)

type opKind uint8

const (
	opCreate opKind = iota
	opPublish
	opClose
	opDelete
	opSweep // trim names and expire the idle ones among them
)

// request is one write for the committer. The committer sets res and err,
// then closes done.
type request struct {
	op     opKind
	stream string
	msgs   []broker.Message // opPublish
	key    string           // opPublish: Idempotency-Key or ""
	data   string           // opClose: data of the stop event
	names  []string         // opSweep: streams to trim
	expire map[string]bool  // opSweep: those of names that were idle
	size   int              // bytes of event data, for maxBatchBytes

	res  broker.PublishResult
	err  error
	done chan struct{}
}

// submit hands r to the committer and waits for its answer, for at most
// commitWait or until ctx ends. If that comes before the committer takes
// r, r is dropped; once taken, its result stands, but the caller stops
// waiting for it (a hung disk must not hold a request for as long as it
// hangs): a publish answered so may still be stored, as with any store
// that times out.
func (s *Store) submit(ctx context.Context, r *request) error {
	if s.closing.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.commitWait)
	defer cancel()
	r.done = make(chan struct{})
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The committer is held by a commit under way.
			return unavailable(fmt.Errorf("the write was not taken in time (a commit under way has not finished): %w", ctx.Err()))
		}
		return ctx.Err() // the caller went away
	case <-s.quit:
		return errClosed
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return unavailable(fmt.Errorf("the commit did not finish in time: %w", ctx.Err()))
	}
}

func (s *Store) commitLoop() {
	defer close(s.committerDone)
	reqs := make([]*request, 0, maxBatch)
	for {
		select {
		case r := <-s.reqs:
			reqs = append(reqs[:0], r)
		case <-s.quit:
			return
		}
		// Every request that waits meanwhile joins this transaction: while
		// one batch is fsynced, the next one gathers.
		size := reqs[0].size
	gather:
		for len(reqs) < maxBatch && size < maxBatchBytes {
			select {
			case r := <-s.reqs:
				reqs = append(reqs, r)
				size += r.size
			default:
				break gather
			}
		}
		s.run(reqs)
		clear(reqs)
	}
}

// batch is the state of one write transaction.
type batch struct {
	s   *Store
	now time.Time
	tx  *bbolt.Tx
	// root is the streams bucket.
	root *bbolt.Bucket
	// streams holds the streams the transaction touched, by name.
	streams map[string]*wstream
	count   int    // streams that exist in the transaction
	maxID   uint64 // highest id issued in the transaction
	changed bool   // something to commit
	// effects are what happens once the transaction is on disk, in order.
	effects []effect
	arena   []byte
}

// wstream is a stream as the transaction sees it.
type wstream struct {
	name                            string
	exists                          bool
	dirty                           bool // m changed
	m                               meta
	bucket, events, idem, idemOrder *bbolt.Bucket
}

type effect struct {
	frame   *broker.Frame // deliver
	end     string        // fan.End
	created string        // log "stream created"
	expired string        // log "stream expired"
	idle    time.Duration
}

// run applies reqs in one transaction, commits it, hands what it stored to
// the Fanout and answers every request.
func (s *Store) run(reqs []*request) {
	s.commitSince.Store(time.Now().UnixNano())
	defer func() {
		s.commitSince.Store(0)
		for _, r := range reqs {
			close(r.done)
		}
	}()
	if err := s.broken.Load(); err != nil {
		// After a commit failed past the meta page every request is
		// refused, those already waiting then included.
		for _, r := range reqs {
			r.err = *err
		}
		return
	}
	b := &batch{s: s, now: time.Now(), streams: make(map[string]*wstream)}
	s.mu.RLock()
	b.count = len(s.cache)
	s.mu.RUnlock()
	fail := func(err error) {
		err = unavailable(err)
		for _, r := range reqs {
			r.res, r.err = broker.PublishResult{}, err
		}
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		fail(fmt.Errorf("begin a write transaction: %w", err))
		return
	}
	b.tx, b.root = tx, tx.Bucket(bucketStreams)
	for _, r := range reqs {
		if err := b.apply(r); err != nil {
			_ = tx.Rollback()
			fail(err)
			return
		}
	}
	if !b.changed {
		_ = tx.Rollback()
	} else {
		if err := b.flush(); err != nil {
			_ = tx.Rollback()
			fail(err)
			return
		}
		txID := tx.ID()
		if err := s.commit(tx); err != nil {
			s.afterFailedCommit(txID, err)
			fail(fmt.Errorf("commit: %w", err))
			return
		}
		s.commits.Add(1)
	}
	// On disk: the cache follows, then fan-out, then the answers.
	s.mu.Lock()
	for name, w := range b.streams {
		if w.exists {
			s.cache[name] = w.m
		} else {
			delete(s.cache, name)
		}
	}
	s.mu.Unlock()
	for _, e := range b.effects {
		switch {
		case e.frame != nil:
			s.fan.Deliver(e.frame)
		case e.end != "":
			s.fan.End(e.end)
		case e.created != "":
			s.opts.Logger.Info().Str("stream", e.created).Msg("stream created")
		case e.expired != "":
			s.opts.Logger.Info().Str("stream", e.expired).Dur("idle", e.idle).Msg("stream expired")
		}
	}
}

// afterFailedCommit tells a commit that failed cleanly (nothing of it
// reached the file: a full disk while writing its pages) from one that
// failed after its meta page was written (the fsync after it failed).
// bbolt then treats the transaction as committed: what it wrote is
// readable, although its publishers were told it failed and no subscriber
// was sent it, and whether it is on the disk is unknown. The store then
// refuses writes until a restart (like PostgreSQL after a failed fsync),
// ends every subscription so that clients resume from what the file
// holds, and says so.
func (s *Store) afterFailedCommit(txID int, cause error) {
	visible := -1
	err := s.db.View(func(tx *bbolt.Tx) error { visible = tx.ID(); return nil })
	if err == nil && visible < txID {
		return // rolled back: the file is as before the transaction
	}
	broken := fmt.Errorf("%w: bolt: a commit failed after reaching the file (%w); restart the broker", broker.ErrStoreUnavailable, cause)
	s.broken.Store(&broken)
	s.opts.Logger.Error().Err(cause).Msg("bolt: a commit failed after reaching the file, so it may not be durable; writes are refused until a restart")
	s.fan.EndAll()
}

// apply applies one request. A request's own failure (closed stream, too
// many streams, ...) is its err; the returned error is a storage failure
// that fails the whole transaction.
func (b *batch) apply(r *request) error {
	switch r.op {
	case opCreate:
		_, err := b.ensure(r)
		return err
	case opPublish:
		return b.publish(r)
	case opClose:
		return b.closeStream(r)
	case opDelete:
		w, err := b.get(r.stream)
		if err != nil {
			return err
		}
		if !w.exists {
			r.err = fmt.Errorf("%w: %q", broker.ErrStreamNotFound, r.stream)
			return nil
		}
		return b.remove(w)
	case opSweep:
		return b.sweep(r.names, r.expire)
	}
	return fmt.Errorf("unknown request %d", r.op)
}

// get returns the stream as the transaction sees it (exists is false for
// a stream that does not exist).
func (b *batch) get(name string) (*wstream, error) {
	if w := b.streams[name]; w != nil {
		return w, nil
	}
	w := &wstream{name: name}
	if sb := b.root.Bucket([]byte(name)); sb != nil {
		m, err := decodeMeta(sb.Get(keyMeta))
		if err != nil {
			return nil, fmt.Errorf("stream %q: %w", name, err)
		}
		w.exists, w.m = true, m
		if err := w.open(sb); err != nil {
			return nil, err
		}
	}
	b.streams[name] = w
	return w, nil
}

func (w *wstream) open(sb *bbolt.Bucket) error {
	w.bucket = sb
	w.events, w.idem, w.idemOrder = sb.Bucket(bucketEvents), sb.Bucket(bucketIdem), sb.Bucket(bucketIdemOrder)
	if w.events == nil || w.idem == nil || w.idemOrder == nil {
		return fmt.Errorf("stream %q: missing bucket", w.name)
	}
	// Events are appended at the end and trimmed at the start: full pages.
	w.events.FillPercent = 0.95
	w.idemOrder.FillPercent = 0.95
	return nil
}

// ensure returns r.stream, creating it if needed. When the streams bound
// refuses it, r.err is set and the stream is nil.
func (b *batch) ensure(r *request) (*wstream, error) {
	w, err := b.get(r.stream)
	if err != nil || w.exists {
		return w, err
	}
	if b.count >= b.s.opts.MaxStreams {
		r.err = fmt.Errorf("%w: the store holds its maximum of %d", broker.ErrTooManyStreams, b.s.opts.MaxStreams)
		return nil, nil
	}
	sb, err := b.root.CreateBucket([]byte(r.stream))
	if err != nil {
		return nil, fmt.Errorf("create stream %q: %w", r.stream, err)
	}
	for _, name := range [][]byte{bucketEvents, bucketIdem, bucketIdemOrder} {
		if _, err := sb.CreateBucket(name); err != nil {
			return nil, fmt.Errorf("create stream %q: %w", r.stream, err)
		}
	}
	if err := w.open(sb); err != nil {
		return nil, err
	}
	now := b.now.UnixNano()
	w.exists, w.dirty, w.m = true, true, meta{createdAt: now, lastPublish: now}
	b.count++
	b.changed = true
	b.effects = append(b.effects, effect{created: r.stream})
	return w, nil
}

func (b *batch) publish(r *request) error {
	w, err := b.ensure(r)
	if err != nil || w == nil {
		return err
	}
	if err := b.trim(w); err != nil {
		return err
	}
	if r.key != "" {
		if v := w.idem.Get([]byte(r.key)); v != nil {
			r.res = broker.PublishResult{IDs: decodeIDs(v), Replayed: true}
			return nil
		}
	}
	if w.m.closed() {
		r.err = fmt.Errorf("%w: %q got its stop event", broker.ErrStreamClosed, r.stream)
		return nil
	}
	events := make([]broker.Event, len(r.msgs))
	ids := make([]uint64, len(r.msgs))
	for i, m := range r.msgs {
		name := m.Name
		if name == "" {
			name = broker.EventMessage
		}
		ids[i] = b.s.ids.Next()
		events[i] = broker.Event{ID: ids[i], Name: name, Data: m.Data, Time: b.now}
	}
	if err := b.append(w, events, false); err != nil {
		return err
	}
	if r.key != "" {
		v := b.alloc(8 * len(ids))
		putIDs(v, ids)
		if err := w.idem.Put([]byte(r.key), v); err != nil {
			return fmt.Errorf("stream %q: store the Idempotency-Key: %w", r.stream, err)
		}
		if err := w.idemOrder.Put(b.key(ids[len(ids)-1]), []byte(r.key)); err != nil {
			return fmt.Errorf("stream %q: store the Idempotency-Key: %w", r.stream, err)
		}
	}
	r.res = broker.PublishResult{IDs: ids}
	return nil
}

func (b *batch) closeStream(r *request) error {
	w, err := b.ensure(r)
	if err != nil || w == nil {
		return err
	}
	if err := b.trim(w); err != nil {
		return err
	}
	if w.m.closed() {
		r.err = fmt.Errorf("%w: %q is already closed", broker.ErrStreamClosed, r.stream)
		return nil
	}
	id := b.s.ids.Next()
	w.m.stopID = id
	if err := b.append(w, []broker.Event{{ID: id, Name: broker.EventStop, Data: r.data, Time: b.now}}, true); err != nil {
		return err
	}
	r.res = broker.PublishResult{IDs: []uint64{id}}
	return nil
}

// append stores events (ids in increasing order) and queues their frame
// for fan-out after the commit.
func (b *batch) append(w *wstream, events []broker.Event, final bool) error {
	for i := range events {
		e := &events[i]
		v := b.alloc(eventLen(e))
		putEvent(v, e)
		if err := w.events.Put(b.key(e.ID), v); err != nil {
			return fmt.Errorf("stream %q: store event %d: %w", w.name, e.ID, err)
		}
	}
	if w.m.retained == 0 {
		w.m.firstID, w.m.firstTime = events[0].ID, b.now.UnixNano()
	}
	last := events[len(events)-1].ID
	w.m.retained += uint64(len(events))
	w.m.lastID = last
	w.m.lastPublish = b.now.UnixNano()
	w.dirty, b.changed = true, true
	b.maxID = max(b.maxID, last)
	if err := b.trim(w); err != nil {
		return err
	}
	b.effects = append(b.effects, effect{frame: broker.EncodeFrame(w.name, events, final)})
	return nil
}

// trim applies the count and age bounds. The stop event of a closed
// stream is the last event and is never trimmed. Keys of publishes whose
// last event went are forgotten.
func (b *batch) trim(w *wstream) error {
	cutoff := b.now.Add(-b.s.opts.MaxAge).UnixNano()
	limit := uint64(max(b.s.opts.MaxEvents, 0))
	evicted := false
	c := w.events.Cursor()
	for w.m.retained > 0 && (w.m.retained > limit || w.m.firstTime < cutoff) && !w.m.stopIsFirst() {
		k, _ := c.First()
		if k == nil || idOf(k) != w.m.firstID {
			return fmt.Errorf("stream %q: the record says the oldest event is %d, the events bucket disagrees", w.name, w.m.firstID)
		}
		if err := c.Delete(); err != nil {
			return fmt.Errorf("stream %q: evict event %d: %w", w.name, w.m.firstID, err)
		}
		w.m.lastEvicted = w.m.firstID
		w.m.retained--
		w.m.firstID, w.m.firstTime = 0, 0
		if k, v := c.First(); k != nil {
			w.m.firstID, w.m.firstTime = idOf(k), eventTime(v)
		}
		evicted = true
	}
	if !evicted {
		return nil
	}
	w.dirty, b.changed = true, true
	if w.m.retained == 0 && w.m.firstID != 0 {
		return fmt.Errorf("stream %q: events left after the last one was evicted", w.name)
	}
	oc := w.idemOrder.Cursor()
	for k, key := oc.First(); k != nil && idOf(k) <= w.m.lastEvicted; k, key = oc.First() {
		if err := w.idem.Delete(key); err != nil {
			return fmt.Errorf("stream %q: forget an Idempotency-Key: %w", w.name, err)
		}
		if err := oc.Delete(); err != nil {
			return fmt.Errorf("stream %q: forget an Idempotency-Key: %w", w.name, err)
		}
	}
	return nil
}

// remove deletes a stream and its history; its subscriptions end after
// the commit.
func (b *batch) remove(w *wstream) error {
	if err := b.root.DeleteBucket([]byte(w.name)); err != nil {
		return fmt.Errorf("delete stream %q: %w", w.name, err)
	}
	w.exists, w.dirty = false, false
	w.m = meta{}
	w.bucket, w.events, w.idem, w.idemOrder = nil, nil, nil, nil
	b.count--
	b.changed = true
	b.effects = append(b.effects, effect{end: w.name})
	return nil
}

// sweep trims the named streams and expires those of them the janitor
// found idle that still are: no publish and no subscriber on this node for
// the idle TTL. The janitor decided from its cache a moment ago; a
// subscriber that came and went since is counted by the watched time its
// read recorded.
func (b *batch) sweep(names []string, expire map[string]bool) error {
	for _, name := range names {
		w, err := b.get(name)
		if err != nil {
			return err
		}
		if !w.exists {
			continue
		}
		if err := b.trim(w); err != nil {
			return err
		}
		idle := b.now.Sub(b.s.idleSince(name, time.Unix(0, w.m.lastPublish)))
		if expire[name] && idle > b.s.opts.IdleTTL && b.s.fan.Subscribers(name) == 0 {
			if err := b.remove(w); err != nil {
				return err
			}
			b.effects = append(b.effects, effect{expired: name, idle: idle})
		}
	}
	return nil
}

// flush writes the records of the streams the transaction changed and the
// highest id issued.
func (b *batch) flush() error {
	for _, w := range b.streams {
		if !w.exists || !w.dirty {
			continue
		}
		if err := w.bucket.Put(keyMeta, appendMeta(b.alloc(metaLen)[:0], &w.m)); err != nil {
			return fmt.Errorf("stream %q: store its record: %w", w.name, err)
		}
	}
	if b.maxID == 0 {
		return nil
	}
	v := b.alloc(8)
	putID(v, b.maxID)
	if err := b.tx.Bucket(bucketBroker).Put(keyMaxID, v); err != nil {
		return fmt.Errorf("store the highest id: %w", err)
	}
	return nil
}

// key returns id as a bbolt key. bbolt keeps keys and values until the
// commit, so they come from the batch's arena.
func (b *batch) key(id uint64) []byte {
	k := b.alloc(8)
	putID(k, id)
	return k
}

// alloc returns n bytes that stay valid for the transaction.
func (b *batch) alloc(n int) []byte {
	if cap(b.arena)-len(b.arena) < n {
		b.arena = make([]byte, 0, max(n, 64<<10))
	}
	start := len(b.arena)
	b.arena = b.arena[:start+n]
	return b.arena[start : start+n : start+n]
}

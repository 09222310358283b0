// Package bolt is the embedded durable Store: one bbolt file
// (go.etcd.io/bbolt) on one node. An event is acknowledged only once it is
// on disk (the commit's fdatasync), so acknowledged events survive kill -9
// and power loss; after a restart every stream serves the same events with
// the same ids, and new ids continue above the old ones.
//
// # Layout
//
//	broker/                     bucket
//	  version                   layout version (1)
//	  max_id                    highest id ever issued (8 bytes, big-endian)
//	streams/                    bucket
//	  <stream id>/              bucket, one per stream
//	    m                       stream record (see meta): created_at,
//	                            last_publish, last_id, last_evicted,
//	                            stop_id (closed when not 0), first_id,
//	                            first_time, retained
//	    e/                      events: 8-byte big-endian id → time, name,
//	                            data (the SSE wire form is rebuilt on read)
//	    k/                      Idempotency-Key → ids of that publish
//	    o/                      last id of a keyed publish → its key, so that
//	                            a key is forgotten when that publish's last
//	                            event is evicted
//
// The disk is the truth. The store also keeps every stream's record in
// memory (loaded at Open, replaced after each commit) for Len, the streams
// bound and the janitor's choice of what to look at; reads go to disk.
//
// # Group commit
//
// Every write (create, publish, close, delete, and the janitor's trims and
// expiries) is a request to one committer goroutine. It takes every
// request waiting (up to maxBatch of them, or maxBatchBytes of event
// data), applies them in order in ONE read-write transaction (each
// request's own checks - closed stream, Idempotency-Key, streams bound -
// decided in turn, so a request that fails does not fail the others),
// commits once (one fsync pair for the whole batch), THEN hands the frames
// to the Fanout in id order, and THEN answers the requests. Ids are issued
// by the committer, so for every stream, id order is commit order is
// delivery order; and concurrent publishers share fsyncs instead of
// queueing one fsync each.
//
// Reads (history, subscribe, info) are read-only transactions and do not
// queue behind the committer. (A commit that grows the file makes bbolt
// remap it, which waits for open reads and holds new ones meanwhile.)
// An event older than the age bound counts as evicted for a read even
// before a write transaction trims it.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/sse-broker/broker/pkg/broker"
)

const (
	// maxBatch bounds the requests of one transaction.
	maxBatch = 1024
	// maxBatchBytes bounds the event data of one transaction (once it holds
	// at least one request), so that a burst of large publishes does not
	// build one huge transaction.
	maxBatchBytes = 16 << 20
	// sweepChunk bounds the streams one janitor request looks at.
	sweepChunk = 1024
	// lockTimeout is how long Open waits for the file lock: another broker
	// on the same file makes Open fail instead of hang.
	lockTimeout = time.Second
	// commitStallLimit: a commit under way longer than this (an fsync
	// takes milliseconds, a busy disk a second) means a hung disk, and
	// readiness goes down.
	commitStallLimit = 5 * time.Second
	// closeWait bounds Close's wait for a commit under way.
	closeWait = 5 * time.Second
	// commitWait bounds a write's wait for its commit (to be taken by the
	// committer, then committed) when its caller has no sooner deadline: a
	// request's context has none, so on a hung disk publishers would wait
	// as long as it hangs; they get store_unavailable instead. Twice
	// commitStallLimit, so that readiness is down (a load balancer sends
	// no more) before the first write gives up.
	commitWait = 2 * commitStallLimit
)

// Store is the bbolt store.
type Store struct {
	opts broker.StoreOptions
	fan  broker.Fanout
	ids  *broker.IDClock
	db   *bbolt.DB
	path string

	reqs chan *request // unbuffered: a request is taken when the committer receives it
	quit chan struct{} // closed by Close

	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error

	committerDone chan struct{}
	janitorDone   chan struct{}

	// commits counts committed write transactions (benchmarks report
	// commits per event).
	commits atomic.Uint64

	// commit commits a write transaction: (*bbolt.Tx).Commit, which tests
	// replace to make a commit fail or hang as a disk can.
	commit func(*bbolt.Tx) error
	// commitSince is when the write transaction under way began (Unix ns;
	// 0: none). One running longer than stallLimit (a hung disk) makes
	// Ping report the store unavailable; Close waits at most closeWait
	// for it; a write waits at most commitWait for its commit.
	commitSince                       atomic.Int64
	stallLimit, closeWait, commitWait time.Duration
	// broken is set once a commit failed after it reached the file (see
	// afterFailedCommit): writes are refused until a restart.
	broken atomic.Pointer[error]

	mu    sync.RWMutex
	cache map[string]meta // every stream's record as of the last commit

	// watched is when a subscriber was last seen on each stream: by the
	// janitor's sweep, or by the read of a subscription being set up (see
	// broker.StoreOptions.IdleSince). It is not on disk: after a restart
	// no subscriber is left to wait for.
	watchedMu sync.Mutex
	watched   map[string]time.Time
}

var _ broker.Store = (*Store)(nil)

// Open opens (creating it if needed) the bbolt file at path, hands stored
// frames to fan, and starts the committer and the janitor, which Close
// stops. It fails after a second if another process holds the file.
func Open(path string, opts broker.StoreOptions, fan broker.Fanout) (*Store, error) {
	dir := filepath.Dir(path)
	if err := mkdirDurable(dir, syncDir); err != nil {
		return nil, fmt.Errorf("bolt: create the directory of %s: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: lockTimeout,
		NoSync:  false, // fsync every commit: an acknowledged event is on disk
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: open %s: the file is locked by another process (another broker on the same file?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	// A new file's directory entry must be durable too.
	if err := syncDir(dir); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: sync the directory of %s: %w", path, err)
	}
	s := &Store{
		opts:          opts,
		fan:           fan,
		ids:           broker.NewIDClock(nil),
		db:            db,
		path:          path,
		reqs:          make(chan *request),
		quit:          make(chan struct{}),
		committerDone: make(chan struct{}),
		janitorDone:   make(chan struct{}),
		cache:         make(map[string]meta),
		watched:       make(map[string]time.Time),
		commit:        (*bbolt.Tx).Commit,
		stallLimit:    commitStallLimit,
		closeWait:     closeWait,
		commitWait:    commitWait,
	}
	maxID, err := s.load()
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	s.ids.Advance(maxID)
	go s.commitLoop()
	go broker.RunJanitor(opts.SweepInterval(), s.quit, s.janitorDone, s.sweep)
	opts.Logger.Info().Str("path", path).Int("streams", len(s.cache)).
		Str("last_id", broker.FormatID(maxID)).Msg("bolt store opened")
	return s, nil
}

// load creates the buckets of a new file, checks the layout version of an
// old one, fills the cache and returns the highest id on disk.
func (s *Store) load() (uint64, error) {
	var maxID uint64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketBroker)
		if err != nil {
			return err
		}
		switch v := b.Get(keyVersion); {
		case v == nil:
			if err := b.Put(keyVersion, []byte{layoutVersion}); err != nil {
				return err
			}
		case len(v) != 1 || v[0] != layoutVersion:
			return fmt.Errorf("layout version %v is not %d: the file was written by another version", v, layoutVersion)
		}
		if v := b.Get(keyMaxID); len(v) == 8 {
			maxID = idOf(v)
		}
		streams, err := tx.CreateBucketIfNotExists(bucketStreams)
		if err != nil {
			return err
		}
		return streams.ForEachBucket(func(name []byte) error {
			m, err := decodeMeta(streams.Bucket(name).Get(keyMeta))
			if err != nil {
				return fmt.Errorf("stream %q: %w", name, err)
			}
			s.cache[string(name)] = m
			maxID = max(maxID, m.lastID)
			return nil
		})
	})
	return maxID, err
}

// mkdirDurable creates dir and its missing parents, then syncs the
// directory that holds each new one (with sync): a new directory's entry
// is durable only once its parent is synced, and a power loss soon after
// the first start must not take the data directory, and with it events
// already acknowledged.
func mkdirDurable(dir string, sync func(dir string) error) error {
	var missing []string // deepest first
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			break // there, or MkdirAll will say why not
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	for _, d := range slices.Backward(missing) {
		if err := sync(filepath.Dir(d)); err != nil {
			return fmt.Errorf("sync %s: %w", filepath.Dir(d), err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

var errClosed = fmt.Errorf("%w: bolt store closed", broker.ErrStoreUnavailable)

func unavailable(err error) error {
	if errors.Is(err, broker.ErrStoreUnavailable) {
		return err
	}
	return fmt.Errorf("%w: bolt: %w", broker.ErrStoreUnavailable, err)
}

// Create makes an empty stream.
func (s *Store) Create(ctx context.Context, stream string) error {
	return s.submit(ctx, &request{op: opCreate, stream: stream})
}

// Publish stores msgs as one frame, on disk, before it returns.
func (s *Store) Publish(ctx context.Context, stream string, msgs []broker.Message, key string) (broker.PublishResult, error) {
	r := &request{op: opPublish, stream: stream, msgs: msgs, key: key}
	for i := range msgs {
		r.size += len(msgs[i].Data) + len(msgs[i].Name)
	}
	if err := s.submit(ctx, r); err != nil {
		return broker.PublishResult{}, err
	}
	return r.res, nil
}

// CloseStream publishes the stop event and closes the stream.
func (s *Store) CloseStream(ctx context.Context, stream, data string) (broker.PublishResult, error) {
	r := &request{op: opClose, stream: stream, data: data, size: len(data)}
	if err := s.submit(ctx, r); err != nil {
		return broker.PublishResult{}, err
	}
	return r.res, nil
}

// Delete removes a stream and its history and ends its subscriptions.
func (s *Store) Delete(ctx context.Context, stream string) error {
	return s.submit(ctx, &request{op: opDelete, stream: stream})
}

// Read returns a snapshot of retained events after the given id.
func (s *Store) Read(_ context.Context, stream string, after uint64, limit int) (broker.ReadResult, error) {
	if s.closing.Load() {
		return broker.ReadResult{}, errClosed
	}
	now := time.Now()
	var (
		rr     broker.ReadResult
		events []broker.Event
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		sb := tx.Bucket(bucketStreams).Bucket([]byte(stream))
		if sb == nil {
			rr.Gap = after > 0
			return nil
		}
		m, err := decodeMeta(sb.Get(keyMeta))
		if err != nil {
			return err
		}
		rr = broker.ReadResult{Exists: true, LastID: m.lastID, Closed: m.closed(), StopID: m.stopID}
		c := sb.Bucket(bucketEvents).Cursor()
		h := s.headAt(c, &m, now)
		if h.k != nil {
			rr.FirstID = idOf(h.k)
		}
		k, v := h.k, h.v
		if after > 0 {
			found := false
			if k != nil && after >= rr.FirstID {
				var seek [8]byte
				putID(seek[:], after)
				if k2, _ := c.Seek(seek[:]); k2 != nil && idOf(k2) == after {
					found = true
					k, v = c.Next()
				}
			}
			if !found {
				// Not a retained id. Nothing is lost only when it is the
				// newest evicted one; otherwise events after it are gone,
				// or it is not an id this stream issued.
				rr.Gap = after != h.lastEvicted
				if rr.FirstID != 0 {
					var seek [8]byte
					putID(seek[:], rr.FirstID)
					k, v = c.Seek(seek[:])
				}
			}
		}
		for ; k != nil && (limit <= 0 || len(events) < limit); k, v = c.Next() {
			e, err := decodeEvent(k, v)
			if err != nil {
				return err
			}
			events = append(events, e)
		}
		return nil
	})
	if err != nil {
		return broker.ReadResult{}, unavailable(err)
	}
	if rr.Exists && s.fan.Subscribers(stream) > 0 {
		// A subscriber shorter than a sweep counts too, as in the other
		// stores: the idle TTL runs from when it may have left. (Only for
		// a stream that exists: ids made up by subscribers would pile up.)
		s.markWatched(stream, now)
	}
	if len(events) > 0 {
		rr.Events = broker.EncodeFrame(stream, events, false).Events
	}
	return rr, nil
}

// head is where a stream's retained events start at a given time.
type head struct {
	k, v        []byte // the oldest event still retained, nil: none
	lastEvicted uint64 // the newest id evicted by then
	aged        int    // events on disk older than the age bound
}

// headAt positions c on the oldest event retained at now: events older than
// the age bound count as evicted even before a write transaction trims
// them (the stop event of a closed stream never does).
func (s *Store) headAt(c *bbolt.Cursor, m *meta, now time.Time) head {
	h := head{lastEvicted: m.lastEvicted}
	h.k, h.v = c.First()
	cutoff := now.Add(-s.opts.MaxAge).UnixNano()
	if m.retained == 0 || m.firstTime >= cutoff {
		return h
	}
	for h.k != nil {
		id := idOf(h.k)
		if id == m.stopID || eventTime(h.v) >= cutoff {
			break
		}
		h.lastEvicted = id
		h.aged++
		h.k, h.v = c.Next()
	}
	return h
}

// Info describes a stream.
func (s *Store) Info(_ context.Context, stream string) (broker.StreamInfo, error) {
	if s.closing.Load() {
		return broker.StreamInfo{}, errClosed
	}
	var (
		si     broker.StreamInfo
		exists bool
	)
	now := time.Now()
	err := s.db.View(func(tx *bbolt.Tx) error {
		sb := tx.Bucket(bucketStreams).Bucket([]byte(stream))
		if sb == nil {
			return nil
		}
		m, err := decodeMeta(sb.Get(keyMeta))
		if err != nil {
			return err
		}
		exists = true
		h := s.headAt(sb.Bucket(bucketEvents).Cursor(), &m, now)
		si = broker.StreamInfo{
			Stream:    stream,
			LastID:    m.lastID,
			Retained:  int(m.retained) - h.aged,
			Closed:    m.closed(),
			CreatedAt: time.Unix(0, m.createdAt),
		}
		if h.k != nil {
			si.FirstID = idOf(h.k)
		}
		return nil
	})
	if err != nil {
		return broker.StreamInfo{}, unavailable(err)
	}
	if !exists {
		return broker.StreamInfo{}, fmt.Errorf("%w: %q", broker.ErrStreamNotFound, stream)
	}
	return si, nil
}

// Ping answers nil while the file can be read and written: not after a
// commit failed past the point of no return, nor while one hangs.
func (s *Store) Ping(context.Context) error {
	if s.closing.Load() {
		return errClosed
	}
	if err := s.broken.Load(); err != nil {
		return *err
	}
	if since := s.commitSince.Load(); since != 0 {
		if d := time.Since(time.Unix(0, since)); d > s.stallLimit {
			return fmt.Errorf("%w: bolt: a commit has been under way for %s (is the disk hung?)", broker.ErrStoreUnavailable, d.Round(time.Millisecond))
		}
	}
	if err := s.db.View(func(*bbolt.Tx) error { return nil }); err != nil {
		return unavailable(err)
	}
	return nil
}

// Len is the number of streams as of the last commit.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.cache)
}

// Close stops the janitor and the committer (a request already taken is
// finished and answered) and closes the file. Calls after Close fail with
// broker.ErrStoreUnavailable. A commit that hangs (a hung disk) is waited
// for at most closeWait; the file then stays open for the process's exit.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		close(s.quit)
		select {
		case <-s.committerDone:
		case <-time.After(s.closeWait):
			s.closeErr = fmt.Errorf("bolt: close %s: a commit has not finished after %s (is the disk hung?); the file is left open", s.path, s.closeWait)
			return
		}
		<-s.janitorDone
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("bolt: close %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// markWatched records that stream had a subscriber at now.
func (s *Store) markWatched(stream string, now time.Time) {
	s.watchedMu.Lock()
	defer s.watchedMu.Unlock()
	s.watched[stream] = now
}

// idleSince is when stream became idle (see StoreOptions.IdleSince).
func (s *Store) idleSince(stream string, lastPublish time.Time) time.Time {
	s.watchedMu.Lock()
	defer s.watchedMu.Unlock()
	return s.opts.IdleSince(lastPublish, s.watched[stream])
}

// sweep asks the committer to trim the streams holding aged events and to
// expire the idle ones. The cache only picks candidates; the committer
// decides again on what is on disk.
func (s *Store) sweep(now time.Time) {
	cutoff := now.Add(-s.opts.MaxAge).UnixNano()
	type candidate struct {
		name        string
		aged        bool // holds events older than the max age
		lastPublish time.Time
	}
	s.mu.RLock()
	streams := make([]candidate, 0, len(s.cache))
	for name, m := range s.cache {
		aged := m.retained > 0 && m.firstTime < cutoff && !m.stopIsFirst()
		streams = append(streams, candidate{name, aged, time.Unix(0, m.lastPublish)})
	}
	s.mu.RUnlock()
	var names []string
	expire := make(map[string]bool)
	for _, c := range streams { // the Fanout is asked without a lock held
		if s.fan.Subscribers(c.name) > 0 {
			s.markWatched(c.name, now)
		} else if now.Sub(s.idleSince(c.name, c.lastPublish)) > s.opts.IdleTTL {
			expire[c.name] = true
		}
		if c.aged || expire[c.name] {
			names = append(names, c.name)
		}
	}
	s.watchedMu.Lock()
	for name, at := range s.watched { // forget what no longer keeps a stream
		if now.Sub(s.opts.IdleSince(time.Time{}, at)) > s.opts.IdleTTL {
			delete(s.watched, name)
		}
	}
	s.watchedMu.Unlock()
	for len(names) > 0 {
		n := min(len(names), sweepChunk)
		r := &request{op: opSweep, names: names[:n:n], expire: expire}
		names = names[n:]
		if err := s.submit(context.Background(), r); err != nil {
			if !errors.Is(err, errClosed) {
				s.opts.Logger.Error().Err(err).Msg("bolt: janitor sweep")
			}
			return
		}
	}
}

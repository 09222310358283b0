// Package redisstore is the shared Store: any number of broker nodes keep
// their streams in one Redis (7 or later) and see the same ids, history,
// idempotency keys and live events.
//
// # Data layout
//
// A stream S is four keys, all with the hash tag {S}:
//
//   - sseb:{S}:x, a Redis Stream holding the retained events (fields n:
//     name, d: data). Ids follow Redis's millisecond clock with a
//     per-millisecond sequence: XADD * where the clock is ahead of the
//     stream's top, else an explicit next id (scripts.go says when); the
//     entry id "<ms>-<seq>" is the broker id (ms-2025-01-01)<<23 | seq
//     (see broker.SequenceBits), converted in Go, never in Lua (Lua numbers
//     are doubles). An event's time is the millisecond of its id.
//   - sseb:{S}:m, a hash: created (ms), last (newest id issued), trim
//     (newest id that left history), closed and stop (id of the stop event).
//     The stream exists while this key does.
//   - sseb:{S}:i, a hash Idempotency-Key → the ids of that publish, and
//     sseb:{S}:k, a list of "<last id> <key>" in publish order. When events
//     leave history the script pops the keys whose last event left, so a
//     stream never holds more keys than events.
//
// Two keys are global to the database: sseb:streams, a sorted set of the
// stream names scored by their expiry time (ms), which counts streams for
// streams.max and Len and lets the janitor find expired ones; and sseb:hw,
// the highest id a deleted stream had issued.
//
// # Scripts
//
// Every write is one Lua script (scripts.go), so id assignment, append,
// trimming, the idempotency check, the streams.max check and the hand-off
// to fan-out are one atomic step in Redis; the broker never reads then
// writes. Publish (and close, the same script with the stop event): trim by
// age, replay on a known Idempotency-Key, refuse a closed stream, count
// streams for a new one, XADD every event, trim by count (exact MAXLEN),
// update the meta hash, remember the key, PEXPIRE all four keys by the idle
// TTL, and PUBLISH the events on the feed channel. Read and Info run one
// script too (it trims by age first), so their answer is a consistent
// snapshot. Delete removes the keys, raises sseb:hw and PUBLISHes a delete
// notice.
//
// # Ids that never repeat
//
// Redis never issues an entry id at or below the last one of a stream key,
// and XADD * follows the server clock, so after FLUSHALL, a replaced Redis,
// a delete or an expiry the new ids are above the old ones as long as the
// clock moved on. For the same millisecond (delete and publish again at
// once) a new stream key starts above max(meta last, sseb:hw, the highest
// id this node has seen); the last one also covers a flushed Redis whose
// clock lags. An existing key starts above the highest id this node has
// seen too when the clock has not passed it: a Redis that came back
// without a stream's newest entries (a failover to a replica that missed
// them, a restore from an older file) would otherwise issue their ids
// again. Every node sees every id on the feed, so a node that was up
// when the lost ids were issued covers them; a node started after the
// loss does not. A resume point of a previous life, or one that Redis
// lost, is not a retained id nor the last trimmed one, so it gets a gap.
//
// # Gap
//
// As in the memory store: a resume point counts as issued when it is a
// retained entry or the newest trimmed id (meta trim); otherwise Read
// reports a gap and every retained event. A stream that does not exist
// reports a gap for any resume point above 0.
//
// # Bounds
//
// Count: exact MAXLEN in the publish script. Age: XTRIM MINID at the
// millisecond MaxAge ago (or the stop event's id, which is always kept) in
// every publish, read and info, and by each node's janitor, which walks
// sseb:streams with ZSCAN (a bounded batch per tick) so that memory is
// freed without traffic. Idle: every write PEXPIREs the stream's keys by
// the idle TTL; a node renews the TTL of the streams it has subscribers on
// (it learns them from Read, which every subscribe calls, and asks
// Fanout.Subscribers) every quarter TTL. The janitor removes expired names
// from sseb:streams, logs "stream expired" (one node wins) and PUBLISHes a
// delete notice so any remaining subscriber is ended.
//
// # Fan-out
//
// Every node subscribes to one channel, sseb:feed:<db> (pub/sub channels
// are not per database). The publish script PUBLISHes a compact frame
// ("F", final flag, length-prefixed stream, then per event its entry id
// and length-prefixed name and data), so the order of the channel is the
// order of the scripts, which is id order per stream. The feed goroutine
// decodes each frame, encodes it once for this node with broker.EncodeFrame
// and calls Fanout.Deliver; a delete notice ("D" stream) calls Fanout.End.
// Frames of streams without local subscribers are skipped when the Fanout
// is a *broker.Hub (Deliver would drop them anyway).
//
// Pub/sub has no replay: events published while a node's subscription is
// down are lost to that node. So the feed never relies on go-redis's
// silent reconnect: it pings through its own connection every half
// timeout, and any receive error or silence longer than ping interval plus
// timeout closes it. Then it marks itself down (Ping fails, /readyz answers
// 503) and reconnects with backoff, calling Fanout.EndAll so every local
// subscriber resumes from history: at once when Redis still answers
// commands, else once the outage has lasted outageGrace (feed.go says
// why). Once SUBSCRIBE is confirmed again it calls EndAll once more, for
// subscribers that read history while the feed was down. Redis also cuts
// a subscriber whose output buffer overflows (a node that cannot keep
// up): that is a receive error too.
//
// # Availability
//
// New fails only for a bad URL or, when Redis answers at start, a refusal
// of the URL's database number, user or password (refusal), or an evicting
// maxmemory-policy (anything but noeviction; volatile-* policies evict
// these keys too, since they all have a TTL) unless AllowEviction, in
// which case the policy is logged at error level. If Redis does not
// answer at start, New still succeeds: Ping reports broker.ErrStoreUnavailable
// and the policy is checked on every new connection (a connection to an
// evicting Redis is refused). Every operation is bounded by
// Options.Timeout; connection errors and timeouts are returned wrapping
// broker.ErrStoreUnavailable. go-redis's retries are off: a failed publish
// is answered 503 and the client retries (with its Idempotency-Key). A
// publish that timed out has an unknown outcome: Redis may still run the
// script once it answers again, so only a retry with the same
// Idempotency-Key is exactly once. If an ACL forbids INFO, the policy
// cannot be checked: that is logged as a warning once.
//
// A single Redis (or a primary with replicas for failover) is supported;
// Redis Cluster is not: the global keys and the janitor's scripts span
// slots.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/pkg/broker"
)

// DefaultTimeout bounds every Redis operation when Options.Timeout is 0.
const DefaultTimeout = 2 * time.Second

// Global keys.
const (
	keyStreams = "sseb:streams"
	keyHW      = "sseb:hw"
)

// Options configure the connection to Redis.
type Options struct {
	// URL is redis://[USER:PASSWORD@]HOST[:PORT][/DB].
	URL string
	// AllowEviction starts even when Redis's maxmemory-policy may evict the
	// broker's keys (history would vanish silently); it is logged at error
	// level. Off: such a Redis is refused.
	AllowEviction bool
	// Timeout bounds each operation (DefaultTimeout when 0).
	Timeout time.Duration
}

// Store is the Redis store. It is safe for concurrent use.
type Store struct {
	rdb     *redis.Client
	opts    broker.StoreOptions
	fan     broker.Fanout
	hub     *broker.Hub // fan, when it is a Hub: lets the feed skip frames
	log     zerolog.Logger
	timeout time.Duration
	channel string
	allowEv bool

	maxAgeMS, idleTTLMS int64

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	closed atomic.Bool
	wg     sync.WaitGroup

	feedUp  atomic.Bool
	psMu    sync.Mutex
	ps      *redis.PubSub // the feed's current subscription
	maxSeen atomic.Uint64 // highest id this node issued or received

	// watched holds streams read on this node (every subscribe reads) with
	// when their TTL was last renewed; the janitor renews those that have
	// subscribers and forgets the others.
	watchMu sync.Mutex
	watched map[string]time.Time

	lenMu sync.Mutex
	lenN  int
	lenAt time.Time

	policyMu     sync.Mutex
	policyLogged string
}

var _ broker.Store = (*Store)(nil)

// keys of one stream.
type streamKeys struct{ meta, x, idem, order string }

func keysOf(stream string) streamKeys {
	p := "sseb:{" + stream + "}:"
	return streamKeys{meta: p + "m", x: p + "x", idem: p + "i", order: p + "k"}
}

// policyError reports an evicting maxmemory-policy.
type policyError struct{ policy string }

func (e *policyError) Error() string {
	return fmt.Sprintf("redis maxmemory-policy is %q: Redis may evict the broker's keys and silently delete history; "+
		"set maxmemory-policy noeviction (or redis.allow_eviction: true to run anyway)", e.policy)
}

// New connects to Redis and starts the event feed and the janitor, which
// Close stops. See the package comment for when it fails.
func New(ctx context.Context, o Options, opts broker.StoreOptions, fan broker.Fanout) (*Store, error) {
	ropts, err := redisOptions(o.URL)
	if err != nil {
		return nil, err
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// At least 1: the count trim keeps the newest MaxEvents entries, and a
	// closed stream's stop event (the newest) must never go. (The
	// configuration refuses 0 already.)
	if opts.MaxEvents < 1 {
		opts.MaxEvents = 1
	}
	s := &Store{
		opts:      opts,
		fan:       fan,
		log:       opts.Logger.With().Str("store", "redis").Logger(),
		timeout:   timeout,
		channel:   "sseb:feed:" + strconv.Itoa(ropts.DB),
		allowEv:   o.AllowEviction,
		maxAgeMS:  max(opts.MaxAge.Milliseconds(), 1),
		idleTTLMS: max(opts.IdleTTL.Milliseconds(), 1),
		watched:   make(map[string]time.Time),
	}
	s.hub, _ = fan.(*broker.Hub)
	ropts.DialTimeout = timeout
	ropts.ReadTimeout = timeout
	ropts.WriteTimeout = timeout
	ropts.PoolTimeout = timeout
	ropts.ContextTimeoutEnabled = true
	ropts.MaxRetries = -1
	ropts.DialerRetries = 1
	ropts.Protocol = 2
	ropts.DisableIdentity = true
	ropts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	ropts.OnConnect = s.checkPolicy
	s.rdb = redis.NewClient(ropts)
	s.ctx, s.cancel = context.WithCancel(context.Background())

	pctx, cancel := context.WithTimeout(ctx, timeout)
	err = s.rdb.Ping(pctx).Err()
	cancel()
	var pe *policyError
	if errors.As(err, &pe) {
		s.cancel()
		_ = s.rdb.Close()
		return nil, fmt.Errorf("store: %w", pe)
	}
	if refusal(err) {
		s.cancel()
		_ = s.rdb.Close()
		return nil, fmt.Errorf("store: redis refused the broker's configuration (the URL's database number, user or password, or the user's rights): %w", err)
	}
	reachable := err == nil
	if !reachable {
		s.log.Error().Err(err).Msg("redis does not answer; starting anyway, not ready until it does")
	}
	up := make(chan struct{})
	s.wg.Add(2)
	go s.runFeed(up)
	go s.janitor()
	if reachable {
		// Be ready when New returns: wait for the first subscription.
		select {
		case <-up:
		case <-time.After(timeout):
		case <-ctx.Done():
		}
	}
	return s, nil
}

// refusal reports whether err is Redis answering with a refusal of this
// broker's configuration (a database number it does not have, a wrong or
// missing password, a user without the right), rather than not answering.
// The one is a bad configuration, which stops the broker at start; the
// other is an outage, which it rides out (SPEC). Waiting would not make a
// refusing Redis serve.
func refusal(err error) bool {
	var reply redis.Error
	if !errors.As(err, &reply) {
		return false
	}
	for _, prefix := range []string{"WRONGPASS", "NOAUTH", "NOPERM", "ERR DB index", "ERR invalid DB index", "ERR AUTH"} {
		if strings.HasPrefix(reply.Error(), prefix) {
			return true
		}
	}
	return false
}

// redisOptions parses a redis:// URL without ever showing its password.
func redisOptions(raw string) (*redis.Options, error) {
	if !strings.HasPrefix(raw, "redis://") {
		return nil, errors.New("store: the redis URL must start with redis://")
	}
	ropts, err := redis.ParseURL(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, errors.New("store: bad redis URL: cannot parse it")
		}
		return nil, fmt.Errorf("store: bad redis URL: %w", err)
	}
	return ropts, nil
}

// checkPolicy runs on every new connection: Redis must not evict keys.
func (s *Store) checkPolicy(ctx context.Context, cn *redis.Conn) error {
	info, err := cn.Info(ctx, "memory").Result()
	var rerr redis.Error
	if errors.As(err, &rerr) && (!refusal(err) || strings.HasPrefix(rerr.Error(), "NOPERM")) {
		// The server answered but refused INFO (an ACL without it, as
		// -@dangerous is): the policy cannot be checked; say so once and
		// go on. Any other refusal (a password, a database number) is the
		// connection's, and stops it.
		s.policyMu.Lock()
		first := s.policyLogged != "?"
		s.policyLogged = "?"
		s.policyMu.Unlock()
		if first {
			s.log.Warn().Err(err).Msg("cannot read redis's maxmemory-policy; make sure it is noeviction")
		}
		return nil
	}
	if err != nil {
		return err
	}
	policy := ""
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:"); ok {
			policy = v
			break
		}
	}
	if policy == "noeviction" || policy == "" {
		s.policyMu.Lock()
		s.policyLogged = ""
		s.policyMu.Unlock()
		return nil
	}
	pe := &policyError{policy: policy}
	s.policyMu.Lock()
	first := s.policyLogged != policy
	s.policyLogged = policy
	s.policyMu.Unlock()
	if s.allowEv {
		if first {
			s.log.Error().Str("maxmemory_policy", policy).
				Msg("redis may evict the broker's keys and silently delete history; running anyway because redis.allow_eviction is set")
		}
		return nil
	}
	if first {
		s.log.Error().Err(pe).Msg("refusing to use this redis")
	}
	return pe
}

// op bounds one operation by the timeout.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if s.closed.Load() {
		return nil, nil, fmt.Errorf("%w: store closed", broker.ErrStoreUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	return ctx, cancel, nil
}

// fail wraps a Redis error: the caller's own cancellation stays what it
// is; everything else means Redis did not answer as it should.
func (s *Store) fail(parent context.Context, what string, err error) error {
	if parent.Err() != nil && errors.Is(err, context.Canceled) {
		return fmt.Errorf("redis %s: %w", what, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %s: %w", s.timeout, err)
	}
	return fmt.Errorf("%w: redis %s: %w", broker.ErrStoreUnavailable, what, err)
}

func (s *Store) seen(id uint64) {
	for {
		cur := s.maxSeen.Load()
		if id <= cur || s.maxSeen.CompareAndSwap(cur, id) {
			return
		}
	}
}

func (s *Store) floor() string {
	if id := s.maxSeen.Load(); id > 0 {
		return redisID(id)
	}
	return ""
}

// Create makes an empty stream.
func (s *Store) Create(parent context.Context, stream string) error {
	ctx, cancel, err := s.op(parent)
	if err != nil {
		return err
	}
	defer cancel()
	k := keysOf(stream)
	res, err := scriptCreate.Run(ctx, s.rdb, []string{k.meta, keyStreams},
		stream, s.opts.MaxStreams, s.idleTTLMS).Text()
	if err != nil {
		return s.fail(parent, "create", err)
	}
	switch res {
	case "toomany":
		return s.tooMany()
	case "created":
		s.log.Info().Str("stream", stream).Msg("stream created")
	}
	return nil
}

func (s *Store) tooMany() error {
	return fmt.Errorf("%w: the store holds its maximum of %d", broker.ErrTooManyStreams, s.opts.MaxStreams)
}

// Publish stores msgs as one frame.
func (s *Store) Publish(ctx context.Context, stream string, msgs []broker.Message, key string) (broker.PublishResult, error) {
	return s.write(ctx, stream, msgs, key, false)
}

// CloseStream publishes the stop event and closes the stream.
func (s *Store) CloseStream(ctx context.Context, stream, data string) (broker.PublishResult, error) {
	return s.write(ctx, stream, []broker.Message{{Name: broker.EventStop, Data: data}}, "", true)
}

func (s *Store) write(parent context.Context, stream string, msgs []broker.Message, key string, final bool) (broker.PublishResult, error) {
	if len(msgs) == 0 {
		return broker.PublishResult{}, fmt.Errorf("%w: a publish needs at least one event", broker.ErrInvalidEvent)
	}
	ctx, cancel, err := s.op(parent)
	if err != nil {
		return broker.PublishResult{}, err
	}
	defer cancel()
	k := keysOf(stream)
	flag := "0"
	if final {
		flag = "1"
	}
	args := make([]any, 0, 10+2*len(msgs))
	args = append(args, stream, s.channel, s.opts.MaxStreams, s.opts.MaxEvents, s.maxAgeMS, s.idleTTLMS,
		s.floor(), key, flag, len(msgs))
	for _, m := range msgs {
		name := m.Name
		if name == "" {
			name = broker.EventMessage
		}
		args = append(args, name, m.Data)
	}
	res, err := scriptPublish.Run(ctx, s.rdb, []string{k.meta, k.x, k.idem, k.order, keyStreams, keyHW}, args...).Slice()
	what := "publish"
	if final {
		what = "close"
	}
	if err != nil {
		return broker.PublishResult{}, s.fail(parent, what, err)
	}
	status, _ := res[0].(string)
	switch status {
	case "ok":
		ids, err := s.parseIDs(res[2:])
		if err != nil {
			return broker.PublishResult{}, s.fail(parent, what, err)
		}
		if created, _ := res[1].(int64); created == 1 {
			s.log.Info().Str("stream", stream).Msg("stream created")
		}
		return broker.PublishResult{IDs: ids}, nil
	case "replay":
		text, _ := res[1].(string)
		words := strings.Fields(text)
		raw := make([]any, len(words))
		for i, w := range words {
			raw[i] = w
		}
		ids, err := s.parseIDs(raw)
		if err != nil {
			return broker.PublishResult{}, s.fail(parent, what, err)
		}
		return broker.PublishResult{IDs: ids, Replayed: true}, nil
	case "closed":
		if final {
			return broker.PublishResult{}, fmt.Errorf("%w: %q is already closed", broker.ErrStreamClosed, stream)
		}
		return broker.PublishResult{}, fmt.Errorf("%w: %q got its stop event", broker.ErrStreamClosed, stream)
	case "toomany":
		return broker.PublishResult{}, s.tooMany()
	}
	return broker.PublishResult{}, s.fail(parent, what, fmt.Errorf("unexpected answer %v", res))
}

func (s *Store) parseIDs(raw []any) ([]uint64, error) {
	ids := make([]uint64, len(raw))
	for i, r := range raw {
		text, _ := r.(string)
		id, err := parseRedisID(text)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	if len(ids) > 0 {
		s.seen(ids[len(ids)-1])
	}
	return ids, nil
}

// snapshot is the answer of scriptRead.
type snapshot struct {
	exists            bool
	created           time.Time
	closed            bool
	stop, last, first uint64
	retained          int
	gap               bool
	entries           []any
	// hw is sseb:hw at the read: every id a deleted stream issued is at or
	// below it, and the first id of a new life above it.
	hw uint64
}

// snapshot reads stream; renewMS > 0 also renews its TTL to that (see
// scriptRead).
func (s *Store) snapshot(parent context.Context, stream string, after uint64, limit int, renewMS int64, what string) (snapshot, error) {
	ctx, cancel, err := s.op(parent)
	if err != nil {
		return snapshot{}, err
	}
	defer cancel()
	k := keysOf(stream)
	afterArg := ""
	if after > 0 {
		afterArg = redisID(after)
	}
	res, err := scriptRead.Run(ctx, s.rdb, []string{k.meta, k.x, k.idem, k.order, keyHW, keyStreams},
		s.maxAgeMS, afterArg, limit, renewMS, stream).Slice()
	if err != nil {
		return snapshot{}, s.fail(parent, what, err)
	}
	str := func(i int) string { v, _ := res[i].(string); return v }
	optID := func(i int) (uint64, error) {
		if str(i) == "" {
			return 0, nil
		}
		return parseRedisID(str(i))
	}
	var sn snapshot
	if n, _ := res[0].(int64); n == 0 { // no such stream
		if sn.hw, err = optID(1); err != nil {
			return snapshot{}, s.fail(parent, what, err)
		}
		return sn, nil
	}
	if len(res) != 10 {
		return snapshot{}, s.fail(parent, what, fmt.Errorf("unexpected answer of %d elements", len(res)))
	}
	sn.exists = true
	created, _ := strconv.ParseInt(str(1), 10, 64)
	sn.created = time.UnixMilli(created).UTC()
	sn.closed = str(2) == "1"
	for _, f := range [...]struct {
		i  int
		id *uint64
	}{{3, &sn.stop}, {4, &sn.last}, {5, &sn.first}, {9, &sn.hw}} {
		if *f.id, err = optID(f.i); err != nil {
			return snapshot{}, s.fail(parent, what, err)
		}
	}
	n, _ := res[6].(int64)
	sn.retained = int(n)
	g, _ := res[7].(int64)
	sn.gap = g == 1
	sn.entries, _ = res[8].([]any)
	return sn, nil
}

// Read returns a snapshot of retained events after the given id.
func (s *Store) Read(ctx context.Context, stream string, after uint64, limit int) (broker.ReadResult, error) {
	s.watch(stream)
	if limit < 0 {
		limit = 0
	}
	// A subscription is registered with the hub before its read: the read
	// renews the stream's TTL as the janitor does for watched streams, so
	// that one close to its idle expiry does not expire under the new
	// subscriber before the janitor's next round.
	var renewMS int64
	if s.fan.Subscribers(stream) > 0 {
		renewMS = s.renewMS()
	}
	sn, err := s.snapshot(ctx, stream, after, limit, renewMS, "read")
	if err != nil {
		return broker.ReadResult{}, err
	}
	// A frame of a deleted life of the stream that this node's feed
	// delivers late must be dropped, not sent: when this life has issued
	// nothing yet (the stream is missing, or was created empty), the
	// subscription starts above sseb:hw.
	last := sn.last
	if last == 0 {
		last = sn.hw
	}
	if !sn.exists {
		return broker.ReadResult{Gap: after > 0, LastID: last}, nil
	}
	events := make([]broker.Event, 0, len(sn.entries))
	for _, e := range sn.entries {
		ev, err := parseEntry(e)
		if err != nil {
			return broker.ReadResult{}, s.fail(ctx, "read", err)
		}
		events = append(events, ev)
	}
	if len(events) > 0 {
		events = broker.EncodeFrame(stream, events, false).Events
	} else {
		events = nil
	}
	return broker.ReadResult{
		Exists: true, Events: events, Gap: sn.gap,
		FirstID: sn.first, LastID: last, Closed: sn.closed, StopID: sn.stop,
	}, nil
}

// parseEntry decodes one XRANGE entry: [id, [field, value, ...]].
func parseEntry(e any) (broker.Event, error) {
	pair, _ := e.([]any)
	if len(pair) != 2 {
		return broker.Event{}, fmt.Errorf("bad stream entry %v", e)
	}
	idText, _ := pair[0].(string)
	id, err := parseRedisID(idText)
	if err != nil {
		return broker.Event{}, err
	}
	ev := broker.Event{ID: id, Name: broker.EventMessage, Time: idTime(id)}
	fields, _ := pair[1].([]any)
	for i := 0; i+1 < len(fields); i += 2 {
		f, _ := fields[i].(string)
		v, _ := fields[i+1].(string)
		switch f {
		case "n":
			ev.Name = v
		case "d":
			ev.Data = v
		}
	}
	return ev, nil
}

// Info describes a stream.
func (s *Store) Info(ctx context.Context, stream string) (broker.StreamInfo, error) {
	sn, err := s.snapshot(ctx, stream, 0, -1, 0, "info")
	if err != nil {
		return broker.StreamInfo{}, err
	}
	if !sn.exists {
		return broker.StreamInfo{}, fmt.Errorf("%w: %q", broker.ErrStreamNotFound, stream)
	}
	return broker.StreamInfo{
		Stream: stream, FirstID: sn.first, LastID: sn.last, Retained: sn.retained,
		Closed: sn.closed, CreatedAt: sn.created,
	}, nil
}

// Delete removes a stream and ends its subscriptions on every node.
func (s *Store) Delete(parent context.Context, stream string) error {
	ctx, cancel, err := s.op(parent)
	if err != nil {
		return err
	}
	defer cancel()
	k := keysOf(stream)
	n, err := scriptDelete.Run(ctx, s.rdb, []string{k.meta, k.x, k.idem, k.order, keyStreams, keyHW}, stream, s.channel).Int64()
	if err != nil {
		return s.fail(parent, "delete", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q", broker.ErrStreamNotFound, stream)
	}
	// The delete notice reaches every node through the feed; ending the
	// local subscriptions now as well makes Delete return after they ended.
	s.fan.End(stream)
	return nil // logged by the API with the request's id, as in the other stores
}

// Ping reports whether Redis answers and this node's event feed is
// subscribed (without it, local subscribers would miss live events).
func (s *Store) Ping(parent context.Context) error {
	ctx, cancel, err := s.op(parent)
	if err != nil {
		return err
	}
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return s.fail(parent, "ping", err)
	}
	if !s.feedUp.Load() {
		return fmt.Errorf("%w: the redis event feed is not subscribed", broker.ErrStoreUnavailable)
	}
	return nil
}

// Len is the number of streams, counted in Redis at most once a second.
// Expired streams count until a janitor forgets them.
func (s *Store) Len() int {
	s.lenMu.Lock()
	defer s.lenMu.Unlock()
	if time.Since(s.lenAt) < time.Second || s.closed.Load() {
		return s.lenN
	}
	ctx, cancel := context.WithTimeout(s.ctx, min(s.timeout, 500*time.Millisecond))
	defer cancel()
	if n, err := s.rdb.ZCard(ctx, keyStreams).Result(); err == nil {
		s.lenN = int(n)
	}
	s.lenAt = time.Now()
	return s.lenN
}

// Close stops the feed and the janitor and closes the connections.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.cancel()
	s.psMu.Lock()
	if s.ps != nil {
		_ = s.ps.Close()
	}
	s.psMu.Unlock()
	s.wg.Wait()
	s.feedUp.Store(false)
	return s.rdb.Close()
}

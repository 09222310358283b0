package broker

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// Store keeps streams: it assigns event ids, holds bounded history and
// hands every stored event to this node's Fanout. The memory store
// (pkg/broker/memory) is the reference implementation; every
// implementation must pass pkg/broker/storetest.
//
// The contract every implementation keeps:
//
//   - Ids. Every event gets an id greater than every id the stream had
//     before, and no two events of one stream id ever share an id: not
//     across nodes, restarts, store resets, or a delete followed by a new
//     stream of the same name. Ids are not contiguous; clients only compare
//     them.
//
//   - Epochs. A store that can lose its state (the memory store on restart,
//     a flushed Redis) starts a new epoch: its id counter restarts above
//     every id of the previous epoch (see IDClock). A resume point from an
//     older epoch is not an id the stream issued, so Read reports a gap for
//     it instead of silently skipping or repeating events.
//
//   - Atomicity and order. For one stream, assigning ids, appending to
//     history and handing the frame to Fanout.Deliver happen as one step:
//     frames reach Deliver in id order, each once per node (a shared
//     store may instead tell the Hub of a frame of a stream with no
//     subscriber on the node, Hub.Passed), and an event is readable
//     through Read before its frame reaches Deliver. (The
//     Broker relies on that last point: it registers a subscriber before it
//     reads history, so every event is either in the backlog or in the
//     queue, never in neither; duplicates are dropped by id.) Publishing to
//     different streams is independent.
//
//   - Acknowledgement. Publish returns only once the events are stored as
//     the store promises (memory: in memory; durable stores: on disk) and
//     handed to fan-out. All events of one call are stored, or none.
//
//   - Bounds. History is trimmed by count and age; the stop event of a
//     closed stream is kept until the stream expires, so a late subscriber
//     always learns that the stream ended. Streams idle (no publish, no
//     subscriber on this node) longer than the idle TTL are deleted; the
//     time counts from the last publish or from when the last subscriber
//     left, whichever is later (see StoreOptions.IdleSince), so a stream
//     read long after its last publish survives its reader's reconnect.
//
//   - Idempotency. A Publish with a key already used on the stream, while
//     any event of that first publish is still retained, stores nothing and
//     returns the first publish's ids with Replayed set.
//
// Errors are the sentinels of this package (ErrStreamClosed,
// ErrStreamNotFound, ErrTooManyStreams, ErrStoreUnavailable), wrapped.
type Store interface {
	// Create makes an empty stream.
	Create(ctx context.Context, stream string) error
	// Publish stores msgs (already validated) as events of stream, creating
	// the stream if needed. key is the Idempotency-Key or "".
	Publish(ctx context.Context, stream string, msgs []Message, key string) (PublishResult, error)
	// CloseStream publishes the stop event with data and marks the stream
	// closed, creating it if needed.
	CloseStream(ctx context.Context, stream string, data string) (PublishResult, error)
	// Read returns retained events with ids above after (0: from the
	// oldest), at most limit of them (0: all). When it reports a gap, the
	// events are every retained one from the oldest, whatever after is.
	Read(ctx context.Context, stream string, after uint64, limit int) (ReadResult, error)
	// Info describes a stream; ErrStreamNotFound if it does not exist.
	Info(ctx context.Context, stream string) (StreamInfo, error)
	// Delete removes a stream and its history and ends its subscriptions
	// (Fanout.End); ErrStreamNotFound if it does not exist.
	Delete(ctx context.Context, stream string) error
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	// Len is the number of streams, as cheaply as the store can tell.
	Len() int
	// Close releases the store. Calls after Close fail.
	Close() error
}

// Fanout receives what a Store stores, for this node's subscribers. The
// Hub implements it. Its methods never block on a subscriber.
type Fanout interface {
	// Deliver hands a stored frame to the stream's subscribers.
	Deliver(f *Frame)
	// End ends every subscription of a stream that was deleted or expired.
	End(stream string)
	// EndAll ends every subscription on this node, so that clients resume
	// from history. A shared store calls it when it may have missed events
	// (its event feed dropped), the bolt store when a commit failed after
	// reaching the file (what it holds was not delivered): a resume is
	// exact, a guess is not.
	EndAll()
	// Subscribers is the number of subscriptions to stream on this node;
	// a store does not expire a stream that has any.
	Subscribers(stream string) int
}

// PublishResult is the answer to a publish or close.
type PublishResult struct {
	IDs []uint64
	// Replayed is set when an Idempotency-Key matched an earlier publish
	// and nothing was stored.
	Replayed bool
}

// ReadResult is a consistent snapshot of a stream.
type ReadResult struct {
	// Exists is false for a stream that does not exist (yet, or any more).
	Exists bool
	Events []Event
	// Gap is set when after > 0 and the events right after it are not all
	// retained, or after is not an id this stream issued.
	Gap bool
	// FirstID is the oldest retained id, 0 when nothing is retained.
	FirstID uint64
	// LastID is the newest id the stream issued, 0 for none. For a stream
	// that does not exist or has issued nothing yet, a store whose frames
	// can reach Fanout late (a shared store's feed) sets it at or above
	// every id an earlier life of the stream issued, so that a
	// subscription drops such a frame.
	LastID uint64
	// Closed is set once the stream got its stop event, whose id is StopID.
	Closed bool
	StopID uint64
}

// StreamInfo describes a stream.
type StreamInfo struct {
	Stream    string
	FirstID   uint64 // 0: nothing retained
	LastID    uint64 // 0: nothing published
	Retained  int
	Closed    bool
	CreatedAt time.Time
}

// StoreOptions bound what a store holds; every store takes them.
type StoreOptions struct {
	MaxEvents  int           // retained events per stream
	MaxAge     time.Duration // retained events are younger than this
	IdleTTL    time.Duration // streams idle longer than this are deleted
	MaxStreams int           // streams held at once
	// Logger gets one line per stream lifecycle event (created, expired),
	// and the store's own: opening, and the failures it rides out (a
	// janitor error, a commit that failed, the Redis feed lost).
	Logger zerolog.Logger
}

// SweepInterval is how often a store's janitor frees aged events and idle
// streams. Reads and publishes trim on their own, so the sweep only bounds
// how long memory stays held: a quarter of the shorter bound, within
// [50ms, 30s], keeps the overshoot small without busy work.
func (o StoreOptions) SweepInterval() time.Duration {
	return min(max(min(o.MaxAge, o.IdleTTL)/4, 50*time.Millisecond), 30*time.Second)
}

// IdleSince is when a stream became idle: its last publish, or the moment
// its last subscriber may have left, whichever is later. A store sees
// subscribers when its sweep runs and when a subscription being set up
// reads (the subscriber is registered by then), so a subscriber seen at lastWatched
// (zero: never) may have stayed until the next sweep; counting from then
// keeps a stream for at least the idle TTL after its last subscriber left,
// and a client that reconnects (EventSource waits retry: first) finds the
// stream and its history still there.
func (o StoreOptions) IdleSince(lastPublish, lastWatched time.Time) time.Time {
	if lastWatched.IsZero() {
		return lastPublish
	}
	return later(lastPublish, lastWatched.Add(o.SweepInterval()))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// RunJanitor calls sweep every interval until stop is closed, then closes
// done. Stores run it in a goroutine of their own and stop it in Close.
func RunJanitor(every time.Duration, stop <-chan struct{}, done chan<- struct{}, sweep func(now time.Time)) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			sweep(now)
		}
	}
}

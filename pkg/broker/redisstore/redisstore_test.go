package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/internal/redistest"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/storetest"
)

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	defer c.Close()
	storetest.Run(t, func(t *testing.T, o broker.StoreOptions, fan broker.Fanout) broker.Store {
		if err := c.FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		s, err := New(context.Background(), Options{URL: srv.URL}, o, fan)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// node is one broker node over a shared Redis.
type node struct {
	store  *Store
	hub    *broker.Hub
	broker *broker.Broker
}

func newNode(t *testing.T, url string, o broker.StoreOptions, timeout time.Duration) *node {
	t.Helper()
	hub := broker.NewHub(1000, 1000)
	s, err := New(context.Background(), Options{URL: url, Timeout: timeout}, storetest.Defaults(o), hub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &node{store: s, hub: hub, broker: broker.New(s, hub)}
}

func msgs(data ...string) []broker.Message {
	out := make([]broker.Message, len(data))
	for i, d := range data {
		out[i] = broker.Message{Name: broker.EventMessage, Data: d}
	}
	return out
}

func (n *node) publish(t *testing.T, stream string, data ...string) []uint64 {
	t.Helper()
	res, err := n.store.Publish(context.Background(), stream, msgs(data...), "")
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return res.IDs
}

func (n *node) read(t *testing.T, stream string, after uint64) broker.ReadResult {
	t.Helper()
	rr, err := n.store.Read(context.Background(), stream, after, 0)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return rr
}

func ids(events []broker.Event) []uint64 {
	out := make([]uint64, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// collector drains a subscription in the background and records the ids
// it would send and why it ended.
type collector struct {
	mu     sync.Mutex
	ids    []uint64
	reason broker.EndReason
	done   chan struct{}
}

func collect(t *testing.T, n *node, stream string, after uint64) *collector {
	t.Helper()
	sub, err := n.broker.Subscribe(context.Background(), stream, after)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	c := &collector{ids: ids(sub.Backlog), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer sub.Close()
		for {
			<-sub.Ready()
			reason, _ := sub.Drain(func(wire []byte, _ int, _ time.Time) error {
				c.mu.Lock()
				defer c.mu.Unlock()
				for line := range strings.SplitSeq(string(wire), "\n") {
					if v, ok := strings.CutPrefix(line, "id: "); ok {
						id, _ := strconv.ParseUint(v, 10, 64)
						c.ids = append(c.ids, id)
					}
				}
				return nil
			})
			if reason != broker.EndNone {
				c.mu.Lock()
				c.reason = reason
				c.mu.Unlock()
				return
			}
		}
	}()
	return c
}

func (c *collector) waitIDs(t *testing.T, n int) []uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := slices.Clone(c.ids)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber got %d ids, want %d", len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ended reports whether the subscription has ended.
func (c *collector) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *collector) waitEnd(t *testing.T) broker.EndReason {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		t.Fatal("subscription did not end")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

func waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two nodes share streams: same ids in the same order on both, resume on
// B with an id from A, idempotency keys across nodes, delete ends
// subscribers everywhere.
func TestTwoNodes(t *testing.T) {
	srv := redistest.Start(t)
	a := newNode(t, srv.URL, broker.StoreOptions{MaxEvents: 10000}, 0)
	b := newNode(t, srv.URL, broker.StoreOptions{MaxEvents: 10000}, 0)
	onA := collect(t, a, "s", 0)
	onB := collect(t, b, "s", 0)

	var (
		mu        sync.Mutex
		published []uint64
		wg        sync.WaitGroup
	)
	for p := range 8 {
		n := a
		if p%2 == 1 {
			n = b
		}
		wg.Go(func() {
			for i := range 40 {
				res, err := n.store.Publish(context.Background(), "s", msgs(fmt.Sprint(p, i), "x"), "")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				published = append(published, res.IDs...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(published)
	gotA, gotB := onA.waitIDs(t, len(published)), onB.waitIDs(t, len(published))
	if !slices.Equal(gotA, published) || !slices.Equal(gotB, published) {
		t.Fatalf("subscribers differ from the published ids (%d on A, %d on B, %d published)", len(gotA), len(gotB), len(published))
	}

	// Resume on B with an id issued through A.
	resA := a.publish(t, "s", "from A 1", "from A 2")
	resB := b.publish(t, "s", "from B")
	rr := b.read(t, "s", resA[0])
	if rr.Gap || !slices.Equal(ids(rr.Events), []uint64{resA[1], resB[0]}) {
		t.Fatalf("resume on B after A's id: gap %v ids %v", rr.Gap, ids(rr.Events))
	}
	late := collect(t, b, "s", resA[1])
	if got := late.waitIDs(t, 1); !slices.Equal(got, resB) {
		t.Fatalf("subscribe on B after A's id: %v", got)
	}

	// An Idempotency-Key used on A replays on B.
	first, err := a.store.Publish(context.Background(), "s", msgs("once"), "key-1")
	if err != nil || first.Replayed {
		t.Fatal(first, err)
	}
	again, err := b.store.Publish(context.Background(), "s", msgs("once"), "key-1")
	if err != nil || !again.Replayed || !slices.Equal(again.IDs, first.IDs) {
		t.Fatalf("retry on B: %+v %v", again, err)
	}

	// Close on B: the stop event ends subscribers on both nodes.
	stop, err := b.store.CloseStream(context.Background(), "s", "bye")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*collector{onA, onB, late} {
		if r := c.waitEnd(t); r != broker.EndStopped {
			t.Fatalf("after close: %v", r)
		}
		if got := c.waitIDs(t, 1); got[len(got)-1] != stop.IDs[0] {
			t.Fatalf("last id %d, want the stop %d", got[len(got)-1], stop.IDs[0])
		}
	}

	// Delete on A ends a subscriber on B.
	b.publish(t, "d", "x")
	onB2 := collect(t, b, "d", 0)
	onB2.waitIDs(t, 1)
	if err := a.store.Delete(context.Background(), "d"); err != nil {
		t.Fatal(err)
	}
	if r := onB2.waitEnd(t); r != broker.EndDeleted {
		t.Fatalf("after delete on A: %v", r)
	}
}

// A node's activity figures count the publishes of every node, also to
// streams it has no subscriber of, whose feed frames it does not decode.
func TestActivityCountsEveryNodesPublishes(t *testing.T) {
	srv := redistest.Start(t)
	a := newNode(t, srv.URL, broker.StoreOptions{}, 0)
	b := newNode(t, srv.URL, broker.StoreOptions{}, 0)
	watched := collect(t, b, "watched", 0)
	a.publish(t, "quiet", "1", "2")
	quietLast := a.publish(t, "quiet", "3")[0]
	watched.waitIDs(t, len(a.publish(t, "watched", "w")))

	var quiet broker.StreamActivity
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, st := range b.hub.Activity(10).Streams {
			if st.Stream == "quiet" {
				quiet = st
			}
		}
		if quiet.LastID == quietLast {
			break
		}
	}
	if quiet.Published != 3 || quiet.Delivered != 0 || quiet.LastID != quietLast {
		t.Fatalf("node B's view of a stream only node A published to: %+v, want 3 published, last id %d", quiet, quietLast)
	}
}

// Subscribers join on both nodes, with resume points issued by either
// node, while both nodes publish: each gets exactly the events after its
// resume point, in order, up to the stop event.
func TestResumeWhilePublishing(t *testing.T) {
	srv := redistest.Start(t)
	a := newNode(t, srv.URL, broker.StoreOptions{MaxEvents: 100000}, 0)
	b := newNode(t, srv.URL, broker.StoreOptions{MaxEvents: 100000}, 0)
	var (
		mu        sync.Mutex
		published []uint64
		wg        sync.WaitGroup
	)
	for p, n := range []*node{a, b, a, b} {
		wg.Go(func() {
			for i := range 60 {
				res, err := n.store.Publish(context.Background(), "s", msgs(fmt.Sprint(p, i), "x"), "")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				published = append(published, res.IDs...)
				mu.Unlock()
			}
		})
	}
	type joined struct {
		after uint64
		c     *collector
	}
	var subs []joined
	for i := range 24 {
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		var after uint64
		if len(published) > 0 && i%3 != 0 {
			after = published[(i*7)%len(published)]
		}
		mu.Unlock()
		n := a
		if i%2 == 1 {
			n = b
		}
		subs = append(subs, joined{after, collect(t, n, "s", after)})
	}
	wg.Wait()
	stop, err := a.store.CloseStream(context.Background(), "s", "")
	if err != nil {
		t.Fatal(err)
	}
	all := append(slices.Sorted(slices.Values(published)), stop.IDs...)
	for i, j := range subs {
		if r := j.c.waitEnd(t); r != broker.EndStopped {
			t.Fatalf("subscriber %d ended: %v", i, r)
		}
		want := all
		if j.after > 0 {
			k, _ := slices.BinarySearch(all, j.after)
			want = all[k+1:]
		}
		if got := j.c.waitIDs(t, len(want)); !slices.Equal(got, want) {
			t.Fatalf("subscriber %d after %d: got %d ids, want %d", i, j.after, len(got), len(want))
		}
	}
}

// Redis goes away and comes back (empty): publishes fail fast with
// ErrStoreUnavailable, local subscribers are ended, and the same Store
// serves again afterwards with ids above the old ones.
func TestOutage(t *testing.T) {
	srv := redistest.Start(t)
	n := newNode(t, srv.URL, broker.StoreOptions{}, time.Second)
	old := n.publish(t, "s", "before")
	sub := collect(t, n, "s", 0)
	sub.waitIDs(t, 1)

	srv.Stop(t)
	start := time.Now()
	_, err := n.store.Publish(context.Background(), "s", msgs("during"), "")
	if !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("publish while redis is down: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("publish took %s with a 1s timeout", d)
	}
	if err := n.store.Ping(context.Background()); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("ping while redis is down: %v", err)
	}
	if _, err := n.store.Read(context.Background(), "s", 0, 0); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("read while redis is down: %v", err)
	}
	// The subscriber stays while Redis is down (up to 15 timeouts): nothing
	// can be published, and its reconnect would meet 503 (EventSource
	// would give up for good).
	time.Sleep(3 * time.Second) // several failed feed attempts
	if sub.ended() {
		t.Fatal("subscriber ended while Redis was down")
	}

	srv.Restart(t)
	// The restored feed ends it, to resume from history.
	if r := sub.waitEnd(t); r != broker.EndResync {
		t.Fatalf("subscriber after the feed came back: %v", r)
	}
	waitFor(t, "ping after restart", 15*time.Second, func() bool { return n.store.Ping(context.Background()) == nil })
	fresh := n.publish(t, "s", "after")
	if fresh[0] <= old[0] {
		t.Fatalf("id after restart %d not above %d", fresh[0], old[0])
	}
	rr := n.read(t, "s", old[0])
	if !rr.Gap || !slices.Equal(ids(rr.Events), fresh) {
		t.Fatalf("old resume point after restart: %+v", rr)
	}
	// Live delivery works again.
	again := collect(t, n, "s", fresh[0])
	more := n.publish(t, "s", "live")
	if got := again.waitIDs(t, 1); !slices.Equal(got, more) {
		t.Fatalf("live after restart: %v", got)
	}
}

// Past the grace (15 timeouts) without Redis, subscribers are ended all
// the same: this node may be the only one cut off, while others publish.
func TestLongOutageEndsSubscribers(t *testing.T) {
	srv := redistest.Start(t)
	n := newNode(t, srv.URL, broker.StoreOptions{}, 200*time.Millisecond) // grace 3 s
	n.publish(t, "s", "before")
	sub := collect(t, n, "s", 0)
	sub.waitIDs(t, 1)
	srv.Stop(t)
	start := time.Now()
	if r := sub.waitEnd(t); r != broker.EndResync {
		t.Fatalf("subscriber after a long outage: %v", r)
	}
	if waited := time.Since(start); waited < 2*time.Second {
		t.Fatalf("subscriber ended %v into the outage, within the 3 s grace", waited)
	}
}

// A Redis that comes back without the newest entries of a stream (a
// failover to a replica that missed them, a restore from an older file)
// while its clock is not past them must not issue one of their ids again:
// a client resuming from that id would skip the new event with no gap.
// The clock cannot be set back here, so the test builds the same state: an
// entry a minute ahead of the clock, the next event acknowledged above it,
// then that event removed as the failover would have lost it.
func TestLostTailDoesNotReissueAnAcknowledgedID(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	defer c.Close()
	n := newNode(t, srv.URL, broker.StoreOptions{}, 0)
	ctx := context.Background()
	n.publish(t, "s", "e1")
	k := keysOf("s")
	ahead := strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10) + "-0"
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: k.x, ID: ahead, Values: []string{"n", "message", "d", "ahead"}}).Err(); err != nil {
		t.Fatal(err)
	}
	c.HSet(ctx, k.meta, "last", ahead)
	acked := n.publish(t, "s", "e2, acknowledged")[0]

	// The failover: e2 is gone, the key's top is back at the entry ahead.
	if err := c.XDel(ctx, k.x, redisID(acked)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "XSETID", k.x, ahead).Err(); err != nil {
		t.Fatal(err)
	}
	c.HSet(ctx, k.meta, "last", ahead)

	next := n.publish(t, "s", "e3", "e4")
	if next[0] <= acked || next[1] <= next[0] {
		t.Fatalf("ids %v after %d was acknowledged", next, acked)
	}
	// e2 is lost for good, and a client that had it is told so (it no
	// longer knows the resume point: a gap, then every retained event).
	rr := n.read(t, "s", acked)
	if got := ids(rr.Events); !rr.Gap || len(got) < 2 || !slices.Equal(got[len(got)-2:], next) {
		t.Fatalf("resume after the acknowledged id: gap %v, ids %v; want a gap, then ... %v", rr.Gap, got, next)
	}
}

// While Redis's clock is behind the ids already issued (the floor of what
// a node saw, or a key's own top), new ids follow them in their
// millisecond. A broker id has 23 bits of sequence: past the last one the
// id must carry into the next millisecond, as broker.IDClock does. Redis
// would count on within the millisecond, storing an entry whose id no
// node can convert: the publish answered 503 although stored, the stream
// unreadable, every node's feed broken, until the clock caught up.
func TestSequenceCarriesIntoTheNextMillisecond(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	defer c.Close()
	ctx := context.Background()
	const lastSeq = 1<<broker.SequenceBits - 1
	aheadMs := time.Now().Add(time.Minute).UnixMilli()
	ahead := broker.EpochFloor(time.UnixMilli(aheadMs))
	check := func(t *testing.T, n *node, stream string, got, want []uint64) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("ids %v, want %v", got, want)
		}
		rr := n.read(t, stream, 0)
		if all := ids(rr.Events); !slices.Equal(all[len(all)-len(want):], want) {
			t.Fatalf("read back %v, want it to end with %v", all, want)
		}
	}

	t.Run("after the floor a node saw", func(t *testing.T) {
		n := newNode(t, srv.URL, broker.StoreOptions{}, 0)
		n.store.seen(ahead | (lastSeq - 1))
		got := n.publish(t, "new", "e1", "e2", "e3")
		next := ahead + 1<<broker.SequenceBits
		check(t, n, "new", got, []uint64{ahead | lastSeq, next, next + 1})
	})

	t.Run("after the key's own top", func(t *testing.T) {
		n := newNode(t, srv.URL, broker.StoreOptions{}, 0)
		n.publish(t, "old", "e0")
		k := keysOf("old")
		top := strconv.FormatInt(aheadMs, 10) + "-" + strconv.Itoa(lastSeq)
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: k.x, ID: top, Values: []string{"n", "message", "d", "top"}}).Err(); err != nil {
			t.Fatal(err)
		}
		c.HSet(ctx, k.meta, "last", top)
		got := n.publish(t, "old", "e1", "e2")
		next := ahead + 1<<broker.SequenceBits
		check(t, n, "old", got, []uint64{next, next + 1})
	})
}

// A Redis that hangs (stopped process: connections open, no answers):
// every operation still returns within the timeout, and the feed notices
// the silence.
func TestHungRedis(t *testing.T) {
	srv := redistest.Start(t)
	n := newNode(t, srv.URL, broker.StoreOptions{}, 500*time.Millisecond)
	n.publish(t, "s", "x")
	sub := collect(t, n, "s", 0)
	sub.waitIDs(t, 1)
	c := srv.Client(t)
	defer c.Close()
	info, err := c.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if pid == 0 {
		t.Fatal("no process_id in INFO server")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer resume()

	start := time.Now()
	_, err = n.store.Publish(context.Background(), "s", msgs("y"), "")
	if !errors.Is(err, broker.ErrStoreUnavailable) || time.Since(start) > 5*time.Second {
		t.Fatalf("publish to a hung redis: %v after %s", err, time.Since(start))
	}
	start = time.Now()
	if err := n.store.Ping(context.Background()); !errors.Is(err, broker.ErrStoreUnavailable) || time.Since(start) > 5*time.Second {
		t.Fatalf("ping of a hung redis: %v after %s", err, time.Since(start))
	}
	// The feed notices the silence; the subscriber stays while Redis
	// does not answer, and resumes from history once it does.
	waitFor(t, "the feed to notice", 10*time.Second, func() bool { return n.store.Ping(context.Background()) != nil })
	time.Sleep(2 * time.Second) // within the grace: 15 timeouts, 7.5 s
	if sub.ended() {
		t.Fatal("subscriber ended while Redis was hung")
	}
	resume()
	if r := sub.waitEnd(t); r != broker.EndResync {
		t.Fatalf("subscriber once the hung feed came back: %v", r)
	}
	waitFor(t, "ping after SIGCONT", 15*time.Second, func() bool { return n.store.Ping(context.Background()) == nil })
	n.publish(t, "s", "z")
}

// A broker that starts while Redis is down starts anyway and serves once
// Redis answers.
func TestStartWithoutRedis(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop(t)
	start := time.Now()
	n := newNode(t, srv.URL, broker.StoreOptions{}, 500*time.Millisecond)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("New took %s", d)
	}
	if err := n.store.Ping(context.Background()); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("ping: %v", err)
	}
	if _, err := n.store.Publish(context.Background(), "s", msgs("x"), ""); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("publish: %v", err)
	}
	srv.Restart(t)
	waitFor(t, "ping after redis started", 15*time.Second, func() bool { return n.store.Ping(context.Background()) == nil })
	sub := collect(t, n, "s", 0)
	got := n.publish(t, "s", "x")
	if ids := sub.waitIDs(t, 1); !slices.Equal(ids, got) {
		t.Fatalf("delivered %v, published %v", ids, got)
	}
}

// The feed connection is killed while Redis stays up: subscribers are
// ended so they resume, and the feed comes back by itself.
func TestFeedDropEndsSubscribers(t *testing.T) {
	srv := redistest.Start(t)
	n := newNode(t, srv.URL, broker.StoreOptions{}, time.Second)
	n.publish(t, "s", "x")
	sub := collect(t, n, "s", 0)
	sub.waitIDs(t, 1)
	c := srv.Client(t)
	defer c.Close()
	if err := c.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if r := sub.waitEnd(t); r != broker.EndResync {
		t.Fatalf("subscriber after the feed dropped: %v", r)
	}
	waitFor(t, "feed back", 10*time.Second, func() bool { return n.store.Ping(context.Background()) == nil })
	again := collect(t, n, "s", 0)
	again.waitIDs(t, 1)
	more := n.publish(t, "s", "y")
	if got := again.waitIDs(t, 2); got[1] != more[0] {
		t.Fatalf("after the feed came back: %v", got)
	}
}

// holding forwards to a Hub, but holds every frame of stream "busy" until
// gate closes, and says on in when it starts to.
type holding struct {
	*broker.Hub
	in, gate chan struct{}
}

func (h holding) Deliver(f *broker.Frame) {
	if f.Stream == "busy" {
		close(h.in)
		<-h.gate
	}
	h.Hub.Deliver(f)
}

// go-redis subscribes a feed connection again on its own when a command
// on it fails (here the feed's ping, whose deadline passed, while the
// receiver is busy handing a frame on): frames published before the new
// subscription never reach this node, and what the receiver reads next is
// the subscription's confirmation, not an error. The feed must count that
// as lost and start over, which ends the local subscribers so that they
// resume from history.
func TestFeedSubscribedAgainBehindItsBackEndsSubscribers(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	hub := broker.NewHub(100, 100)
	fan := holding{hub, make(chan struct{}), make(chan struct{})}
	s, err := New(ctx, Options{URL: srv.URL}, storetest.Defaults(broker.StoreOptions{}), fan)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	n := &node{store: s, hub: hub, broker: broker.New(s, hub)}
	n.publish(t, "s", "before")
	sub := collect(t, n, "s", 0)
	sub.waitIDs(t, 1)

	n.publish(t, "busy", "x")
	<-fan.in // the receiver is handing it on, not reading
	s.psMu.Lock()
	ps := s.ps
	s.psMu.Unlock()
	late, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if err := ps.Ping(late); err == nil {
		t.Fatal("a ping past its deadline went through")
	}
	n.publish(t, "s", "meanwhile")
	close(fan.gate)
	if r := sub.waitEnd(t); r != broker.EndResync {
		t.Fatalf("subscriber after the feed was subscribed again: %v", r)
	}
}

// FLUSHALL under a running broker: ids keep increasing, old resume points
// get a gap.
func TestFlushAll(t *testing.T) {
	srv := redistest.Start(t)
	n := newNode(t, srv.URL, broker.StoreOptions{}, 0)
	old := n.publish(t, "s", "a", "b")
	c := srv.Client(t)
	defer c.Close()
	if err := c.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if rr := n.read(t, "s", old[1]); rr.Exists || !rr.Gap {
		t.Fatalf("after flush: %+v", rr)
	}
	fresh := n.publish(t, "s", "c")
	if fresh[0] <= old[1] {
		t.Fatalf("id after flush %d not above %d", fresh[0], old[1])
	}
	for _, after := range old {
		if rr := n.read(t, "s", after); !rr.Gap || !slices.Equal(ids(rr.Events), fresh) {
			t.Fatalf("resume at %d after flush: %+v", after, rr)
		}
	}
}

// A node's ids stay above every id its feed showed it, not only its own:
// after a FLUSHALL (or a failover that lost the tail) the ids another node
// acknowledged, which this node's subscribers may have and resume from,
// are not issued again. The clock cannot be set back here, so the ids
// acknowledged are a minute ahead of it (as in
// TestLostTailDoesNotReissueAnAcknowledgedID); node B has no subscriber of
// the stream, so its feed only walks the frames.
func TestIDsStayAboveWhatTheFeedShowed(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	defer c.Close()
	ctx := context.Background()
	a := newNode(t, srv.URL, broker.StoreOptions{}, 0)
	b := newNode(t, srv.URL, broker.StoreOptions{}, 0)
	a.publish(t, "s", "e1")
	k := keysOf("s")
	ahead := strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10) + "-0"
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: k.x, ID: ahead, Values: []string{"n", "message", "d", "ahead"}}).Err(); err != nil {
		t.Fatal(err)
	}
	c.HSet(ctx, k.meta, "last", ahead)
	acked := a.publish(t, "s", "e2, acknowledged")[0]
	waitFor(t, "node B's feed shows the acknowledged id", 10*time.Second, func() bool {
		for _, st := range b.broker.Activity(10).Streams {
			if st.Stream == "s" && st.LastID == acked {
				return true
			}
		}
		return false
	})
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if next := b.publish(t, "s", "e3")[0]; next <= acked {
		t.Fatalf("node B issued %d after node A acknowledged %d", next, acked)
	}
}

// A stream deleted and published again at once never reuses an id, even
// within one millisecond of Redis's clock.
func TestDeleteAndRepublishAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	a := newNode(t, srv.URL, broker.StoreOptions{}, 0)
	b := newNode(t, srv.URL, broker.StoreOptions{}, 0)
	var last uint64
	for i := range 50 {
		res := a.publish(t, "s", "x", "y", "z")
		if res[0] <= last {
			t.Fatalf("round %d: id %d not above %d", i, res[0], last)
		}
		last = res[2]
		if err := a.store.Delete(context.Background(), "s"); err != nil {
			t.Fatal(err)
		}
		// The other node has not necessarily seen these ids yet.
		res = b.publish(t, "s", "w")
		if res[0] <= last {
			t.Fatalf("round %d on B: id %d not above %d", i, res[0], last)
		}
		last = res[0]
		if err := b.store.Delete(context.Background(), "s"); err != nil {
			t.Fatal(err)
		}
	}
}

// lagging forwards to a Hub, but holds back every frame of stream "busy"
// until gate closes, and the frames after it with it: a node whose event
// feed runs behind (a big frame, a GC pause, a busy CPU).
type lagging struct {
	*broker.Hub
	gate chan struct{}
}

func (l lagging) Deliver(f *broker.Frame) {
	if f.Stream == "busy" {
		<-l.gate
	}
	l.Hub.Deliver(f)
}

// A client that subscribes, on a node whose feed lags, to a stream just
// deleted on another node (and maybe created again, empty) never gets an
// event of the deleted life when the feed catches up: it subscribed to a
// stream with nothing in it.
func TestLateFrameOfADeletedStreamIsDropped(t *testing.T) {
	t.Run("deleted", func(t *testing.T) { testLateFrameOfADeletedStream(t, false) })
	t.Run("deleted and created again", func(t *testing.T) { testLateFrameOfADeletedStream(t, true) })
}

func testLateFrameOfADeletedStream(t *testing.T, recreate bool) {
	srv := redistest.Start(t)
	ctx := context.Background()
	hubA := broker.NewHub(100, 100)
	fanA := lagging{hubA, make(chan struct{})}
	a, err := New(ctx, Options{URL: srv.URL}, storetest.Defaults(broker.StoreOptions{}), fanA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	b := newNode(t, srv.URL, broker.StoreOptions{}, 0)

	b.publish(t, "busy", "x")     // node A's feed is stuck on this one
	b.publish(t, "s", "old life") // and this waits behind it
	if err := b.store.Delete(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if recreate {
		if err := b.store.Create(ctx, "s"); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := broker.New(a, hubA).Subscribe(ctx, "s", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if sub.Gap || len(sub.Backlog) != 0 {
		t.Fatalf("subscribe after the delete: gap %v, backlog %d", sub.Gap, len(sub.Backlog))
	}
	close(fanA.gate) // the feed catches up: the old frame, then the delete
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		reason, err := sub.Drain(func(wire []byte, _ int, _ time.Time) error {
			got = append(got, string(wire))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if reason != broker.EndNone {
			break // the delete ended the subscription: everything before it was drained
		}
		if time.Now().After(deadline) {
			t.Fatal("the delete never reached the subscription")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) > 0 {
		t.Fatalf("got an event of the deleted life: %q", got)
	}
}

func TestEvictionPolicy(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory-policy", "allkeys-lru")
	_, err := New(context.Background(), Options{URL: srv.URL}, storetest.Defaults(broker.StoreOptions{}), broker.NewHub(10, 10))
	if err == nil || !strings.Contains(err.Error(), "maxmemory-policy") || !strings.Contains(err.Error(), "allkeys-lru") {
		t.Fatalf("New with allkeys-lru: %v", err)
	}
	var logs syncBuffer
	o := storetest.Defaults(broker.StoreOptions{Logger: zerolog.New(&logs)})
	s, err := New(context.Background(), Options{URL: srv.URL, AllowEviction: true}, o, broker.NewHub(10, 10))
	if err != nil {
		t.Fatalf("New with AllowEviction: %v", err)
	}
	defer s.Close()
	if _, err := s.Publish(context.Background(), "s", msgs("x"), ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), "allkeys-lru") {
		t.Fatalf("no error logged: %s", logs.String())
	}
}

// A Redis that starts evicting later (here: reachable only after New) is
// refused on connection: the store is not ready, and says why.
func TestEvictionPolicyCheckedOnConnect(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory-policy", "volatile-lru")
	srv.Stop(t)
	n := newNode(t, srv.URL, broker.StoreOptions{}, 500*time.Millisecond)
	srv.Restart(t)
	time.Sleep(300 * time.Millisecond)
	err := n.store.Ping(context.Background())
	if !errors.Is(err, broker.ErrStoreUnavailable) || !strings.Contains(err.Error(), "maxmemory-policy") {
		t.Fatalf("ping against an evicting redis: %v", err)
	}
}

// A Redis that answers but refuses the broker's configuration (a database
// number it does not have, a wrong or missing password) is a bad
// configuration, which stops the broker at start (SPEC), unlike a Redis
// that does not answer: waiting would not make it serve.
func TestRefusedConfigurationStopsNew(t *testing.T) {
	plain := redistest.Start(t)
	locked := redistest.Start(t, "--requirepass", "right")
	lockedURL := func(password string) string {
		return "redis://:" + password + "@" + locked.Addr + "/0"
	}
	c := plain.Client(t)
	defer c.Close()
	if err := c.Do(context.Background(), "ACL", "SETUSER", "noping", "on", ">pw", "~*", "&*", "+@all", "-ping").Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, url, want string
	}{
		{"database out of range", strings.TrimSuffix(plain.URL, "/0") + "/99", "DB index"},
		{"wrong password", lockedURL("wrong"), "WRONGPASS"},
		{"no password", locked.URL, "NOAUTH"},
		{"a user without the right to PING", "redis://noping:pw@" + plain.Addr + "/0", "NOPERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			opts := storetest.Defaults(broker.StoreOptions{Logger: zerolog.New(&logs)})
			s, err := New(context.Background(), Options{URL: tc.url, Timeout: time.Second}, opts, broker.NewHub(10, 10))
			if err == nil {
				_ = s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "wrong@") {
				t.Fatalf("error %q, want one that says %q (and no password)", err, tc.want)
			}
			// The refusal is the one thing said: not a policy that
			// could not be read on the way.
			if strings.Contains(logs.String(), "maxmemory-policy") {
				t.Fatalf("logged about the eviction policy:\n%s", logs.String())
			}
		})
	}
	// The right password opens it.
	s, err := New(context.Background(), Options{URL: lockedURL("right"), Timeout: time.Second}, storetest.Defaults(broker.StoreOptions{}), broker.NewHub(10, 10))
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
}

// A user whose ACL leaves out INFO (as -@dangerous does) is not a refused
// configuration: the eviction policy cannot be checked then, which is
// logged as a warning, and the broker starts and serves. (Only a refusal
// of the connection itself, a password or a database number, or of what
// the broker runs, stops it; see TestRefusedConfigurationStopsNew.)
func TestUserWithoutINFOStarts(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	defer c.Close()
	if err := c.Do(context.Background(), "ACL", "SETUSER", "broker", "on", ">pw", "~*", "&*", "+@all", "-@dangerous").Err(); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	hub := broker.NewHub(10, 10)
	o := storetest.Defaults(broker.StoreOptions{Logger: zerolog.New(&logs)})
	s, err := New(context.Background(), Options{URL: "redis://broker:pw@" + srv.Addr + "/0", Timeout: time.Second}, o, hub)
	if err != nil {
		t.Fatalf("New for a user without INFO: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "cannot read redis's maxmemory-policy") {
		t.Fatalf("no warning that the policy cannot be checked:\n%s", logs.String())
	}
	n := &node{store: s, hub: hub, broker: broker.New(s, hub)}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	first := n.publish(t, "s", "a")
	sub := collect(t, n, "s", 0)
	more := n.publish(t, "s", "b")
	if got := sub.waitIDs(t, 2); !slices.Equal(got, append(first, more...)) {
		t.Fatalf("delivered %v, published %v then %v", got, first, more)
	}
}

func TestAgeBound(t *testing.T) {
	srv := redistest.Start(t)
	n := newNode(t, srv.URL, broker.StoreOptions{MaxAge: 300 * time.Millisecond}, 0)
	a := n.publish(t, "s", "a")
	time.Sleep(200 * time.Millisecond)
	b := n.publish(t, "s", "b")
	waitFor(t, "a aged out", 5*time.Second, func() bool {
		return len(n.read(t, "s", 0).Events) == 1
	})
	rr := n.read(t, "s", a[0])
	if rr.Gap || !slices.Equal(ids(rr.Events), b) {
		if len(rr.Events) == 0 {
			t.Skip("b aged out too before the check (slow machine)")
		}
		t.Fatalf("resume at a after it aged out: gap %v %v", rr.Gap, ids(rr.Events))
	}
	waitFor(t, "b aged out", 5*time.Second, func() bool {
		return len(n.read(t, "s", 0).Events) == 0
	})
	if rr := n.read(t, "s", a[0]); !rr.Gap || rr.FirstID != 0 || rr.LastID != b[0] {
		t.Fatalf("resume at a after b aged out: %+v", rr)
	}
	if rr := n.read(t, "s", b[0]); rr.Gap {
		t.Fatal("resume at the last id reported a gap")
	}

	// The stop event outlives the age bound.
	n.publish(t, "c", "x")
	stop, err := n.store.CloseStream(context.Background(), "c", "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	rr = n.read(t, "c", 0)
	if !rr.Closed || !slices.Equal(ids(rr.Events), stop.IDs) {
		t.Fatalf("closed stream after the age bound: %+v", rr)
	}

	// The janitor trims without any read or publish.
	n.publish(t, "j", "1", "2", "3")
	c := srv.Client(t)
	defer c.Close()
	waitFor(t, "janitor trimmed j", 10*time.Second, func() bool {
		return c.XLen(context.Background(), keysOf("j").x).Val() == 0
	})
}

func TestIdleExpiry(t *testing.T) {
	srv := redistest.Start(t)
	var logs syncBuffer
	o := broker.StoreOptions{IdleTTL: 400 * time.Millisecond, Logger: zerolog.New(&logs)}
	a := newNode(t, srv.URL, o, 0)
	b := newNode(t, srv.URL, o, 0)
	a.publish(t, "idle", "x")
	a.publish(t, "watched", "x")
	sub := collect(t, b, "watched", 0) // a subscriber on the other node
	sub.waitIDs(t, 1)
	waitFor(t, "idle expired", 10*time.Second, func() bool {
		_, err := a.store.Info(context.Background(), "idle")
		return errors.Is(err, broker.ErrStreamNotFound)
	})
	time.Sleep(time.Second) // several TTLs
	if _, err := a.store.Info(context.Background(), "watched"); err != nil {
		t.Fatalf("stream with a subscriber expired: %v", err)
	}
	// While watched, the keys are renewed for more than the idle TTL: a
	// subscriber that leaves right before a renewal would have come still
	// leaves the stream the whole idle TTL.
	rdb := srv.Client(t)
	defer rdb.Close()
	waitFor(t, "a renewal beyond the idle TTL", 10*time.Second, func() bool {
		return rdb.PTTL(context.Background(), keysOf("watched").meta).Val() > o.IdleTTL
	})
	waitFor(t, "expiry logged and counted", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "stream expired") && a.store.Len() == 1
	})
	// The subscriber leaves: the stream expires too.
	b.hub.EndAll()
	sub.waitEnd(t)
	waitFor(t, "watched expired", 10*time.Second, func() bool {
		_, err := a.store.Info(context.Background(), "watched")
		return errors.Is(err, broker.ErrStreamNotFound)
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Idempotency keys are forgotten with their events, so they are bounded.
func TestIdempotencyKeysBounded(t *testing.T) {
	srv := redistest.Start(t)
	n := newNode(t, srv.URL, broker.StoreOptions{MaxEvents: 3}, 0)
	ctx := context.Background()
	for i := range 20 {
		if _, err := n.store.Publish(ctx, "s", msgs("x"), fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	c := srv.Client(t)
	defer c.Close()
	k := keysOf("s")
	if h, l := c.HLen(ctx, k.idem).Val(), c.LLen(ctx, k.order).Val(); h != 3 || l != 3 {
		t.Fatalf("%d keys and %d order entries held, want 3", h, l)
	}
	if res, _ := n.store.Publish(ctx, "s", msgs("x"), "k0"); res.Replayed {
		t.Fatal("key remembered after its event left history")
	}
	if res, _ := n.store.Publish(ctx, "s", msgs("x"), "k19"); !res.Replayed {
		t.Fatal("retained key forgotten")
	}
}

func TestClosedStore(t *testing.T) {
	srv := redistest.Start(t)
	n := newNode(t, srv.URL, broker.StoreOptions{}, 0)
	_ = n.store.Close()
	if _, err := n.store.Publish(context.Background(), "s", msgs("x"), ""); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("publish: %v", err)
	}
	if err := n.store.Ping(context.Background()); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("ping: %v", err)
	}
}

func TestIDConversion(t *testing.T) {
	for _, s := range []string{"1735689600000-0", "1735689600000-1", "1767225600123-8388607", "3934712855551-5"} {
		id, err := parseRedisID(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if back := redisID(id); back != s {
			t.Fatalf("%s → %d → %s", s, id, back)
		}
	}
	if id, _ := parseRedisID("1735689600001-3"); id != 1<<broker.SequenceBits|3 {
		t.Fatalf("id %d", id)
	}
	for _, s := range []string{"1735689599999-0", "1735689600000-8388608", "x-1", "12", "3934712855552-0"} {
		if _, err := parseRedisID(s); err == nil {
			t.Fatalf("%s accepted", s)
		}
	}
	// Ids follow the same clock as broker.IDClock.
	now := time.Now()
	ms := now.UnixMilli()
	id, err := parseRedisID(fmt.Sprintf("%d-0", ms))
	if err != nil || id != broker.EpochFloor(now) || !idTime(id).Equal(time.UnixMilli(ms)) {
		t.Fatalf("id %d, floor %d, %v", id, broker.EpochFloor(now), err)
	}
}

func TestFeedCodec(t *testing.T) {
	p := "F1" + "3:a:b" + "1735689600001-0 7:message" + "4:x\ny:" + "1735689600001-1 4:stop" + "0:"
	f, err := decodeFrame(p, nil)
	if err != nil || f.stream != "a:b" || !f.final || f.count != 2 || len(f.events) != 2 {
		t.Fatalf("%+v %v", f, err)
	}
	if f.events[0].Data != "x\ny:" || f.events[0].Name != "message" || f.events[1].Name != "stop" || f.events[1].Data != "" ||
		f.events[1].ID != f.events[0].ID+1 || f.lastID != f.events[1].ID {
		t.Fatalf("%+v", f)
	}
	unwanted := func(string) bool { return false }
	if f, err := decodeFrame(p, unwanted); err != nil || f.events != nil || f.count != 2 || f.stream != "a:b" ||
		f.lastID != 1<<broker.SequenceBits|1 {
		t.Fatalf("not wanted: %+v %v", f, err)
	}
	for _, bad := range []string{"F", "F2", "F05:ab", "F01:a", "F01:a1735689600001-0 7:messag", "F01:a1735689600001-0 1:m9:x"} {
		if _, err := decodeFrame(bad, nil); err == nil {
			t.Fatalf("%q accepted", bad)
		}
		if _, err := decodeFrame(bad, unwanted); err == nil {
			t.Fatalf("%q accepted when not wanted", bad)
		}
	}
}

// The URL forms config.ParseStore accepts mean the same to go-redis.
func TestURLs(t *testing.T) {
	for _, u := range []string{"redis://cache:6380/2", "redis://cache", "redis://cache:6379/", "redis://[::1]:6379/0", "redis://u:pw@cache:6379/1"} {
		spec, err := config.ParseStore(u)
		if err != nil {
			t.Fatal(err)
		}
		o, err := redisOptions(u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if o.Addr != spec.Addr || o.DB != spec.DB || o.Username != spec.Username || o.Password != spec.Password {
			t.Fatalf("%s: go-redis %s/%d %s, config %+v", u, o.Addr, o.DB, o.Username, spec)
		}
	}
	if _, err := New(context.Background(), Options{URL: "redis://u:secret@host:notaport/x"}, storetest.Defaults(broker.StoreOptions{}), broker.NewHub(1, 1)); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("bad URL: %v", err)
	}
}

// A subscriber keeps its stream alive from the moment it subscribes: a
// stream about to expire is renewed by the subscribe itself (the janitor's
// next round may be 30 s away), and a publish does not cut the renewal
// back to the bare idle TTL.
func TestSubscribersKeepTheirStreamAlive(t *testing.T) {
	srv := redistest.Start(t)
	o := broker.StoreOptions{IdleTTL: time.Hour} // the janitor ticks every 30 s: not during this test
	a := newNode(t, srv.URL, o, 0)
	b := newNode(t, srv.URL, o, 0)
	rdb := srv.Client(t)
	defer rdb.Close()
	ctx := context.Background()
	pttl := func() time.Duration { return rdb.PTTL(ctx, keysOf("s").meta).Val() }

	a.publish(t, "s", "x")
	k := keysOf("s")
	for _, key := range []string{k.meta, k.x, k.idem, k.order} {
		rdb.PExpire(ctx, key, 500*time.Millisecond) // about to expire
	}
	sub := collect(t, b, "s", 0)
	sub.waitIDs(t, 1)
	if got := pttl(); got <= o.IdleTTL {
		t.Fatalf("TTL after a subscribe %v, want more than the idle TTL %v", got, o.IdleTTL)
	}
	time.Sleep(time.Second)
	if _, err := a.store.Info(ctx, "s"); err != nil {
		t.Fatalf("a stream with a subscriber expired: %v", err)
	}

	a.publish(t, "s", "y")
	if got := pttl(); got <= o.IdleTTL {
		t.Fatalf("TTL after a publish %v: the publish cut back the subscriber's renewal", got)
	}
	if got := sub.waitIDs(t, 2); len(got) != 2 {
		t.Fatalf("ids %v", got)
	}
}

// While this node's event feed cannot subscribe (here: its Redis user may
// not use pub/sub channels; Redis answers everything else), a subscriber
// gets its backlog, is ended at the feed's next attempt, and catches up
// from history each time it comes back; once the feed is back, events
// arrive live again. Nothing is missed meanwhile.
func TestSubscribersCatchUpWhileTheFeedIsDown(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	defer c.Close()
	ctx := context.Background()
	if err := c.Do(ctx, "ACL", "SETUSER", "nochan", "on", ">pw", "~*", "+@all", "resetchannels").Err(); err != nil {
		t.Fatal(err)
	}
	a := newNode(t, srv.URL, broker.StoreOptions{}, time.Second) // publishes
	b := newNode(t, strings.Replace(srv.URL, "redis://", "redis://nochan:pw@", 1), broker.StoreOptions{}, time.Second)
	if err := b.store.Ping(ctx); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("ping with the feed down: %v", err)
	}
	x := a.publish(t, "s", "x")
	sub := collect(t, b, "s", 0)
	sub.waitIDs(t, 1)
	y := a.publish(t, "s", "y")
	if r := sub.waitEnd(t); r != broker.EndResync {
		t.Fatalf("subscriber while the feed is down ended with %v, want a resync", r)
	}
	back := collect(t, b, "s", x[0]) // as EventSource does after retry:
	if got := back.waitIDs(t, 1); got[0] != y[0] {
		t.Fatalf("resumed after x: %v, want y %v", got, y)
	}

	if err := c.Do(ctx, "ACL", "SETUSER", "nochan", "&*").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "feed back", 10*time.Second, func() bool { return b.store.Ping(ctx) == nil })
	live := collect(t, b, "s", y[0])
	z := a.publish(t, "s", "z")
	if got := live.waitIDs(t, 1); got[0] != z[0] {
		t.Fatalf("live after the feed came back: %v, want z %v", got, z)
	}
}

// An age bound longer than the time since 1970 ("keep forever") keeps
// everything instead of failing every publish and read.
// A read trims by age itself, not only the janitor: with an age bound of
// an hour the janitor sweeps every 30 s, and an event two hours old that
// it has not swept yet is not served, and resuming before it is a gap.
func TestReadTrimsByAge(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	defer c.Close()
	n := newNode(t, srv.URL, broker.StoreOptions{MaxAge: time.Hour}, 0)
	ctx := context.Background()
	if err := n.store.Create(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	// An event stored two hours ago, as its id says (Redis's clock).
	old := uint64(time.Now().Add(-2*time.Hour).UnixMilli()-idBaseMillis) << broker.SequenceBits
	k := keysOf("s")
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: k.x, ID: redisID(old), Values: []any{"n", "message", "d", "old"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, k.meta, "last", redisID(old)).Err(); err != nil {
		t.Fatal(err)
	}
	if rr := n.read(t, "s", 0); len(rr.Events) != 0 || rr.FirstID != 0 {
		t.Fatalf("an event two hours old under a one-hour bound was read: %+v", rr)
	}
	if rr := n.read(t, "s", old-1); !rr.Gap {
		t.Fatalf("resuming before an event aged out: %+v, want a gap", rr)
	}
}

func TestAgeBoundBeyondTheEpoch(t *testing.T) {
	srv := redistest.Start(t)
	n := newNode(t, srv.URL, broker.StoreOptions{MaxAge: 100 * 365 * 24 * time.Hour}, 0)
	first := n.publish(t, "s", "a")
	n.publish(t, "s", "b")
	if rr := n.read(t, "s", first[0]); rr.Gap || len(rr.Events) != 1 {
		t.Fatalf("read: %+v", rr)
	}
}

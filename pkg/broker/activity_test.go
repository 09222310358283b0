package broker

import (
	"fmt"
	"testing"
	"time"
)

// fakeClock is the tracker's clock in these tests; it moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func noSubscribers(string) int               { return 0 }
func newTestActivity(c *fakeClock) *activity {
	return newActivity(c.now, 10*time.Minute, 100, noSubscribers)
}
func framesOf(stream string, n int, last uint64) *Frame {
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = last - uint64(n-1-i)
	}
	return frame(stream, ids...)
}

// find returns stream's entry in r, failing the test if it is missing.
func find(t *testing.T, r ActivityReport, stream string) StreamActivity {
	t.Helper()
	for _, s := range r.Streams {
		if s.Stream == stream {
			return s
		}
	}
	t.Fatalf("stream %q not in the report %+v", stream, r.Streams)
	return StreamActivity{}
}

// Rates are the events of the one-second buckets of the last
// ActivityWindow (the current second included), divided by its length.
func TestActivityCountsAndRates(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 500_000_000)}
	a := newTestActivity(c)

	a.record(framesOf("s", 3, 3), 2) // second 1000: 3 events to 2 subscribers
	c.advance(4 * time.Second)
	a.record(framesOf("s", 2, 5), 1) // second 1004: 2 events to 1 subscriber
	lastAt := c.t

	steps := []struct {
		at       int64 // Unix second of the snapshot
		pub, del float64
	}{
		{1004, 0.5, 0.8}, // (3+2)/10, (6+2)/10
		{1009, 0.5, 0.8}, // the window (999, 1009] still holds second 1000
		{1010, 0.2, 0.2}, // (1000, 1010]: only second 1004
		{1013, 0.2, 0.2},
		{1014, 0, 0}, // (1004, 1014]: nothing
		{1100, 0, 0},
	}
	for _, st := range steps {
		c.t = time.Unix(st.at, 0)
		r := a.snapshot(10)
		s := find(t, r, "s")
		if s.PublishRate != st.pub || s.DeliveryRate != st.del {
			t.Errorf("at second %d: rates %v/s published, %v/s delivered; want %v, %v", st.at, s.PublishRate, s.DeliveryRate, st.pub, st.del)
		}
		if r.PublishRate != st.pub || r.DeliveryRate != st.del {
			t.Errorf("at second %d: node rates %v, %v; want %v, %v", st.at, r.PublishRate, r.DeliveryRate, st.pub, st.del)
		}
		if s.Published != 5 || s.Delivered != 8 || s.LastID != 5 || !s.LastActive.Equal(lastAt) {
			t.Errorf("at second %d: %+v, want 5 published, 8 delivered, last id 5, last active %v", st.at, s, lastAt)
		}
	}
}

// A bucket is emptied when its second comes round again, whether the
// stream was idle for part of a window or for more than one.
func TestActivityBucketsAreReused(t *testing.T) {
	c := &fakeClock{t: time.Unix(1003, 0)}
	a := newTestActivity(c)
	a.record(framesOf("s", 4, 4), 0) // second 1003
	c.t = time.Unix(1013, 0)         // same bucket, one window later
	a.record(framesOf("s", 1, 5), 0)
	if s := find(t, a.snapshot(10), "s"); s.PublishRate != 0.1 {
		t.Fatalf("rate %v, want 0.1: the bucket of second 1003 was not emptied", s.PublishRate)
	}
	c.t = time.Unix(1050, 0) // several windows later
	a.record(framesOf("s", 2, 7), 0)
	if s := find(t, a.snapshot(10), "s"); s.PublishRate != 0.2 || s.Published != 7 {
		t.Fatalf("rate %v, published %d; want 0.2 and 7", s.PublishRate, s.Published)
	}
}

// The report lists the busiest first, at most limit of them, with this
// node's subscriber counts; the node's rates cover every stream.
func TestActivitySnapshotOrderAndLimit(t *testing.T) {
	c := &fakeClock{t: time.Unix(5000, 0)}
	a := newTestActivity(c)
	for i, n := range []int{1, 5, 3} { // quiet, busy, medium
		a.record(framesOf(fmt.Sprintf("s%d", i), n, uint64(10*(i+1))), 0)
	}
	c.advance(time.Second)
	a.watch("waiting") // subscribers, no publish
	subs := map[string]int{"s1": 4, "waiting": 2}
	a.subscribers = func(s string) int { return subs[s] }
	r := a.snapshot(2)
	if r.Tracked != 4 || len(r.Streams) != 2 {
		t.Fatalf("tracked %d, listed %d; want 4 and 2", r.Tracked, len(r.Streams))
	}
	if r.Streams[0].Stream != "s1" || r.Streams[1].Stream != "s2" {
		t.Fatalf("order %q, %q; want s1 (5 events) then s2 (3)", r.Streams[0].Stream, r.Streams[1].Stream)
	}
	if r.Streams[0].Subscribers != 4 || r.Streams[0].LastID != 20 {
		t.Fatalf("s1: %+v, want 4 subscribers and last id 20", r.Streams[0])
	}
	if r.PublishRate != 0.9 {
		t.Fatalf("node publish rate %v, want 0.9", r.PublishRate)
	}
	if !r.Since.Equal(time.Unix(5000, 0)) {
		t.Fatalf("since %v", r.Since)
	}
	if w := find(t, a.snapshot(100), "waiting"); w.Subscribers != 2 || w.LastID != 0 || w.Published != 0 {
		t.Fatalf("waiting: %+v", w)
	}

	// Once the window has passed, the most recently active come first,
	// then by name.
	c.advance(ActivityWindow)
	r = a.snapshot(100)
	var order []string
	for _, s := range r.Streams {
		order = append(order, s.Stream)
	}
	if fmt.Sprint(order) != "[waiting s0 s1 s2]" {
		t.Fatalf("order %v, want [waiting s0 s1 s2]", order)
	}
}

// Streams idle past the TTL are forgotten unless they have subscribers on
// this node; a stream that comes back is tracked afresh.
func TestActivityForgetsIdleStreams(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	a := newTestActivity(c)
	a.record(framesOf("idle", 1, 1), 0)
	a.record(framesOf("watched", 1, 1), 1)
	c.advance(6 * time.Minute)
	a.record(framesOf("recent", 1, 1), 0)
	c.advance(4*time.Minute + time.Second) // idle and watched: 10 min 1 s ago

	a.subscribers = func(s string) int {
		if s == "watched" {
			return 1
		}
		return 0
	}
	r := a.snapshot(10)
	if r.Tracked != 2 || len(r.Streams) != 2 {
		t.Fatalf("tracked %d: %+v; want watched and recent", r.Tracked, r.Streams)
	}
	find(t, r, "watched")
	find(t, r, "recent")
	if _, ok := a.streams["idle"]; ok {
		t.Fatal("the idle stream is still held")
	}

	a.record(framesOf("idle", 1, 9), 0)
	if s := find(t, a.snapshot(10), "idle"); s.Published != 1 || s.LastID != 9 {
		t.Fatalf("idle came back as %+v, want 1 event, last id 9", s)
	}
}

// An entry active after the snapshot read it is not forgotten.
func TestActivityForgetKeepsAStreamActiveMeanwhile(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	a := newTestActivity(c)
	a.record(framesOf("s", 1, 1), 0)
	read := c.t
	c.advance(time.Second)
	a.watch("s")
	if a.forget("s", read) {
		t.Fatal("forgot a stream that was active after the read")
	}
	if !a.forget("s", c.t) || len(a.streams) != 0 {
		t.Fatal("did not forget an unchanged entry")
	}
}

// At the bound, a new stream drops the least recently active tenth.
func TestActivityIsBounded(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	a := newTestActivity(c) // at most 100
	for i := range 1000 {
		c.advance(time.Millisecond)
		a.record(framesOf(fmt.Sprintf("s%d", i), 1, 1), 0)
		if len(a.streams) > 100 {
			t.Fatalf("%d streams held after %d new ones", len(a.streams), i+1)
		}
	}
	for i := 990; i < 1000; i++ { // the newest are all there
		if _, ok := a.streams[fmt.Sprintf("s%d", i)]; !ok {
			t.Fatalf("s%d, among the newest, was dropped", i)
		}
	}
	if _, ok := a.streams["s0"]; ok {
		t.Fatal("s0, the oldest, is still held")
	}
	if r := a.snapshot(1000); r.Tracked != len(a.streams) || len(r.Streams) != r.Tracked {
		t.Fatalf("tracked %d, listed %d, held %d", r.Tracked, len(r.Streams), len(a.streams))
	}
}

// A tracked stream's frame is counted without allocating (the hub's
// delivery path stays allocation-free; see TestDeliverAndDrainDoNotAllocate).
func TestActivityRecordDoesNotAllocate(t *testing.T) {
	a := newActivity(time.Now, time.Minute, 10, noSubscribers)
	f := frame("s", 1, 2, 3)
	a.record(f, 1) // the entry is made once
	if allocs := testing.AllocsPerRun(1000, func() { a.record(f, 3) }); allocs != 0 {
		t.Fatalf("%v allocations per recorded frame", allocs)
	}
}

// The Hub counts every frame it is handed (also with no subscriber here),
// delivered events per subscriber that got the frame, and lists a stream
// that has subscribers but no frame yet.
func TestHubActivity(t *testing.T) {
	h := NewHub(10, 1)
	for range 3 {
		h.Register("busy")
	}
	h.Register("slow")
	h.Register("waiting")
	h.Deliver(frame("busy", 1, 2))
	h.Deliver(frame("nobody", 7))
	h.Deliver(frame("slow", 1))
	h.Deliver(frame("slow", 2)) // over the queue bound: cut off, not delivered

	r := h.Activity(10)
	want := map[string]StreamActivity{
		"busy":    {Subscribers: 3, Published: 2, Delivered: 6, LastID: 2},
		"nobody":  {Subscribers: 0, Published: 1, Delivered: 0, LastID: 7},
		"slow":    {Subscribers: 0, Published: 2, Delivered: 1, LastID: 2},
		"waiting": {Subscribers: 1, Published: 0, Delivered: 0, LastID: 0},
	}
	if r.Tracked != len(want) {
		t.Fatalf("tracked %d: %+v", r.Tracked, r.Streams)
	}
	for name, w := range want {
		g := find(t, r, name)
		if g.Subscribers != w.Subscribers || g.Published != w.Published || g.Delivered != w.Delivered || g.LastID != w.LastID {
			t.Errorf("%s: %+v, want %+v", name, g, w)
		}
	}
	if r.Streams[0].Stream != "busy" {
		t.Errorf("first %q, want busy", r.Streams[0].Stream)
	}
}

// At the bound, a stream with subscribers on this node is kept over those
// without, however long ago its last frame; and the node's rates count
// every frame, also those of the streams dropped since.
func TestActivityBoundKeepsWatchedStreamsAndNodeRates(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	subs := map[string]int{"watched": 3}
	a := newActivity(c.now, 10*time.Minute, 100, func(s string) int { return subs[s] })
	a.watch("watched")
	a.record(framesOf("watched", 1, 1), 3)
	for i := range 1000 {
		a.record(framesOf(fmt.Sprintf("s%d", i), 1, 1), 0)
		c.advance(time.Millisecond) // 1 s in all: within the rate window
	}
	if len(a.streams) > 100 {
		t.Fatalf("%d streams held, bound 100", len(a.streams))
	}
	r := a.snapshot(1000)
	if w := find(t, r, "watched"); w.Subscribers != 3 || w.Published != 1 {
		t.Errorf("watched: %+v", w)
	}
	// 1,001 events published and 3 delivered within the last 10 s.
	if r.PublishRate != 100.1 || r.DeliveryRate != 0.3 {
		t.Errorf("node rates %v/s published, %v/s delivered; want 100.1 and 0.3", r.PublishRate, r.DeliveryRate)
	}
}

// At the bound, streams without subscribers go first, and a drop runs once
// per tenth of the bound; with more streams watched than the bound, the
// least active of those go too: the tracker stays bounded.
func TestActivityBoundPrefersStreamsWithoutSubscribers(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	subs := map[string]int{}
	lookups := 0
	a := newActivity(c.now, 10*time.Minute, 100, func(s string) int { lookups++; return subs[s] })
	watch := func(name string) {
		subs[name] = 1
		a.watch(name)
	}
	for i := range 50 {
		watch(fmt.Sprintf("w%d", i))
	}
	lookups = 0
	const added = 2000
	for i := range added {
		c.advance(time.Millisecond)
		a.record(framesOf(fmt.Sprintf("s%d", i), 1, 1), 0)
	}
	for name := range subs {
		if _, ok := a.streams[name]; !ok {
			t.Fatalf("%s, with subscribers, dropped while others had none", name)
		}
	}
	if len(a.streams) > 100 {
		t.Fatalf("%d streams held, bound 100", len(a.streams))
	}
	// A drop looks up every tracked stream (100), once per 10 new streams.
	if lookups > added*20 {
		t.Errorf("%d subscriber look-ups for %d new streams (%d each)", lookups, added, lookups/added)
	}

	for i := range 200 { // more watched streams than the bound
		c.advance(time.Millisecond)
		watch(fmt.Sprintf("v%d", i))
	}
	if len(a.streams) > 100 {
		t.Fatalf("%d streams held with 250 watched, bound 100", len(a.streams))
	}
	if _, ok := a.streams["v199"]; !ok {
		t.Fatal("the most recently watched stream was dropped")
	}
}

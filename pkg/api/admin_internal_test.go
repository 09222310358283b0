package api

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Live pages share one snapshot a second: many viewers cost the store and
// the tracker what one does, and one viewer still gets a new one each
// second.
func TestAdminLiveViewersShareASnapshot(t *testing.T) {
	var a adminShared
	var mu sync.Mutex
	builds := 0
	build := func(context.Context) adminSnapshot {
		mu.Lock()
		builds++
		mu.Unlock()
		return adminSnapshot{Streams: []adminStream{}}
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { a.get(context.Background(), build) })
	}
	wg.Wait()
	if builds != 1 {
		t.Fatalf("%d snapshots made for 50 viewers at once, want 1", builds)
	}
	// One viewer asks once a second, a little less when making the
	// snapshot took time: it gets a new one each time.
	a.at = a.at.Add(-adminLiveInterval * 9 / 10)
	if a.get(context.Background(), build); builds != 2 {
		t.Fatalf("%d snapshots made after 0.9 s, want 2", builds)
	}
}

// A snapshot that takes long to make (a slow store: up to 100 Info calls)
// is still a new one at each of a single viewer's ticks: its age counts
// from when it was started, not finished.
func TestAdminLiveSlowSnapshotIsNewEachTick(t *testing.T) {
	var a adminShared
	builds := 0
	build := func(context.Context) adminSnapshot {
		builds++
		time.Sleep(300 * time.Millisecond)
		return adminSnapshot{Streams: []adminStream{}}
	}
	tick := time.Now()
	for i := range 3 {
		time.Sleep(time.Until(tick))
		a.get(context.Background(), build)
		if builds != i+1 {
			t.Fatalf("tick %d: %d snapshots made, want %d: the last one was re-sent", i+1, builds, i+1)
		}
		tick = tick.Add(adminLiveInterval * 6 / 10) // a viewer's tick, shortened
	}
}

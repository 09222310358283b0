package api

import (
	"context"
	"sync"
	"testing"
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

package broker_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// publishDuringRead is a store whose Read, once its snapshot is taken,
// lets one publish through before it returns: the moment a subscription
// being set up is most exposed.
type publishDuringRead struct {
	broker.Store
	once      sync.Once
	published uint64
}

func (s *publishDuringRead) Read(ctx context.Context, stream string, after uint64, limit int) (broker.ReadResult, error) {
	rr, err := s.Store.Read(ctx, stream, after, limit)
	s.once.Do(func() {
		res, perr := s.Store.Publish(ctx, stream, []broker.Message{{Data: "meanwhile"}}, "")
		if perr == nil {
			s.published = res.IDs[0]
		}
	})
	return rr, err
}

// An event published while a subscription reads history, after the
// snapshot, reaches that subscription: Subscribe registers the subscriber
// before it reads, so the event is in the live queue if not in the
// backlog. (Read first, and it would be in neither, lost without a gap.)
func TestEventPublishedDuringTheHistoryReadIsDelivered(t *testing.T) {
	hub := broker.NewHub(10, 64)
	mem := memory.New(broker.StoreOptions{MaxEvents: 100, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	defer mem.Close()
	store := &publishDuringRead{Store: mem}
	b := broker.New(store, hub)
	ctx := context.Background()
	before, err := b.Publish(ctx, "s", []broker.Message{{Data: "before"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe(ctx, "s", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if store.published == 0 {
		t.Fatal("the store published nothing during the read")
	}
	if len(sub.Backlog) != 1 || sub.Backlog[0].ID != before.IDs[0] {
		t.Fatalf("backlog %+v, want the event published before", sub.Backlog)
	}
	var wire strings.Builder
	if _, err := sub.Drain(func(b []byte, _ int, _ time.Time) error { wire.Write(b); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := "id: " + broker.FormatID(store.published) + "\ndata: meanwhile\n\n"; wire.String() != want {
		t.Fatalf("live after the backlog: %q, want %q", wire.String(), want)
	}
}

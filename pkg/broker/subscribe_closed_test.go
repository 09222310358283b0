package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// A subscription to a closed stream gets everything in its backlog and
// holds no place on the node, during or after: Subscribe registers before
// it reads, so it must unregister once the read says closed (the
// subscription has no live part whose Close would).
func TestSubscribeToAClosedStreamHoldsNoPlace(t *testing.T) {
	hub := broker.NewHub(1, 64)
	mem := memory.New(broker.StoreOptions{MaxEvents: 100, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	defer mem.Close()
	b := broker.New(mem, hub)
	ctx := context.Background()
	if _, err := b.Publish(ctx, "done", []broker.Message{{Data: "a"}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CloseStream(ctx, "done", ""); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		sub, err := b.Subscribe(ctx, "done", 0)
		if err != nil {
			t.Fatalf("subscription %d to the closed stream: %v", i, err)
		}
		if sub.Live() || len(sub.Backlog) != 2 {
			t.Fatalf("subscription %d: live %v, backlog %d events; want the 2 events and no live part", i, sub.Live(), len(sub.Backlog))
		}
		sub.Close()
	}
	if n := hub.Count(); n != 0 {
		t.Fatalf("%d subscribers counted after reading a closed stream, want 0", n)
	}
	live, err := b.Subscribe(ctx, "open", 0)
	if err != nil {
		t.Fatalf("the node's one place is taken: %v", err)
	}
	live.Close()
}

package ctxtime

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("a sleep that ran its course: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled context: got %v, want context.Canceled", err)
	}
	// Many times: were a zero wait a timer, its firing would race the
	// context in the select and win about half the time.
	for range 100 {
		if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
			t.Fatalf("no wait on a cancelled context: got %v, want context.Canceled", err)
		}
	}
	if time.Since(start) > time.Second {
		t.Fatal("a cancelled context did not cut the sleep short")
	}
}

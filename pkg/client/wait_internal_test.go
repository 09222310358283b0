package client

import (
	"testing"
	"time"
)

// The backoff of fruitless reconnects stops at maxReconnect, or at the
// server's retry: when that is longer; one fruitful connection resets it.
func TestReconnectWaitCeiling(t *testing.T) {
	within := func(got, want time.Duration) bool { return got >= want && got <= want*6/5 }
	s := &subscription{retry: 0}
	var last time.Duration
	for range 40 {
		last = s.reconnectWait()
	}
	if !within(last, maxReconnect) {
		t.Fatalf("after 40 fruitless connections: %v, want about %v", last, maxReconnect)
	}
	s = &subscription{retry: 2 * time.Minute}
	for range 40 {
		last = s.reconnectWait()
	}
	if !within(last, 2*time.Minute) {
		t.Fatalf("with retry: 2m: %v, want about 2m", last)
	}
	s.fruitless = 0 // an event arrived
	if w := s.reconnectWait(); !within(w, 2*time.Minute) {
		t.Fatalf("after an event: %v", w)
	}
}

package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/client"
)

// leakCheck returns a client with a transport of its own and a function
// that, at the end of the test's body, closes that transport's idle
// connections and fails the test when a goroutine started since is still
// there. The broker's heartbeat is short so that it lets go of a client
// that hung up quickly (it notices at the next heartbeat).
func leakCheck(t *testing.T) (*testbroker.Broker, *client.Client, func()) {
	t.Helper()
	b := testbroker.Start(t, testbroker.Options{Retry: 50 * time.Millisecond, Heartbeat: 100 * time.Millisecond})
	opts := goleak.IgnoreCurrent()
	tr := &http.Transport{}
	c := client.New(b.URL, client.WithHTTPClient(&http.Client{Transport: tr}))
	return b, c, func() {
		t.Helper()
		tr.CloseIdleConnections()
		goleak.VerifyNone(t, opts)
	}
}

func publishN(t *testing.T, c *client.Client, stream string, n int) []string {
	t.Helper()
	msgs := make([]client.Message, n)
	for i := range msgs {
		msgs[i] = client.Message{Data: fmt.Sprint(i)}
	}
	res, err := c.Publish(context.Background(), stream, msgs...)
	if err != nil {
		t.Fatal(err)
	}
	return res.IDs
}

func TestCancelWhileWaitingForLiveEvents(t *testing.T) {
	_, c, verify := leakCheck(t)
	publishN(t, c, "idle", 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n int
	var last error
	for ev, err := range c.Subscribe(ctx, "idle", client.SubscribeOptions{}) {
		if err != nil {
			last = err
			continue // the error must be the last value: a further one would show
		}
		if last != nil {
			t.Fatalf("value %+v after the error %v", ev, last)
		}
		if n++; n == 2 {
			time.AfterFunc(100*time.Millisecond, cancel)
		}
	}
	if n != 2 || !errors.Is(last, context.Canceled) || last != context.Canceled {
		t.Fatalf("%d events, last error %v; want 2 and context.Canceled itself", n, last)
	}
	verify()
}

func TestCancelInTheLoopBodyStopsBufferedEvents(t *testing.T) {
	_, c, verify := leakCheck(t)
	publishN(t, c, "busy", 50)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var events []client.Event
	var errs []error
	for ev, err := range c.Subscribe(ctx, "busy", client.SubscribeOptions{}) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		events = append(events, ev)
		cancel() // the other 49 are likely in the decoder's buffer already
	}
	if len(events) != 1 || len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("%d events, errors %v; want 1 event then context.Canceled", len(events), errs)
	}
	verify()
}

func TestCancelDuringTheReconnectWait(t *testing.T) {
	// A port nobody listens on: every connection is refused and the
	// client waits the default 3s (no retry: seen yet) between tries.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	opts := goleak.IgnoreCurrent()
	c := client.New("http://" + addr)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var waits []time.Duration
	start := time.Now()
	got := collect(ctx, c, "s", client.SubscribeOptions{OnReconnect: func(err error, wait time.Duration) {
		var op *net.OpError
		if !errors.As(err, &op) {
			t.Errorf("reconnect reason %v: want the refused connection", err)
		}
		waits = append(waits, wait)
	}})
	if got.err != context.DeadlineExceeded || len(got.events) != 0 {
		t.Fatalf("got %+v, %v; want the deadline", got.events, got.err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the loop ended %v after the start; it slept through its context", d)
	}
	if len(waits) != 1 || waits[0] < 3*time.Second || waits[0] > 3600*time.Millisecond {
		t.Fatalf("waits %v; want one in [3s, 3.6s] (3s and up to a fifth more)", waits)
	}
	goleak.VerifyNone(t, opts)
}

func TestBreakingOutLeavesNothing(t *testing.T) {
	_, c, verify := leakCheck(t)
	ids := publishN(t, c, "brk", 10)
	var got []string
	for ev, err := range c.Subscribe(context.Background(), "brk", client.SubscribeOptions{IdleTimeout: time.Minute}) {
		if err != nil {
			t.Fatal(err)
		}
		if got = append(got, ev.ID); len(got) == 2 {
			break
		}
	}
	if len(got) != 2 || got[0] != ids[0] || got[1] != ids[1] {
		t.Fatalf("got %v of %v", got, ids)
	}
	verify()
}

func TestEndedContextYieldsOnlyItsError(t *testing.T) {
	_, c, verify := leakCheck(t)
	publishN(t, c, "late", 3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := collect(ctx, c, "late", client.SubscribeOptions{})
	if len(got.events) != 0 || got.err != context.Canceled {
		t.Fatalf("got %+v, %v", got.events, got.err)
	}
	verify()
}

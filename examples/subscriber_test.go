package examples_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/sse"
)

// arrival is one event a subscriber read, and when.
type arrival struct {
	sse.Event
	At time.Time
}

// subscription is a real SSE read of one stream, as a service or a browser
// would do it.
type subscription struct {
	done     chan struct{}
	arrivals []arrival
	err      error
}

// subscribe connects to the stream's events with token and returns once
// the broker has answered (so the subscriber is registered); the events are
// read in the background until stop, the end of the response, or ctx's end.
func subscribe(t *testing.T, ctx context.Context, base, token, stream string) *subscription {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/streams/"+url.PathEscape(stream)+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("subscribe to %s: %v", stream, err)
	}
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("subscribe to %s: status %d, body %s", stream, res.StatusCode, body)
	}
	s := &subscription{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer res.Body.Close()
		dec := sse.NewDecoder(res.Body)
		for {
			ev, err := dec.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					s.err = err
				}
				return
			}
			s.arrivals = append(s.arrivals, arrival{Event: ev, At: time.Now()})
			if ev.Type == "stop" {
				return
			}
		}
	}()
	return s
}

// wait returns what the subscriber read once it has ended.
func (s *subscription) wait(t *testing.T) []arrival {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the subscriber did not end in 30 s")
	}
	if s.err != nil {
		t.Fatalf("subscriber: %v", s.err)
	}
	return s.arrivals
}

// bursts counts the groups of arrivals that follow each other by less
// than pause: events read together (published at once, or held back and
// flushed together) form one burst.
func bursts(arrivals []arrival, pause time.Duration) int {
	n := 0
	for i, a := range arrivals {
		if i == 0 || a.At.Sub(arrivals[i-1].At) >= pause {
			n++
		}
	}
	return n
}

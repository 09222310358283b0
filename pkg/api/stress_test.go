package api_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/ssetest"
	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/sse"
)

// TestReconnectStress publishes thousands of events from several
// publishers while subscribers drop their connections at random and come
// back with the last id they saw (by header or by query parameter). Every
// subscriber must end up with exactly the published ids, in order: no gap,
// no duplicate.
func TestReconnectStress(t *testing.T) {
	const (
		publishers  = 4
		batches     = 300 // per publisher, 1 to 5 events each: ~3,600 events
		subscribers = 8
	)
	b := testbroker.Start(t, testbroker.Options{MaxEvents: 100000})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	var (
		mu        sync.Mutex
		published []uint64
	)
	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			for i := range batches {
				n := 1 + rng.IntN(5)
				parts := make([]string, n)
				for j := range parts {
					parts[j] = fmt.Sprintf(`{"event":"token","data":"p%d b%d e%d"}`, p, i, j)
				}
				ids := publishJSON(t, b, "stress", "["+strings.Join(parts, ",")+"]")
				mu.Lock()
				for _, id := range ids {
					published = append(published, mustUint(t, id))
				}
				mu.Unlock()
			}
		})
	}

	received := make([]ssetest.Result, subscribers)
	var subs sync.WaitGroup
	for i := range subscribers {
		subs.Go(func() {
			f := &ssetest.Follower{Client: client, URLs: []string{b.URL + "/v1/streams/stress/events"}, Seed: uint64(i)}
			var err error
			if received[i], err = f.Run(context.Background()); err != nil {
				t.Errorf("subscriber %d: %v", i, err)
			}
		})
	}
	pubs.Wait()
	closeStream(t, b, "stress")
	subs.Wait()

	slices.Sort(published)
	for i, got := range received {
		if !slices.Equal(got.IDs, published) || len(got.Gaps) > 0 {
			t.Fatalf("subscriber %d received %d ids (%d gaps) over %d connections, published %d; first difference at %d",
				i, len(got.IDs), len(got.Gaps), got.Connections, len(published), firstDiff(got.IDs, published))
		}
	}
	t.Logf("%d events, %d subscribers, every id exactly once and in order", len(published), subscribers)
}

func firstDiff(a, b []uint64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestSlowSubscriberIsCutOff: a raw TCP subscriber stops reading. The
// publisher and a fast subscriber go on unhindered; the slow one is cut
// off, counted, and catches up from history when it reconnects.
func TestSlowSubscriberIsCutOff(t *testing.T) {
	const events = 1000
	b := testbroker.Start(t, testbroker.Options{MaxEvents: events + 10, Queue: 64})
	payload := strings.Repeat("x", 12<<10) // 12 MB in all: more than the socket buffers hold

	// The slow subscriber: a raw connection with a small receive buffer
	// that reads the response headers and then nothing. (Not smaller than
	// two loopback segments, or reading it later would crawl: a window below
	// one MSS makes the sender wait for zero-window probes.)
	conn, err := net.Dial("tcp", strings.TrimPrefix(b.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(256 << 10)
	fmt.Fprintf(conn, "GET /v1/streams/s/events HTTP/1.1\r\nHost: test\r\n\r\n")
	br := bufio.NewReaderSize(conn, 1024)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("slow subscriber: %v %v", res, err)
	}

	fast := subscribe(t, b, "/v1/streams/s/events", "")
	fastGot := make(chan []string, 1)
	go func() {
		var ids []string
		for len(ids) < events {
			ev, err := fast.dec.Next()
			if err != nil {
				break
			}
			ids = append(ids, ev.ID)
		}
		fastGot <- ids
	}()

	var published []string
	for range events {
		published = append(published, publish(t, b, "s", payload))
	}
	// Every publish was acknowledged while the slow client read nothing.
	select {
	case ids := <-fastGot:
		if !slices.Equal(ids, published) {
			t.Fatalf("fast subscriber got %d ids, want %d in order", len(ids), len(published))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("fast subscriber did not get every event")
	}
	_, _, metrics := b.Do(t, "GET", "/metrics", nil, "")
	if !strings.Contains(metrics, "sseb_slow_subscriber_disconnects_total 1\n") {
		t.Fatalf("slow disconnect not counted:\n%s", grepLines(metrics, "sseb_"))
	}

	// The slow client now reads: it gets an in-order prefix of the stream,
	// and then its response ends: cleanly, or cut by the per-write deadline
	// if it stopped reading for that long (a slow -race run).
	dec := sse.NewDecoder(res.Body)
	var slowGot []string
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		ev, err := dec.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("slow subscriber's response did not end: %v", err)
			}
			break
		}
		slowGot = append(slowGot, ev.ID)
	}
	if len(slowGot) >= events || !slices.Equal(slowGot, published[:len(slowGot)]) {
		t.Fatalf("slow subscriber got %d events; want a strict in-order prefix", len(slowGot))
	}
	// It reconnects with its last id and gets exactly the rest.
	last := ""
	if len(slowGot) > 0 {
		last = slowGot[len(slowGot)-1]
	}
	again := subscribe(t, b, "/v1/streams/s/events", last)
	for _, want := range published[len(slowGot):] {
		if ev := again.next(t); ev.ID != want {
			t.Fatalf("catch-up: got %s, want %s", ev.ID, want)
		}
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

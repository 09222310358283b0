package api_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/api"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
	"github.com/sse-broker/broker/pkg/broker/storetest"
	"github.com/sse-broker/broker/pkg/sse"
)

// rawSubscriber is an HTTP/1.1 subscription over a bare TCP connection:
// it starts no goroutine on the client side, so a test can count the
// server's.
type rawSubscriber struct {
	conn net.Conn
	res  *http.Response
	dec  *sse.Decoder
}

func rawSubscribe(t testing.TB, b *testbroker.Broker, path string) *rawSubscriber {
	t.Helper()
	conn := rawGet(t, b, path, "HTTP/1.1", "Accept: text/event-stream\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, res.StatusCode)
	}
	return &rawSubscriber{conn: conn, res: res, dec: sse.NewDecoder(res.Body)}
}

// rawGet opens a TCP connection to b and sends a GET of path in the given
// protocol version, with extra header lines (each ending in CRLF).
func rawGet(t testing.TB, b *testbroker.Broker, path, proto, extra string) net.Conn {
	t.Helper()
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "GET "+path+" "+proto+"\r\nHost: "+u.Host+"\r\n"+extra+"\r\n"); err != nil {
		t.Fatal(err)
	}
	return conn
}

func (s *rawSubscriber) next(t testing.TB) sse.Event {
	t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	ev, err := s.dec.Next()
	if err != nil {
		t.Fatalf("reading an event: %v", err)
	}
	return ev
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Live HTTP/1.1 subscriptions keep no goroutine while they wait, and
// every one still gets every event, in one well-formed chunked response
// with the contract's headers.
func TestParkedSubscriptionsHoldNoGoroutine(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	const n = 60
	publish(t, b, "parked", "before") // in every subscriber's backlog
	before := runtime.NumGoroutine()
	subs := make([]*rawSubscriber, n)
	for i := range subs {
		subs[i] = rawSubscribe(t, b, "/v1/streams/parked/events")
	}
	waitFor(t, "subscribers to register", func() bool { return b.Broker.Stats().Subscribers == n })
	time.Sleep(50 * time.Millisecond) // let the handlers' goroutines finish
	if grew := runtime.NumGoroutine() - before; grew > n/4 {
		t.Fatalf("%d live subscriptions added %d goroutines", n, grew)
	}
	for _, s := range subs {
		h := s.res.Header
		if h.Get("Content-Type") != "text/event-stream" || h.Get("Cache-Control") != "no-cache" ||
			h.Get("X-Accel-Buffering") != "no" || h.Get("X-Request-Id") == "" || len(s.res.TransferEncoding) != 1 {
			t.Fatalf("headers %v, transfer encoding %v", h, s.res.TransferEncoding)
		}
		if ev := s.next(t); ev.Data != "before" {
			t.Fatalf("backlog: %+v", ev)
		}
		if retry, ok := s.dec.Retry(); !ok || retry != 3000 {
			t.Fatalf("retry %d, %v", retry, ok)
		}
	}
	ids := []string{publish(t, b, "parked", "one"), publish(t, b, "parked", "two")}
	status, _, body := b.Do(t, "POST", "/v1/streams/parked/close", http.Header{"Content-Type": {"application/json"}}, `{"data":"bye"}`)
	var closed struct{ IDs []string }
	mustJSON(t, body, &closed)
	if status != http.StatusOK || len(closed.IDs) != 1 {
		t.Fatalf("close: %d %s", status, body)
	}
	closeID := closed.IDs[0]
	for _, s := range subs {
		for i, want := range []string{"one", "two"} {
			if ev := s.next(t); ev.Data != want || ev.ID != ids[i] {
				t.Fatalf("got %+v, want %s with id %s", ev, want, ids[i])
			}
		}
		if ev := s.next(t); ev.Type != "stop" || ev.ID != closeID {
			t.Fatalf("got %+v, want stop", ev)
		}
		// The broker ended the response: the chunked body is complete.
		if _, err := s.dec.Next(); err != io.EOF {
			t.Fatalf("after stop: %v, want a clean end of the body", err)
		}
	}
	waitFor(t, "subscriptions to end", func() bool { return b.Broker.Stats().Subscribers == 0 })
}

// A client that hangs up while nothing is published is let go at the
// next heartbeat, not kept until the next event.
func TestParkedSubscriptionNoticesClientGone(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Heartbeat: 100 * time.Millisecond})
	s := rawSubscribe(t, b, "/v1/streams/gone/events")
	keep := rawSubscribe(t, b, "/v1/streams/gone/events")
	waitFor(t, "two subscribers", func() bool { return b.Broker.Stats().Subscribers == 2 })
	s.conn.Close()
	waitFor(t, "the closed client to be let go", func() bool { return b.Broker.Stats().Subscribers == 1 })
	// The one still reading got heartbeats, and stays.
	raw, err := io.ReadAll(io.LimitReader(keep.res.Body, int64(len("retry: 3000\n\n: heartbeat\n\n"))))
	if err != nil || !strings.Contains(string(raw), ": heartbeat") {
		t.Fatalf("read %q, %v", raw, err)
	}
	if got := b.Broker.Stats().Subscribers; got != 1 {
		t.Fatalf("%d subscribers, want 1", got)
	}
}

// Shutdown ends parked subscriptions with a complete response and waits
// for them.
func TestParkedSubscriptionsEndOnShutdown(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	subs := []*rawSubscriber{
		rawSubscribe(t, b, "/v1/streams/drain/events"),
		rawSubscribe(t, b, "/v1/streams/drain/events"),
	}
	waitFor(t, "subscribers", func() bool { return b.Broker.Stats().Subscribers == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.API.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.Broker.Stats().Subscribers; got != 0 {
		t.Fatalf("%d subscribers after Shutdown", got)
	}
	for _, s := range subs {
		_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(s.res.Body); err != nil {
			t.Fatalf("body after Shutdown: %v, want a clean end", err)
		}
	}
}

// An HTTP/1.0 client cannot read a chunked body: its subscription is not
// parked (a parked one writes chunks) but served by net/http, which
// answers a 1.0 request with a plain body that ends when the connection
// closes.
func TestHTTP10SubscriberGetsAnUnchunkedStream(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	conn := rawGet(t, b, "/v1/streams/old-client/events", "HTTP/1.0", "")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	var head []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the head: %v (so far %q)", err, head)
		}
		if line = strings.TrimRight(line, "\r\n"); line == "" {
			break
		}
		head = append(head, line)
	}
	if !strings.HasSuffix(head[0], " 200 OK") {
		t.Fatalf("status line %q", head[0])
	}
	for _, h := range head[1:] {
		if strings.HasPrefix(strings.ToLower(h), "transfer-encoding:") {
			t.Fatalf("an HTTP/1.0 answer with %q; head %q", h, head)
		}
	}
	if status, _, body := b.Do(t, "POST", "/v1/streams/old-client/messages", nil, "hello"); status != http.StatusCreated {
		t.Fatalf("publish: %d %s", status, body)
	}
	// The body is the event stream itself: no chunk-size lines.
	want := []string{"retry: 3000", "", "id: ", "data: hello"}
	for _, w := range want {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the body until %q: %v", w, err)
		}
		if line = strings.TrimRight(line, "\n"); !strings.HasPrefix(line, w) || (w == "" && line != "") {
			t.Fatalf("body line %q, want %q", line, w)
		}
	}
}

// slowReads delays every history read, as a Redis round trip can.
type slowReads struct {
	broker.Store
	delay time.Duration
}

func (s slowReads) Read(ctx context.Context, stream string, after uint64, limit int) (broker.ReadResult, error) {
	time.Sleep(s.delay)
	return s.Store.Read(ctx, stream, after, limit)
}

// Shutdown waits for a subscription that was still reading its backlog
// when the drain began: it takes its connection over afterwards, where
// net/http no longer waits for it, and must still have ended cleanly
// before Shutdown returns (the store closes right after).
func TestShutdownWaitsForSubscriptionsBeingSetUp(t *testing.T) {
	hub := broker.NewHub(100, 16)
	mem := memory.New(storetest.Defaults(broker.StoreOptions{}), hub)
	t.Cleanup(func() { _ = mem.Close() })
	srv := api.New(api.Options{Broker: broker.New(slowReads{mem, 300 * time.Millisecond}, hub),
		Logger: zerolog.Nop(), Retry: time.Second, Heartbeat: time.Second, MaxBody: 1 << 20})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)

	type end struct {
		at  time.Time
		err error
	}
	ended := make(chan end, 1)
	go func() {
		res, err := http.Get(ts.URL + "/v1/streams/s/events")
		if err == nil {
			_, err = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}
		ended <- end{time.Now(), err}
	}()
	time.Sleep(100 * time.Millisecond) // the handler is in the slow read now
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	select {
	case e := <-ended:
		// The client reads the end a moment after the server wrote it and
		// Shutdown saw it; a Shutdown that did not wait would return some
		// 200 ms before the read is even over.
		if e.err != nil || e.at.Sub(returned) > 100*time.Millisecond {
			t.Fatalf("the subscription ended %v after Shutdown returned, with %v", e.at.Sub(returned), e.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription did not end")
	}
}

// A client that hangs up gives its place back at once, not at its next
// heartbeat: with subscribers.max reached, a browser that comes back after
// a network blip is served, not refused with 503 by its own ghost. (On
// Linux; elsewhere the heartbeat's peek lets it go.)
func TestHangUpFreesThePlaceAtOnce(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the hang-up watcher uses epoll")
	}
	b := testbroker.Start(t, testbroker.Options{MaxSubscribers: 1, Heartbeat: time.Hour})
	first := rawSubscribe(t, b, "/v1/streams/blip/events") // has the answer's head
	waitFor(t, "the subscriber to register", func() bool { return b.Broker.Stats().Subscribers == 1 })
	_ = first.conn.Close()
	waitFor(t, "the hung-up subscriber to be let go", func() bool { return b.Broker.Stats().Subscribers == 0 })
	again := rawSubscribe(t, b, "/v1/streams/blip/events") // fails on a 503
	publish(t, b, "blip", "after the blip")
	if ev := again.next(t); ev.Data != "after the blip" {
		t.Fatalf("got %+v", ev)
	}

	// A reset (the client's process killed) is noticed the same way.
	tcp := again.conn.(*net.TCPConn)
	_ = tcp.SetLinger(0)
	_ = tcp.Close()
	waitFor(t, "the reset subscriber to be let go", func() bool { return b.Broker.Stats().Subscribers == 0 })
}

// panicReads panics in every history read: a store bug.
type panicReads struct{ broker.Store }

func (panicReads) Read(context.Context, string, uint64, int) (broker.ReadResult, error) {
	panic("a store bug")
}

// A subscribe that panics while it sets up (answered 500 by the
// recoverer) is not waited for by Shutdown.
func TestShutdownAfterASubscribePanicked(t *testing.T) {
	hub := broker.NewHub(100, 16)
	mem := memory.New(storetest.Defaults(broker.StoreOptions{}), hub)
	t.Cleanup(func() { _ = mem.Close() })
	srv := api.New(api.Options{Broker: broker.New(panicReads{mem}, hub),
		Logger: zerolog.Nop(), Retry: time.Second, Heartbeat: time.Second, MaxBody: 1 << 20})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	res, err := http.Get(ts.URL + "/v1/streams/s/events")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusInternalServerError {
		t.Fatalf("subscribe with a panicking store: %s", res.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A drain larger than one chunk, of events of mixed sizes (a big one does
// not fit the chunk being filled), reaches the client in publish order,
// live and from history alike.
func TestLargeDrainKeepsTheOrder(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxEvents: 1000, Queue: 1000})
	live := rawSubscribe(t, b, "/v1/streams/order/events") // registered once its head is read
	var ids []string
	for i := range 40 {
		size := 100
		if i%3 == 1 {
			size = 30 << 10
		}
		res, err := b.Broker.Publish(context.Background(), "order", []broker.Message{{Data: strings.Repeat(string(rune('a'+i%26)), size)}}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, broker.FormatID(res.IDs[0]))
	}
	replay := rawSubscribe(t, b, "/v1/streams/order/events")
	for name, s := range map[string]*rawSubscriber{"live": live, "from history": replay} {
		for i, want := range ids {
			if ev := s.next(t); ev.ID != want {
				t.Fatalf("%s: event %d has id %s, want %s", name, i, ev.ID, want)
			}
		}
	}
}

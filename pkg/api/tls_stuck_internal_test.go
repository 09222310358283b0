package api

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// gateConn models a socket whose send buffer fills up: once armed, it
// accepts `room` more Write calls, then every Write blocks like a full
// kernel buffer does: until the write deadline passes (timeout error) or,
// with no deadline, until the connection is closed or the gate disarmed.
type gateConn struct {
	net.Conn
	mu       sync.Mutex
	armed    bool
	room     int
	deadline time.Time
	closed   chan struct{}
	once     sync.Once
	blocked  chan struct{} // closed when a write starts blocking
	bonce    sync.Once
	unblock  chan error // result of the blocked write
}

func (c *gateConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *gateConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *gateConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (c *gateConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.armed || c.room > 0 {
		if c.armed {
			c.room--
		}
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	c.mu.Unlock()
	c.bonce.Do(func() { close(c.blocked) })
	for {
		c.mu.Lock()
		d, armed := c.deadline, c.armed
		c.mu.Unlock()
		if !armed { // the test is over: let it through
			return c.Conn.Write(p)
		}
		if !d.IsZero() && time.Now().After(d) {
			select {
			case c.unblock <- os.ErrDeadlineExceeded:
			default:
			}
			return 0, os.ErrDeadlineExceeded
		}
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		case <-time.After(5 * time.Millisecond):
		}
	}
}

type gateListener struct {
	net.Listener
	conns chan *gateConn
}

func (l *gateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	g := &gateConn{Conn: c, closed: make(chan struct{}), blocked: make(chan struct{}), unblock: make(chan error, 1)}
	select {
	case l.conns <- g:
	default:
	}
	return g, nil
}

// A subscriber over HTTP/1.1 with TLS (served by net/http's goroutine, not
// taken over) stops reading when its socket buffer has room for the stop
// event but not for the end of the chunked response, which net/http
// writes after the handler returns. The write deadline of the last
// delivery must still bound that write; lifted after the flush (as it is
// for HTTP/2), nothing did, and the connection and its goroutine stayed as
// long as the client did.
func TestTLSHTTP1StuckClientReleasedAfterStop(t *testing.T) {
	s, ts := newWriteTimeoutServer(t, 64, 300*time.Millisecond)
	gl := &gateListener{Listener: ts.Listener, conns: make(chan *gateConn, 8)}
	ts.Listener = gl
	ts.EnableHTTP2 = false
	ts.StartTLS()

	tlsHTTP1Subscribe(t, ts, "/v1/streams/tail/events")
	g := <-gl.conns
	// The client stops reading; its buffer takes the stop event only.
	g.mu.Lock()
	g.armed, g.room = true, 1
	g.mu.Unlock()
	if _, err := s.broker.CloseStream(context.Background(), "tail", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("the server never wrote past the stop event")
	}
	select {
	case err := <-g.unblock:
		t.Logf("the write after stop ended: %v", err)
	case <-g.closed:
	case <-time.After(10 * s.writeTimeout):
		t.Fatalf("the write after the stop event is still blocked %v later (write timeout %v): nothing bounds it, the connection and its goroutine stay for as long as the client does", 10*s.writeTimeout, s.writeTimeout)
	}
	// TLS's close alert, written next, would wait 5 s at the gate.
	g.mu.Lock()
	g.armed = false
	g.mu.Unlock()
}

// Over HTTP/2 a subscriber that stops reading (no WINDOW_UPDATE) is still
// cut off by the per-write deadline, though it is lifted after each flush.
func TestHTTP2StuckReaderIsCut(t *testing.T) {
	s, ts := newWriteTimeoutServer(t, 1000, 500*time.Millisecond)
	b := s.broker
	ts.EnableHTTP2 = true
	ts.StartTLS()
	res, err := ts.Client().Get(ts.URL + "/v1/streams/h2stuck/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ProtoMajor != 2 {
		t.Fatal(res.Proto)
	}
	// The body is never read.
	chunk := strings.Repeat("x", 512<<10)
	start := time.Now()
	for range 20 {
		if _, err := b.Publish(context.Background(), "h2stuck", []broker.Message{{Data: chunk}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	for b.Stats().Subscribers != 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("HTTP/2 reader that stopped reading still subscribed after %v", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("cut after %v", time.Since(start))
}

// A TLS HTTP/1.1 subscriber (not taken over) that was quiet for longer
// than the write timeout, as one is for part of every heartbeat interval,
// gets a clean end of its response when the broker ends it: the end,
// written by net/http after the handler returns, used to meet the passed
// deadline of the last write, and the client saw "bad record MAC".
func TestTLSHTTP1QuietSubscriberEndsCleanly(t *testing.T) {
	for _, end := range []string{"drain", "delete"} {
		t.Run(end, func(t *testing.T) {
			s, ts := newWriteTimeoutServer(t, 64, 200*time.Millisecond)
			ts.EnableHTTP2 = false
			ts.StartTLS()
			if _, err := s.broker.Publish(context.Background(), "q", []broker.Message{{Data: "x"}}, ""); err != nil {
				t.Fatal(err)
			}
			conn, res := tlsHTTP1Subscribe(t, ts, "/v1/streams/q/events")
			time.Sleep(3 * s.writeTimeout) // quiet past the write deadline
			switch end {
			case "drain":
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := s.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
			case "delete":
				if err := s.broker.Delete(context.Background(), "q"); err != nil {
					t.Fatal(err)
				}
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if body, err := io.ReadAll(res.Body); err != nil {
				t.Fatalf("the response ended with %v (body %q), want a clean end of the chunked body", err, body)
			}
		})
	}
}

// tlsHTTP1Subscribe subscribes to path over HTTP/1.1 with TLS (a
// subscription served by net/http's goroutine, not taken over) and
// returns the connection, closed when the test ends, and the 200 answer.
func tlsHTTP1Subscribe(t *testing.T, ts *httptest.Server, path string) (*tls.Conn, *http.Response) {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(ts.URL, "https://"), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || res.StatusCode != http.StatusOK || res.ProtoMinor != 1 {
		t.Fatalf("subscribe: %v %v", res, err)
	}
	return conn, res
}

// throttledConn is a slow link: a write of n bytes takes n/rate, and
// fails with a timeout instead when the write deadline comes first (as a
// socket whose peer reads slowly does).
type throttledConn struct {
	net.Conn
	rate     float64 // bytes per second
	mu       sync.Mutex
	deadline time.Time
}

func (c *throttledConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *throttledConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *throttledConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	d := c.deadline
	c.mu.Unlock()
	done := time.Now().Add(time.Duration(float64(len(p)) / c.rate * float64(time.Second)))
	if !d.IsZero() && d.Before(done) {
		time.Sleep(time.Until(d))
		return 0, os.ErrDeadlineExceeded
	}
	time.Sleep(time.Until(done))
	return c.Conn.Write(p)
}

type throttledListener struct {
	net.Listener
	rate float64
}

func (l throttledListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &throttledConn{Conn: c, rate: l.rate}, nil
}

// A subscriber on a slow link (TLS, served by net/http's goroutine) gets
// a backlog that takes it several write timeouts to read, all of it: the
// deadline bounds each 64 KiB of a drain, not the whole drain, so a
// client that keeps reading is not cut (it used to be, at every write
// timeout, and had to resume again and again).
func TestSlowLinkGetsALongBacklogWhole(t *testing.T) {
	hub := broker.NewHub(10, 1000)
	store := memory.New(broker.StoreOptions{MaxEvents: 1000, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	defer store.Close()
	s := New(Options{Broker: broker.New(store, hub), Retry: time.Second, Heartbeat: time.Hour, MaxBody: 1 << 20})
	// The whole backlog takes the link about 1.6 times the write timeout;
	// what one deadline covers (64 KiB, give or take an event) takes an
	// eighth of it, a margin for a machine busy with other tests. (A
	// write that does time out breaks the TLS connection for good: the
	// client then reads a broken record, not a short body.)
	s.writeTimeout = time.Second
	ts := httptest.NewUnstartedServer(s)
	ts.Listener = throttledListener{Listener: ts.Listener, rate: 512 << 10}
	ts.EnableHTTP2 = false
	ts.StartTLS()
	defer func() {
		_ = s.Shutdown(context.Background())
		ts.CloseClientConnections()
		ts.Close()
	}()
	data := strings.Repeat("x", 4<<10)
	const events = 200 // 800 KiB: 1.6 s on this link
	for range events {
		if _, err := s.broker.Publish(context.Background(), "backlog", []broker.Message{{Data: data}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.broker.CloseStream(context.Background(), "backlog", ""); err != nil {
		t.Fatal(err)
	}
	conn, res := tlsHTTP1Subscribe(t, ts, "/v1/streams/backlog/events")
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("the response broke off after %d bytes: %v", len(body), err)
	}
	if n := strings.Count(string(body), "data: "+data+"\n"); n != events || !strings.Contains(string(body), "event: stop") {
		t.Fatalf("%d of the %d events, and the stop: %v, in %d bytes", n, events, strings.Contains(string(body), "event: stop"), len(body))
	}
}

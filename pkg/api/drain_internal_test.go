package api

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
)

// A client that stops reading must not hold the drain for the whole
// write timeout (a minute here): Shutdown cuts the writes in progress
// short. Each case gets the subscriber's write blocked first, then asks
// for a drain that has 15 s: without the cut it runs out of time. (Over
// TLS the drain takes about 6 s: closing a tls.Conn sends a close alert,
// with its own 5 s deadline, to the client that does not read.)
func TestDrainCutsWritesBlockedOnAClient(t *testing.T) {
	const writeTimeout = time.Minute
	// blockedHTTP1 subscribes over HTTP/1.1 (TLS or not) through a
	// gateConn and returns once the server's next write blocks.
	blockedHTTP1 := func(t *testing.T, s *Server, ts *httptest.Server, useTLS bool) {
		gl := &gateListener{Listener: ts.Listener, conns: make(chan *gateConn, 8)}
		ts.Listener = gl
		var conn net.Conn
		var err error
		if useTLS {
			ts.EnableHTTP2 = false
			ts.StartTLS()
			conn, err = tls.Dial("tcp", strings.TrimPrefix(ts.URL, "https://"), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		} else {
			ts.Start()
			conn, err = net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := io.WriteString(conn, "GET /v1/streams/drain/events HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("subscribe: %v %v", res, err)
		}
		g := <-gl.conns
		g.mu.Lock()
		g.armed, g.room = true, 0 // the client stops reading
		g.mu.Unlock()
		if _, err := s.broker.Publish(context.Background(), "drain", []broker.Message{{Data: "x"}}, ""); err != nil {
			t.Fatal(err)
		}
		select {
		case <-g.blocked:
		case <-time.After(5 * time.Second):
			t.Fatal("the delivery never wrote")
		}
	}
	cases := []struct {
		name  string
		block func(t *testing.T, s *Server, ts *httptest.Server)
	}{
		{"HTTP/1.1 taken over", func(t *testing.T, s *Server, ts *httptest.Server) { blockedHTTP1(t, s, ts, false) }},
		{"HTTP/1.1 over TLS", func(t *testing.T, s *Server, ts *httptest.Server) { blockedHTTP1(t, s, ts, true) }},
		{"HTTP/2", func(t *testing.T, s *Server, ts *httptest.Server) {
			ts.EnableHTTP2 = true
			ts.StartTLS()
			res, err := ts.Client().Get(ts.URL + "/v1/streams/drain/events")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { res.Body.Close() })
			if res.ProtoMajor != 2 {
				t.Fatal(res.Proto)
			}
			// The body is never read: 10 MiB overflows the client's
			// 4 MiB stream window, and the server's write waits for it.
			chunk := strings.Repeat("x", 512<<10)
			for range 20 {
				if _, err := s.broker.Publish(context.Background(), "drain", []broker.Message{{Data: chunk}}, ""); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(300 * time.Millisecond)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, ts := newWriteTimeoutServer(t, 1000, writeTimeout)
			c.block(t, s, ts)
			if n := s.broker.Stats().Subscribers; n != 1 {
				t.Fatalf("%d subscribers before the drain, want 1", n)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			start := time.Now()
			apiDone := make(chan error, 1)
			go func() { apiDone <- s.Shutdown(ctx) }()
			if err := ts.Config.Shutdown(ctx); err != nil {
				t.Errorf("net/http's drain: %v after %v", err, time.Since(start))
			}
			if err := <-apiDone; err != nil {
				t.Errorf("the API's drain: %v after %v", err, time.Since(start))
			}
			t.Logf("drained in %v", time.Since(start))
		})
	}
}

package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/internal/redistest"
	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/api"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
	"github.com/sse-broker/broker/pkg/broker/redisstore"
	"github.com/sse-broker/broker/pkg/broker/storetest"
)

// countLines counts the log lines whose message is msg.
func countLines(log, msg string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"message":"`+msg+`"`) {
			n++
		}
	}
	return n
}

// The demo closes its stream, a lifecycle event, without the "stream
// closed" line that POST .../close logs.
func TestDemoCloseIsLogged(t *testing.T) {
	log := &syncBuffer{}
	b := testbroker.Start(t, testbroker.Options{Log: log, DemoTokenDelay: time.Millisecond})
	st, _, body := b.Do(t, http.MethodPost, "/v1/demo/chat", http.Header{"Content-Type": {"application/json"}},
		`{"stream":"demo-1","message":"hi"}`)
	if st != http.StatusAccepted {
		t.Fatalf("demo: %d %s", st, body)
	}
	waitFor(t, "demo stream closed", func() bool {
		_, _, body := b.Do(t, http.MethodGet, "/v1/streams/demo-1", nil, "")
		return strings.Contains(body, `"closed":true`)
	})
	if n := countLines(log.String(), "stream closed"); n != 1 {
		t.Errorf("demo closed its stream: %d \"stream closed\" lines, want 1\n%s", n, log.String())
	}
}

// A subscribe whose store read panics (answered 500 by the recoverer)
// leaves its hub registration behind: sseb_subscribers stays 1 for good,
// and the phantom is later counted as a slow-subscriber disconnect.
func TestSubscribePanicLeavesNoSubscriber(t *testing.T) {
	hub := broker.NewHub(100, 4)
	mem := memory.New(storetest.Defaults(broker.StoreOptions{}), hub)
	t.Cleanup(func() { _ = mem.Close() })
	b := broker.New(panicReads{mem}, hub)
	srv := api.New(api.Options{Broker: b, Logger: zerolog.Nop(), Retry: time.Second, Heartbeat: time.Second, MaxBody: 1 << 20})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	res, err := http.Get(ts.URL + "/v1/streams/s/events")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d", res.StatusCode)
	}
	if n := b.Stats().Subscribers; n != 0 {
		t.Errorf("right after the panicked subscribe: sseb_subscribers=%d, want 0", n)
	}
	for i := 0; i < 6; i++ {
		if _, err := b.Publish(context.Background(), "s", []broker.Message{{Data: "x"}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	st := b.Stats()
	if st.Subscribers != 0 || st.SlowDisconnects != 0 {
		t.Errorf("after a panicked subscribe and 6 publishes: subscribers=%d slow_disconnects=%d, want 0 and 0", st.Subscribers, st.SlowDisconnects)
	}
}

// A subscriber cut off as slow while its write is blocked (the usual
// slow client: it stopped reading) is counted in
// sseb_slow_subscriber_disconnects_total but never gets the warning the
// docs promise; its end is logged at debug as a write failure.
func TestSlowCutOffWhileWriteBlockedIsWarned(t *testing.T) {
	log := &syncBuffer{}
	b := testbroker.Start(t, testbroker.Options{Log: log, Queue: 2})
	u := strings.TrimPrefix(b.URL, "http://")
	conn, err := net.Dial("tcp", u)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := conn.Write([]byte("GET /v1/streams/slow/events HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	if line, _ := br.ReadString('\n'); !strings.Contains(line, "200") {
		t.Fatalf("subscribe: %q", line)
	}
	big := strings.Repeat("a", 900_000)
	for i := 0; i < 80 && b.Broker.Stats().SlowDisconnects == 0; i++ {
		b.Do(t, http.MethodPost, "/v1/streams/slow/messages", nil, big)
	}
	if b.Broker.Stats().SlowDisconnects != 1 {
		t.Fatalf("no slow cut-off")
	}
	conn.Close() // the client finally goes; the blocked write fails
	time.Sleep(time.Second)
	out := log.String()
	if !strings.Contains(out, `"reason":"slow"`) {
		var ends []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "subscri") {
				ends = append(ends, l)
			}
		}
		t.Errorf("slow cut-off counted but no warning logged; subscription lines:\n%s", strings.Join(ends, "\n"))
	}
}

// In Redis mode one DELETE logs "stream deleted" twice: once by the API
// handler, once by redisstore.Delete.
func TestRedisDeleteLoggedOnce(t *testing.T) {
	rs := redistest.Start(t)
	log := &syncBuffer{}
	logger := zerolog.New(log)
	hub := broker.NewHub(100, 16)
	store, err := redisstore.New(context.Background(), redisstore.Options{URL: rs.URL},
		storetest.Defaults(broker.StoreOptions{Logger: logger}), hub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	srv := api.New(api.Options{Broker: broker.New(store, hub), Logger: logger, Retry: time.Second, Heartbeat: time.Second, MaxBody: 1 << 20})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	res, err := http.Post(ts.URL+"/v1/streams/r1/messages", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	req, _ := http.NewRequest(http.MethodDelete, ts.URL+"/v1/streams/r1", nil)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", res.StatusCode)
	}
	if n := countLines(log.String(), "stream deleted"); n != 1 {
		t.Errorf("one DELETE logged %d \"stream deleted\" lines, want 1:\n%s", n, log.String())
	}
}

// requestLines returns the "request" lines of log for path, decoded.
func requestLines(t *testing.T, log, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, `"message":"request"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["path"] == path {
			out = append(out, m)
		}
	}
	return out
}

// A parked subscription's handler returns as soon as it hands the
// connection over; the request's one line must still say how long the
// subscription lived, what it wrote and why it ended, so it comes at the
// end, once. (It used to come at the hand-over: size 0, well under a
// millisecond, and the end only at debug.)
func TestSubscriptionLogsOneRequestLineAtItsEnd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		end     func(t *testing.T, b *testbroker.Broker, conn net.Conn)
		wantEnd string
	}{
		{"closed stream", func(t *testing.T, b *testbroker.Broker, conn net.Conn) {
			if st, _, body := b.Do(t, http.MethodPost, "/v1/streams/logged/close", nil, ""); st != http.StatusOK {
				t.Fatalf("close: %d %s", st, body)
			}
		}, "stopped"},
		{"client gone", func(t *testing.T, b *testbroker.Broker, conn net.Conn) {
			_ = conn.Close()
		}, "client_gone"},
		{"draining", func(t *testing.T, b *testbroker.Broker, conn net.Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := b.API.Shutdown(ctx); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
		}, "draining"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &syncBuffer{}
			b := testbroker.Start(t, testbroker.Options{Log: log})
			conn, err := net.Dial("tcp", strings.TrimPrefix(b.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			opened := time.Now()
			if _, err := conn.Write([]byte("GET /v1/streams/logged/events HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			events := bufio.NewReader(res.Body)
			var body strings.Builder // the de-chunked body, as the client read it
			readEvent := func() {
				for {
					line, err := events.ReadString('\n')
					body.WriteString(line)
					if err != nil {
						t.Fatalf("reading the stream: %v", err)
					}
					if line == "\n" {
						return
					}
				}
			}
			readEvent() // retry block
			for i := 0; i < 3; i++ {
				b.Do(t, http.MethodPost, "/v1/streams/logged/messages", nil, "hello")
				readEvent()
			}
			time.Sleep(100 * time.Millisecond)
			if n := len(requestLines(t, log.String(), "/v1/streams/logged/events")); n != 0 {
				t.Fatalf("%d request lines while the subscription lives, want 0 until it ends", n)
			}
			wantSize := body.Len()
			wantEvents := 3.0
			if tc.wantEnd == "stopped" {
				tc.end(t, b, conn)
				readEvent() // stop
				wantSize, wantEvents = body.Len(), 4
			} else {
				tc.end(t, b, conn)
			}
			var lines []map[string]any
			waitFor(t, "the subscription's request line", func() bool {
				lines = requestLines(t, log.String(), "/v1/streams/logged/events")
				return len(lines) > 0
			})
			lived := time.Since(opened)       // at least the subscription's life
			time.Sleep(50 * time.Millisecond) // a second line would come now
			lines = requestLines(t, log.String(), "/v1/streams/logged/events")
			if len(lines) != 1 {
				t.Fatalf("%d request lines for the subscription, want 1:\n%v", len(lines), lines)
			}
			l := lines[0]
			if l["level"] != "info" || l["method"] != "GET" || l["status"] != 200.0 || l["req_id"] == nil || l["stream"] != "logged" {
				t.Errorf("line %v: want info, GET, 200, a req_id and the stream", l)
			}
			if l["remote"] != conn.LocalAddr().String() {
				t.Errorf("remote %v, want the client's address %s", l["remote"], conn.LocalAddr())
			}
			if l["size"] != float64(wantSize) || l["events"] != wantEvents || l["end"] != tc.wantEnd {
				t.Errorf("size %v, events %v, end %v; want %d, %v, %s", l["size"], l["events"], l["end"], wantSize, wantEvents, tc.wantEnd)
			}
			// zerolog writes durations in milliseconds.
			if d, _ := l["duration"].(float64); d < 100 || d > float64(lived.Milliseconds())+1 {
				t.Errorf("duration %v ms, want from 100 to %d (the subscription's life)", l["duration"], lived.Milliseconds())
			}
		})
	}
}

// Every other request still gets its line when its handler returns.
func TestPublishLogsOneRequestLine(t *testing.T) {
	log := &syncBuffer{}
	b := testbroker.Start(t, testbroker.Options{Log: log})
	b.Do(t, http.MethodPost, "/v1/streams/p/messages", nil, "hello")
	lines := requestLines(t, log.String(), "/v1/streams/p/messages")
	if len(lines) != 1 || lines[0]["status"] != 201.0 || lines[0]["size"].(float64) < 10 {
		t.Fatalf("publish request lines: %v, want one, 201, with the answer's size", lines)
	}
}

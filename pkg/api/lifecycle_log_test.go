package api_test

import (
	"bufio"
	"context"
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

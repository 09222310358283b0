package api_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	r3sse "github.com/r3labs/sse/v2"
	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/api"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
	"github.com/sse-broker/broker/pkg/sse"
)

// wireCases are data values that naive SSE code gets wrong.
var wireCases = []struct {
	name, event, data string
	wantData          string // what SSE delivers (CR and CRLF become LF)
	wantWire          string // the exact bytes after "id: N\n"
}{
	{"empty", "", "", "", "data: \n\n"},
	{"plain", "", "hello", "hello", "data: hello\n\n"},
	{"multi-line", "token", "a\nb\nc", "a\nb\nc", "event: token\ndata: a\ndata: b\ndata: c\n\n"},
	{"CRLF", "", "a\r\nb", "a\nb", "data: a\ndata: b\n\n"},
	{"CR", "", "a\rb", "a\nb", "data: a\ndata: b\n\n"},
	{"trailing LF", "", "a\n", "a\n", "data: a\ndata: \n\n"},
	{"only LFs", "", "\n\n", "\n\n", "data: \ndata: \ndata: \n\n"},
	{"leading space", "", "  two", "  two", "data:   two\n\n"},
	{"looks like fields", "", "id: 1\nevent: x\nretry: 5", "id: 1\nevent: x\nretry: 5", "data: id: 1\ndata: event: x\ndata: retry: 5\n\n"},
	{"non-ASCII", "naïve", "héllo 世界 🎉", "héllo 世界 🎉", "event: naïve\ndata: héllo 世界 🎉\n\n"},
	{"colon line", "", ":not a comment", ":not a comment", "data: :not a comment\n\n"},
}

// TestWireBytes checks the exact bytes on the wire, then that the strict
// WHATWG decoder and r3labs' independent EventStreamReader both read back
// what was published.
func TestWireBytes(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	var ids []string
	for _, c := range wireCases {
		path := "/v1/streams/wire/messages"
		if c.event != "" {
			path += "?event=" + c.event
		}
		status, _, body := b.Do(t, "POST", path, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, c.data)
		if status != http.StatusCreated {
			t.Fatalf("%s: publish %d %s", c.name, status, body)
		}
		var ans struct{ IDs []string }
		mustJSON(t, body, &ans)
		ids = append(ids, ans.IDs[0])
	}
	closeStream(t, b, "wire")

	_, _, raw := b.Do(t, "GET", "/v1/streams/wire/events", nil, "")
	want := "retry: 3000\n\n"
	for i, c := range wireCases {
		want += "id: " + ids[i] + "\n" + c.wantWire
	}
	if !strings.HasPrefix(raw, want) {
		t.Fatalf("wire bytes:\n%q\nwant prefix:\n%q", raw, want)
	}

	dec := sse.NewDecoder(strings.NewReader(raw))
	for i, c := range wireCases {
		ev, err := dec.Next()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		wantType := c.event
		if wantType == "" {
			wantType = "message"
		}
		if ev.ID != ids[i] || ev.Type != wantType || ev.Data != c.wantData {
			t.Fatalf("%s: decoded %+v, want id %s type %s data %q", c.name, ev, ids[i], wantType, c.wantData)
		}
	}

	// r3labs' reader splits events; its processing of a data field keeps
	// lines joined by LF, like a browser.
	reader := r3sse.NewEventStreamReader(strings.NewReader(raw), 1<<20)
	if _, err := reader.ReadEvent(); err != nil { // the retry block
		t.Fatal(err)
	}
	for i, c := range wireCases {
		msg, err := reader.ReadEvent()
		if err != nil {
			t.Fatalf("%s: r3labs reader: %v", c.name, err)
		}
		if !bytes.HasPrefix(msg, []byte("id: "+ids[i]+"\n")) {
			t.Fatalf("%s: r3labs read %q", c.name, msg)
		}
		got := r3labsData(msg)
		if got != c.wantData {
			t.Fatalf("%s: r3labs data %q, want %q", c.name, got, c.wantData)
		}
	}
}

// r3labsData joins the data lines of one raw event the way the r3labs
// client does (each "data:" value, one leading space removed, joined by LF).
func r3labsData(msg []byte) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(msg))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "data:"); ok {
			lines = append(lines, strings.TrimPrefix(v, " "))
		}
	}
	return strings.Join(lines, "\n")
}

// The r3labs client subscribes, follows our stream and sees our ids.
func TestR3labsClientReadsOurStream(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	var want []string
	for _, c := range wireCases {
		if c.wantData == "" {
			continue // the r3labs client drops events whose data is empty
		}
		want = append(want, publish(t, b, "r3", c.data))
	}
	client := r3sse.NewClient(b.URL + "/v1/streams/r3/events")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, len(want))
	go func() {
		_ = client.SubscribeRawWithContext(ctx, func(msg *r3sse.Event) {
			if len(msg.ID) == 0 && len(msg.Data) == 0 {
				return // the retry block: the r3labs client passes it on as an event
			}
			got <- string(msg.ID)
		})
	}()
	for i, id := range want {
		select {
		case g := <-got:
			if g != id {
				t.Fatalf("event %d: r3labs client saw id %s, want %s", i, g, id)
			}
		case <-ctx.Done():
			t.Fatalf("r3labs client got %d of %d events", i, len(want))
		}
	}
}

// The first block is the retry field, flushed before any event exists.
func TestRetryBlockFlushedAtOnce(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Retry: 1500 * time.Millisecond})
	s := subscribe(t, b, "/v1/streams/nothing-yet/events", "")
	buf := make([]byte, len("retry: 1500\n\n"))
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(s.res.Body, buf); done <- err }()
	select {
	case err := <-done:
		if err != nil || string(buf) != "retry: 1500\n\n" {
			t.Fatalf("first block %q, %v", buf, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the retry block was not flushed")
	}
}

func TestHeartbeats(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Heartbeat: 50 * time.Millisecond})
	s := subscribe(t, b, "/v1/streams/quiet/events", "")
	deadline := time.AfterFunc(10*time.Second, s.close)
	defer deadline.Stop()
	readHeartbeats(t, bufio.NewReader(s.res.Body), 3)

	// The same where the handler's goroutine writes the stream itself
	// instead of parking it (HTTP/1.0 here; TLS and HTTP/2 likewise).
	conn := rawGet(t, b, "/v1/streams/quiet/events", "HTTP/1.0", "")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	readHeartbeats(t, bufio.NewReader(conn), 3)
}

// api.Options without a Heartbeat gets 15 s, as sse.heartbeat does in
// the configuration: taken as it is, 0 made the heartbeat clock tick
// every 100 µs and every subscriber was sent a comment as often.
func TestHeartbeatDefault(t *testing.T) {
	hub := broker.NewHub(10, 64)
	mem := memory.New(broker.StoreOptions{MaxEvents: 100, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
	defer mem.Close()
	srv := api.New(api.Options{Broker: broker.New(mem, hub), Logger: zerolog.New(io.Discard), Retry: time.Second, MaxBody: 1 << 20})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	// Parked (HTTP/1.1) and served by net/http (HTTP/1.0) alike.
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		conn := rawGet(t, &testbroker.Broker{URL: ts.URL}, "/v1/streams/quiet/events", proto, "")
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		got, _ := io.ReadAll(conn) // until the deadline
		if !bytes.Contains(got, []byte("retry: 1000\n\n")) {
			t.Fatalf("%s: the stream began %q, want its retry block", proto, got)
		}
		for _, line := range strings.Split(string(got), "\n") {
			if strings.HasPrefix(line, ":") {
				t.Fatalf("%s: a comment within 300 ms of a quiet subscription with the default heartbeat: %q", proto, got)
			}
		}
	}
}

// readHeartbeats reads lines until n comment lines came.
func readHeartbeats(t *testing.T, br *bufio.Reader, n int) {
	t.Helper()
	for comments := 0; comments < n; {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d heartbeats: %v", comments, err)
		}
		if strings.HasPrefix(line, ":") {
			comments++
		}
	}
}

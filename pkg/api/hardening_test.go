package api_test

// Server hardening. The request-level limits (body size, stream id and
// event name length, events per request, streams.max, subscribers.max)
// are in errors_test.go (TestBadInputs, TestLimitsAnswer503WithRetryAfter);
// panics in recover_internal_test.go. Here: the limits of the HTTP server
// itself, which only the real binary has (cmd/broker/main.go sets them on
// its http.Server: maxHeaderBytes 64 KiB, readHeaderTimeout 10 s), and the
// write deadline of a subscription, which the API sets itself.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/brokerproc"
	"github.com/sse-broker/broker/internal/testbroker"
)

// The real binary's limits, as set in cmd/broker/main.go.
const (
	binaryMaxHeaderBytes    = 64 << 10
	binaryReadHeaderTimeout = 10 * time.Second
)

// Request headers over the limit get 431; headers under it are served.
func TestHeadersOverLimitGet431(t *testing.T) {
	t.Parallel()
	p := brokerproc.Start(t)
	get := func(headerBytes int) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, p.URL+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Padding", strings.Repeat("a", headerBytes))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET with %d header bytes: %v", headerBytes, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return res.StatusCode
	}
	if status := get(binaryMaxHeaderBytes / 2); status != http.StatusOK {
		t.Fatalf("headers of %d bytes: %d, want 200", binaryMaxHeaderBytes/2, status)
	}
	// net/http allows 4 KiB of slack over MaxHeaderBytes.
	if status := get(binaryMaxHeaderBytes + 8<<10); status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("headers of %d bytes: %d, want 431", binaryMaxHeaderBytes+8<<10, status)
	}
}

// A slowloris client, trickling its request headers, has its connection
// closed once the header read timeout runs out: it cannot hold a
// connection and a goroutine with a few bytes a second. (Real binary;
// about ten seconds.)
func TestSlowlorisIsDisconnected(t *testing.T) {
	t.Parallel()
	p := brokerproc.Start(t)
	conn, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: broker\r\n"); err != nil {
		t.Fatal(err)
	}
	// Trickle a header line every 500 ms; the read side reports when the
	// server closes the connection.
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, conn) // returns at EOF or reset
		closed <- time.Since(start)
	}()
	limit := binaryReadHeaderTimeout + 5*time.Second
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case d := <-closed:
			if d < binaryReadHeaderTimeout-time.Second {
				t.Fatalf("connection closed after %v, before the header timeout of %v", d, binaryReadHeaderTimeout)
			}
			t.Logf("slowloris connection closed after %v", d.Round(time.Millisecond))
			return
		case <-tick.C:
			if time.Since(start) > limit {
				t.Fatalf("a client trickling headers still holds its connection after %v", time.Since(start))
			}
			// Writes may fail once the server has closed; the read side
			// reports that.
			_, _ = fmt.Fprintf(conn, "X-Slow-%d: x\r\n", i)
		}
	}
}

// A subscriber that stops reading does not hold its handler forever: once
// the kernel's buffers are full, the write deadline of the SSE writer ends
// the subscription, and the broker counts one subscriber less. (About ten
// seconds: subscriberWriteTimeout.)
func TestSubscriberThatStopsReadingIsDropped(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{Queue: 1000})
	const stream = "stuck-reader"
	publish(t, b, stream, "first") // stream info answers 404 until the stream exists
	conn, err := net.Dial("tcp", strings.TrimPrefix(b.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetReadBuffer(16 << 10) // fill up sooner
	}
	if _, err := fmt.Fprintf(conn, "GET /v1/streams/%s/events HTTP/1.1\r\nHost: broker\r\n\r\n", stream); err != nil {
		t.Fatal(err)
	}
	// Read the answer's head only, then never read again.
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("subscribe: %v %v", res, err)
	}
	waitSubscribers(t, b, stream, 1, 5*time.Second)

	// Far more than the socket buffers hold, in few publishes (the queue
	// never overflows: this is the write deadline at work, not the
	// slow-subscriber cut-off).
	chunk := strings.Repeat("x", 512<<10)
	start := time.Now()
	for range 40 {
		publish(t, b, stream, chunk)
	}
	waitSubscribers(t, b, stream, 0, 30*time.Second)
	t.Logf("the stuck subscriber was dropped %v after the publishes began", time.Since(start).Round(time.Millisecond))
}

// waitSubscribers waits until stream has want subscribers.
func waitSubscribers(t *testing.T, b *testbroker.Broker, stream string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		status, _, body := b.Do(t, http.MethodGet, "/v1/streams/"+stream, nil, "")
		var info struct{ Subscribers int }
		if status == http.StatusOK && json.Unmarshal([]byte(body), &info) == nil && info.Subscribers == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s: %d %s; want %d subscribers within %v", stream, status, body, want, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A body that declares more than publish.max_body is refused from its
// headers: a client that asks first (Expect: 100-continue) gets 413
// instead of the go-ahead, and uploads nothing.
func TestDeclaredOversizedBodyIsRefusedUpFront(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxBody: 64 << 10})
	conn, err := net.Dial("tcp", strings.TrimPrefix(b.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "POST /v1/streams/big/messages HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", 5<<20)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "body_too_large") {
		t.Fatalf("answer %d %s, want 413 body_too_large before any upload", res.StatusCode, body)
	}
	if status, _, _ := b.Do(t, "GET", "/v1/streams/big", nil, ""); status != http.StatusNotFound {
		t.Fatalf("the refused publish created its stream: %d", status)
	}
}

// Headers that declare a body reserve little memory before its bytes
// arrive: 64 requests that send their headers, each declaring 1 MiB (the
// body limit), and then nothing, must not pin 64 MiB for the read timeout.
func TestDeclaredBodyReservesLittleBeforeItArrives(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxBody: 1 << 20})
	heap := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	before := heap()
	const requests = 64
	for range requests {
		conn, err := net.Dial("tcp", strings.TrimPrefix(b.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/streams/s/messages HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", 1<<20)
	}
	// The handlers wait for the bodies; what they hold shows at once.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if grown := heap() - before; grown > requests<<20/4 {
			t.Fatalf("the heap grew by %d MiB for %d requests that sent no body", grown>>20, requests)
		}
	}
}

package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/client"
)

// TestPublishExactlyOnceWhenTheAnswerIsLost: the proxy relays the first
// publish to the broker, which stores it, and drops the connection before
// the answer reaches the client. The client retries with the same key: it
// gets the ids, and the events are in the stream once.
func TestPublishExactlyOnceWhenTheAnswerIsLost(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	p := startProxy(t, b.URL, func(conn int) plan { return plan{dropAnswer: conn == 1} })
	c := client.New(p.URL, client.WithHTTPClient(&http.Client{Transport: &http.Transport{}}))
	ctx := testCtx(t)

	res, err := c.Publish(ctx, "once",
		client.Message{Event: "token", Data: "a"}, client.Message{Data: "b"}, client.Message{Data: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if p.drops.Load() != 1 || p.conns.Load() != 2 {
		t.Fatalf("the proxy dropped %d answers over %d connections; want 1 over 2", p.drops.Load(), p.conns.Load())
	}
	if len(res.IDs) != 3 || !res.Replayed {
		t.Fatalf("publish answer: %+v; want 3 ids, replayed", res)
	}
	h, err := client.New(b.URL).History(ctx, "once", client.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Events) != 3 {
		t.Fatalf("history holds %d events, want 3: %+v", len(h.Events), h.Events)
	}
	for i, e := range h.Events {
		if e.ID != res.IDs[i] || e.Data != []string{"a", "b", "c"}[i] {
			t.Fatalf("history event %d: %+v; ids %v", i, e, res.IDs)
		}
	}
}

// faultFront is an HTTP front of the broker that answers the first
// `fail` requests with status itself and passes the others on; it records
// the Idempotency-Key of every request.
type faultFront struct {
	URL  string
	mu   sync.Mutex
	keys []string
}

func startFaultFront(t *testing.T, brokerURL string, fail int, status int, retryAfter string) *faultFront {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	f := &faultFront{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
		n := len(f.keys)
		f.mu.Unlock()
		if n <= fail {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":"store_unavailable","message":"the store does not answer"}`))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *faultFront) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...)
}

func TestPublishRetries503WithTheSameKey(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	f := startFaultFront(t, b.URL, 2, http.StatusServiceUnavailable, "")
	c := client.New(f.URL)
	ctx := testCtx(t)

	res, err := c.Publish(ctx, "retried", client.Message{Data: "x"})
	if err != nil {
		t.Fatal(err)
	}
	keys := f.seen()
	if len(keys) != 3 || keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] {
		t.Fatalf("keys of the attempts: %q; want 3 equal, non-empty", keys)
	}
	if len(res.IDs) != 1 || res.Replayed {
		t.Fatalf("answer: %+v", res)
	}
	// A second call has a key of its own.
	if _, err := c.Publish(ctx, "retried", client.Message{Data: "y"}); err != nil {
		t.Fatal(err)
	}
	if keys = f.seen(); len(keys) != 4 || keys[3] == keys[0] || keys[3] == "" {
		t.Fatalf("the second call reused the key: %q", keys)
	}
	h, err := c.History(ctx, "retried", client.HistoryOptions{})
	if err != nil || len(h.Events) != 2 {
		t.Fatalf("history: %+v, %v", h, err)
	}
}

func TestPublishGivesUpAfterTheAttempts(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	f := startFaultFront(t, b.URL, 1000, http.StatusServiceUnavailable, "")
	c := client.New(f.URL, client.WithPublishAttempts(3))
	_, err := c.Publish(testCtx(t), "down", client.Message{Data: "x"})
	wantAPIError(t, "publish while the store is down", err, http.StatusServiceUnavailable, "store_unavailable", client.ErrStoreUnavailable)
	if n := len(f.seen()); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	// A 503 may come after the store took the events.
	if pe := publishError(t, err); !pe.MaybePublished || pe.Key != f.seen()[0] {
		t.Fatalf("after three 503s: %+v, want MaybePublished and the attempts' key", pe)
	}
}

// publishError returns err's *PublishError.
func publishError(t *testing.T, err error) *client.PublishError {
	t.Helper()
	var pe *client.PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *PublishError", err)
	}
	return pe
}

// A Publish whose every answer was lost may have published: its error says
// so, with the key. PublishWithKey with that key then answers the stored
// events' ids and publishes nothing; a new Publish would have published
// them a second time.
func TestLostPublishIsSettledWithItsKey(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	p := startProxy(t, b.URL, func(int) plan { return plan{dropAnswer: true} })
	c := client.New(p.URL, client.WithHTTPClient(&http.Client{Transport: &http.Transport{}}), client.WithPublishAttempts(3))
	ctx := testCtx(t)
	msg := client.Message{Data: "charge the card"}
	_, err := c.Publish(ctx, "settle", msg)
	pe := publishError(t, err)
	if !pe.MaybePublished || pe.Key == "" || p.drops.Load() != 3 {
		t.Fatalf("after 3 lost answers: %v (%+v, %d drops), want MaybePublished with a key", err, pe, p.drops.Load())
	}
	res, err := client.New(b.URL).PublishWithKey(ctx, "settle", pe.Key, msg)
	if err != nil || !res.Replayed || len(res.IDs) != 1 {
		t.Fatalf("PublishWithKey with the lost publish's key: %+v, %v; want the stored event's id, replayed", res, err)
	}
	h, err := client.New(b.URL).History(ctx, "settle", client.HistoryOptions{})
	if err != nil || len(h.Events) != 1 || h.Events[0].ID != res.IDs[0] {
		t.Fatalf("history %+v, %v; want the one event %v", h.Events, err, res.IDs)
	}
	// The key is the caller's to choose, too.
	if _, err := c.PublishWithKey(ctx, "settle", "bad\nkey", msg); err == nil {
		t.Fatal("a key with a newline was sent")
	}
}

// A broker that takes the request and never answers costs one attempt
// timeout, not the caller's whole context: the attempt is given up and
// retried, and the error says the event may have been published.
func TestPublishAttemptsTimeOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			defer conn.Close() // held open, never answered
		}
	}()
	c := client.New("http://"+ln.Addr().String(), client.WithAttemptTimeout(200*time.Millisecond), client.WithPublishAttempts(2))
	start := time.Now()
	_, err = c.Publish(context.Background(), "hung", client.Message{Data: "x"})
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Publish to a broker that never answers took %v", d)
	}
	if pe := publishError(t, err); !pe.MaybePublished || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v: want the attempts' timeout, MaybePublished", err)
	}
	if n := accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 attempts", n)
	}
}

// A connection that cannot be made sent nothing: not MaybePublished.
func TestRefusedConnectionPublishedNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = client.New("http://"+addr, client.WithPublishAttempts(2)).Publish(testCtx(t), "s", client.Message{Data: "x"})
	if pe := publishError(t, err); pe.MaybePublished {
		t.Fatalf("a refused connection: %v, want not MaybePublished", err)
	}
}

// A token that can never be sent (a newline read from a file with it)
// fails at once, not after every retry.
func TestUnsendableTokenFailsAtOnce(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	c := client.New(b.URL, client.WithToken("eyJ.x.y\n"))
	start := time.Now()
	_, err := c.Publish(testCtx(t), "s", client.Message{Data: "x"})
	if err == nil || !strings.Contains(err.Error(), "control character") || time.Since(start) > time.Second {
		t.Fatalf("publish with a token ending in a newline: %v after %v, want an error at once", err, time.Since(start))
	}
	if pe := publishError(t, err); pe.MaybePublished {
		t.Fatalf("nothing was sent: %+v", pe)
	}
	for _, err := range c.Subscribe(testCtx(t), "s", client.SubscribeOptions{}) {
		if err == nil || !strings.Contains(err.Error(), "control character") {
			t.Fatalf("subscribe with the token: %v, want the error at once", err)
		}
	}
	for _, err := range client.New(b.URL).Subscribe(testCtx(t), "s", client.SubscribeOptions{From: "5\n"}) {
		if err == nil || !strings.Contains(err.Error(), "control character") {
			t.Fatalf("subscribe from \"5\\n\": %v, want the error at once", err)
		}
	}
}

func TestPublishHonoursRetryAfterAndContext(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	f := startFaultFront(t, b.URL, 1000, http.StatusServiceUnavailable, "30")
	c := client.New(f.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Publish(ctx, "slow", client.Message{Data: "x"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the context's error, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("publish took %v after its context ended", d)
	}
	if n := len(f.seen()); n != 1 {
		t.Fatalf("%d attempts within a 30s Retry-After, want 1", n)
	}
}

// A 429 is retried with the same key once its Retry-After has passed, as
// the Python and Node examples do: a publisher over the rate still gets
// its events stored, once.
func TestPublishRetries429AfterRetryAfter(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	f := startFaultFront(t, b.URL, 1, http.StatusTooManyRequests, "1")
	start := time.Now()
	res, err := client.New(f.URL).Publish(testCtx(t), "limited", client.Message{Data: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("retried after %v, before the 1 s Retry-After", waited)
	}
	if keys := f.seen(); len(keys) != 2 || keys[0] == "" || keys[1] != keys[0] {
		t.Fatalf("keys of the attempts: %q; want 2 equal, non-empty", keys)
	}
	if len(res.IDs) != 1 || res.Replayed {
		t.Fatalf("answer: %+v", res)
	}
}

func TestPublishNeverRetries4xx(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusConflict} {
		f := startFaultFront(t, b.URL, 1000, status, "1")
		_, err := client.New(f.URL).Publish(testCtx(t), "s", client.Message{Data: "x"})
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != status {
			t.Fatalf("status %d: got %v", status, err)
		}
		if publishError(t, err).MaybePublished {
			t.Fatalf("status %d stored nothing, but the error says it may have: %v", status, err)
		}
		if n := len(f.seen()); n != 1 {
			t.Fatalf("status %d: %d attempts, want 1", status, n)
		}
	}
	// And through the real broker: a reserved name is refused once.
	f := startFaultFront(t, b.URL, 0, 0, "")
	_, err := client.New(f.URL).Publish(testCtx(t), "s", client.Message{Event: "stop"})
	wantAPIError(t, "publish stop", err, http.StatusBadRequest, "invalid_event", nil)
	if n := len(f.seen()); n != 1 {
		t.Fatalf("%d attempts of a 400, want 1", n)
	}
}

// A publish the broker read before it died may be stored. net/http sends
// a request with an Idempotency-Key again on a new connection when the
// reused one breaks, and returns that try's error, here a refused dial:
// the error must still say the events may have been published.
func TestPublishReadThenCrashMayBePublished(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reads.Add(1) == 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"stream":"s","ids":["1"]}`))
			return
		}
		// Read (and stored, say); then the broker dies before it answers.
		ln.Close()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	c := client.New("http://"+ln.Addr().String(), client.WithPublishAttempts(1))
	if _, err := c.Publish(testCtx(t), "s", client.Message{Data: "warm"}); err != nil {
		t.Fatal(err) // the connection that will be reused
	}
	_, err = c.Publish(testCtx(t), "s", client.Message{Data: "x"})
	if pe := publishError(t, err); reads.Load() != 2 || !pe.MaybePublished {
		t.Fatalf("the broker read %d publishes, then died: %v, want MaybePublished", reads.Load(), err)
	}
}

// A request cut off while it is being sent never went out whole, so the
// broker cannot have stored it: not MaybePublished. (The broker here reads
// the headers and resets the connection; the body is far larger than the
// socket buffers, so its write fails.)
func TestPublishCutOffWhileSendingPublishedNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = conn.Read(buf) // the headers, and maybe the body's start
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close() // a reset, with the rest of the body unread
		}
	}()
	big := strings.Repeat("x", 32<<20)
	_, err = client.New("http://"+ln.Addr().String(), client.WithPublishAttempts(1)).Publish(testCtx(t), "s", client.Message{Data: big})
	if pe := publishError(t, err); pe.MaybePublished {
		t.Fatalf("a publish cut off before its body was sent: %v, want not MaybePublished", err)
	}
}

// A TLS handshake that fails sends nothing: not MaybePublished.
func TestFailedHandshakePublishedNothing(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the request reached the handler")
	}))
	defer ts.Close()
	// The default client does not trust the test server's certificate.
	_, err := client.New(ts.URL, client.WithPublishAttempts(1)).Publish(testCtx(t), "s", client.Message{Data: "x"})
	if pe := publishError(t, err); pe.MaybePublished {
		t.Fatalf("a failed handshake: %v, want not MaybePublished", err)
	}
}

package writepath

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	r3sse "github.com/r3labs/sse/v2"

	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/broker"
)

// payload is the data of every published event, for both servers: 32
// bytes, no line break, not starting with ':' (r3labs would write such
// data as a comment line).
const payload = "0123456789abcdef0123456789abcdef"

// window and checkEvery pace the publisher: every checkEvery rounds it
// waits until the slowest subscriber is at most window events behind, so
// no subscriber ever lags more than window+checkEvery. That stands in for
// the backpressure a real publisher gets from the network, is the same for
// both servers, and stays well below our subscriber queue (256 frames, the
// production default), so a subscriber that is merely scheduled late is
// never cut off as slow. (Pacing on the average lag instead does get
// single subscribers cut off.) r3labs blocks the publisher on its own only
// beyond 64 events per subscriber plus 1024 per stream.
const (
	window     = 64
	checkEvery = 16
)

// stallTimeout fails a run in which nothing is delivered for this long,
// instead of hanging until the test binary's own timeout.
const stallTimeout = 30 * time.Second

// target is one running SSE server as the harness drives it.
type target struct {
	// url is the subscribe URL of stream.
	url func(stream string) string
	// publish publishes one event with payload as data to stream,
	// in-process, the way the server's own publish endpoint would after
	// decoding the request.
	publish func(stream string) error
	// preamble is how many "\n\n"-terminated blocks the server writes on
	// a new subscription before any event (ours: the retry block).
	preamble int
}

// impl starts a server whose cleanup is registered on tb.
type impl struct {
	name  string
	start func(tb testing.TB) *target
}

var impls = []impl{
	{"ours", startOurs},
	{"r3labs", startR3labs},
}

// startOurs runs our whole broker (memory store, hub, api.Server behind
// chi and its middleware) on a loopback listener, with the production
// default queue (256 frames). The heartbeat is pushed out of the way so
// that no comment block lands in a measured stream.
func startOurs(tb testing.TB) *target {
	b := testbroker.Start(tb, testbroker.Options{NoDemo: true, Heartbeat: time.Hour})
	ctx := context.Background()
	return &target{
		url: func(stream string) string { return b.URL + "/v1/streams/" + stream + "/events" },
		publish: func(stream string) error {
			// A fresh message per publish, as a decoded POST body would be.
			_, err := b.Broker.Publish(ctx, stream, []broker.Message{{Data: payload}}, "")
			return err
		},
		preamble: 1, // "retry: 3000\n\n"
	}
}

// startR3labs runs r3labs' server the way its README shows (a ServeMux
// entry for /events, streams chosen by ?stream=), with AutoStream on so
// subscribers create their streams, and AutoReplay off (with it on, the
// event log grows without bound and rewrites every event's id).
func startR3labs(tb testing.TB) *target {
	srv := r3sse.New()
	srv.AutoReplay = false
	srv.AutoStream = true
	mux := http.NewServeMux()
	mux.HandleFunc("/events", srv.ServeHTTP)
	ts := httptest.NewServer(mux)
	tb.Cleanup(func() {
		ts.Close() // subscribers are gone by now: their handlers have ended
		srv.Close()
	})
	data := []byte(payload)
	return &target{
		url: func(stream string) string { return ts.URL + "/events?stream=" + stream },
		publish: func(stream string) error {
			// Publish to a stream that does not exist is silently dropped;
			// make that an error rather than a hang.
			if !srv.StreamExists(stream) {
				return fmt.Errorf("r3labs: stream %q does not exist", stream)
			}
			// A fresh event per publish: r3labs hands the pointer to every
			// subscriber's goroutine, so it cannot be reused.
			srv.Publish(stream, &r3sse.Event{Data: data})
			return nil
		},
	}
}

// startBlocking is the baseline of the idle-memory benchmark: a handler
// that answers the SSE headers, flushes, and blocks until the client goes.
func startBlocking(tb testing.TB) *target {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	tb.Cleanup(ts.Close)
	return &target{
		url:     func(stream string) string { return ts.URL + "/events?stream=" + stream },
		publish: func(string) error { return errors.New("the blocking handler takes no events") },
	}
}

// shape is streams × subscribers per stream.
type shape struct{ streams, perStream int }

func (s shape) String() string { return fmt.Sprintf("%dx%d", s.streams, s.perStream) }

func (s shape) subscribers() int { return s.streams * s.perStream }

// streamNames returns the stream ids of a shape.
func (s shape) streamNames() []string {
	names := make([]string, s.streams)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%d", i)
	}
	return names
}

// subscribeURLs returns one URL per subscriber, perStream for each stream.
func (s shape) subscribeURLs(t *target) []string {
	var urls []string
	for _, name := range s.streamNames() {
		for range s.perStream {
			urls = append(urls, t.url(name))
		}
	}
	return urls
}

// eventCounter counts complete SSE blocks in a byte stream that arrives
// in arbitrary chunks: a block ends at "\n\n". The count over any chunking
// equals bytes.Count(whole stream, "\n\n"); neither server writes CR, and
// our payload has no line break, so that is exactly one per event (plus
// the preamble).
type eventCounter struct {
	pendingLF bool // the last byte fed is an LF not yet paired with another
}

var lflf = []byte("\n\n")

// feed returns the number of blocks that p completes.
func (c *eventCounter) feed(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	n := 0
	if c.pendingLF && p[0] == '\n' {
		n, p = 1, p[1:]
	}
	// Whatever came before, pairing starts afresh at p[0]: the previous
	// byte is not an LF, or it already closed a pair.
	c.pendingLF = false
	n += bytes.Count(p, lflf)
	// bytes.Count pairs each run of LFs from its start; a run of odd
	// length at the end leaves one LF waiting for the next chunk.
	run := 0
	for i := len(p) - 1; i >= 0 && p[i] == '\n'; i-- {
		run++
	}
	c.pendingLF = run%2 == 1
	return n
}

// subscribers are N SSE clients over real HTTP on loopback, each read by
// its own goroutine that only counts events.
type subscribers struct {
	subs []subscriber
	wake chan struct{} // capacity 1: some subscriber's count reached its want

	stopping atomic.Bool   // set before teardown: read errors are expected
	failed   chan struct{} // closed on the first failure
	failOnce sync.Once
	err      error // the first failure; written before failed is closed

	ready sync.WaitGroup // every subscriber has read its preamble
	done  sync.WaitGroup // every reader goroutine has returned

	record []bytes.Buffer // raw bytes per subscriber, when recording
}

// subscriber is one reader's progress, alone on its cache line.
type subscriber struct {
	count atomic.Int64 // events read, preamble excluded
	want  atomic.Int64 // the publisher waits for count >= want
	_     [48]byte
}

// count returns subscriber i's events.
func (s *subscribers) count(i int) int64 { return s.subs[i].count.Load() }

// delivered returns the events read by all subscribers.
func (s *subscribers) delivered() int64 {
	var n int64
	for i := range s.subs {
		n += s.subs[i].count.Load()
	}
	return n
}

const readBufSize = 4096

// connect opens one subscription per URL and starts its reader. It
// returns once every server has answered and every preamble has been read,
// so every subscriber is registered with its stream. Teardown (cancel
// every request, wait for the readers, close the client's connections) is
// registered on tb.
func connect(tb testing.TB, urls []string, preamble int, record bool) *subscribers {
	tb.Helper()
	s := &subscribers{
		subs:   make([]subscriber, len(urls)),
		wake:   make(chan struct{}, 1),
		failed: make(chan struct{}),
	}
	for i := range s.subs {
		s.subs[i].want.Store(math.MaxInt64)
	}
	if record {
		s.record = make([]bytes.Buffer, len(urls))
	}
	transport := &http.Transport{
		Proxy:               nil,
		MaxConnsPerHost:     len(urls) + 16,
		MaxIdleConnsPerHost: len(urls) + 16,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: transport}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(func() {
		s.stopping.Store(true)
		cancel()
		s.done.Wait()
		transport.CloseIdleConnections()
	})

	// Open the connections from a few goroutines at once: setup only.
	var (
		next    atomic.Int64
		mu      sync.Mutex
		openErr error
		workers sync.WaitGroup
	)
	for range min(32, len(urls)) {
		workers.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(urls) {
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, urls[i], nil)
				if err != nil {
					panic(err)
				}
				res, err := client.Do(req)
				if err == nil && res.StatusCode != http.StatusOK {
					res.Body.Close()
					err = fmt.Errorf("status %s", res.Status)
				}
				if err != nil {
					mu.Lock()
					openErr = errors.Join(openErr, fmt.Errorf("subscribe %s: %w", urls[i], err))
					mu.Unlock()
					continue
				}
				s.ready.Add(1)
				s.done.Add(1)
				go s.read(i, res.Body, preamble)
			}
		})
	}
	workers.Wait()
	if openErr != nil {
		tb.Fatal(openErr)
	}
	allReady := make(chan struct{})
	go func() { s.ready.Wait(); close(allReady) }()
	select {
	case <-allReady:
	case <-s.failed:
		tb.Fatal(s.err)
	case <-time.After(stallTimeout):
		tb.Fatalf("subscribers did not get their preamble within %v", stallTimeout)
	}
	return s
}

func (s *subscribers) fail(err error) {
	s.failOnce.Do(func() {
		s.err = err
		close(s.failed)
	})
}

// read counts the events of one subscription until its body ends.
func (s *subscribers) read(i int, body io.ReadCloser, preamble int) {
	defer s.done.Done()
	defer body.Close()
	skip := int64(preamble)
	if skip == 0 {
		s.ready.Done()
	}
	var c eventCounter
	me := &s.subs[i]
	buf := make([]byte, readBufSize)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if s.record != nil {
				s.record[i].Write(buf[:n])
			}
			k := int64(c.feed(buf[:n]))
			if skip > 0 && k > 0 {
				d := min(skip, k)
				skip, k = skip-d, k-d
				if skip == 0 {
					s.ready.Done()
				}
			}
			if k > 0 {
				if me.count.Add(k) >= me.want.Load() {
					select {
					case s.wake <- struct{}{}:
					default:
					}
				}
			}
		}
		if err != nil {
			if skip > 0 {
				s.ready.Done()
			}
			if !s.stopping.Load() {
				s.fail(fmt.Errorf("subscriber %d: stream ended after %d events: %v", i, me.count.Load(), err))
			}
			return
		}
	}
}

// waitAll blocks until every subscriber has read at least need events.
// It does not allocate.
func (s *subscribers) waitAll(need int64, stall *time.Timer) error {
	for i := range s.subs {
		if err := s.wait(i, need, stall); err != nil {
			return err
		}
	}
	return nil
}

func (s *subscribers) wait(i int, need int64, stall *time.Timer) error {
	sub := &s.subs[i]
	if sub.count.Load() >= need {
		return nil
	}
	defer sub.want.Store(math.MaxInt64)
	for {
		sub.want.Store(need)
		// Check after the Store: a reader that added before it saw the
		// old want and sent no wake-up.
		if sub.count.Load() >= need {
			return nil
		}
		stall.Reset(stallTimeout)
		select {
		case <-s.wake: // maybe stale: check again
		case <-s.failed:
			return s.err
		case <-stall.C:
			return fmt.Errorf("stalled: subscriber %d read %d of %d events, no progress for %v", i, sub.count.Load(), need, stallTimeout)
		}
	}
}

// fanout is one server with its subscribers, ready to publish.
type fanout struct {
	target  *target
	streams []string
	subs    *subscribers
	n       int // subscribers in all
}

func startFanout(tb testing.TB, im impl, sh shape, record bool) *fanout {
	tb.Helper()
	t := im.start(tb)
	return &fanout{
		target:  t,
		streams: sh.streamNames(),
		subs:    connect(tb, sh.subscribeURLs(t), t.preamble, record),
		n:       sh.subscribers(),
	}
}

// run publishes rounds rounds of one event to every stream, never more
// than window+checkEvery rounds ahead of the slowest subscriber, and
// returns once every subscriber has received every event.
func (f *fanout) run(rounds, window, checkEvery int) error {
	stall := time.NewTimer(stallTimeout)
	defer stall.Stop()
	for i := range rounds {
		if i > window && i%checkEvery == 0 {
			if err := f.subs.waitAll(int64(i-window), stall); err != nil {
				return err
			}
		}
		for _, stream := range f.streams {
			if err := f.target.publish(stream); err != nil {
				return err
			}
		}
	}
	return f.subs.waitAll(int64(rounds), stall)
}

// scope is a testing.TB whose cleanups run when close is called (or at
// the end of the test at the latest), so one benchmark can start and tear
// down several servers in turn.
type scope struct {
	testing.TB
	mu  sync.Mutex
	fns []func()
}

func newScope(tb testing.TB) *scope {
	s := &scope{TB: tb}
	tb.Cleanup(s.close)
	return s
}

func (s *scope) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fns = append(s.fns, f)
}

func (s *scope) close() {
	s.mu.Lock()
	fns := s.fns
	s.fns = nil
	s.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// memory is what the runtime holds for live objects (heap spans in use)
// and for goroutine stacks.
type memory struct{ heap, stack int64 }

func (m memory) total() int64 { return m.heap + m.stack }

// inUse reads memory after two collections (the second frees what
// finalizers run by the first released).
func inUse() memory {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memory{heap: int64(m.HeapInuse), stack: int64(m.StackInuse)}
}

// idleBytes starts a server, connects sh's subscribers and returns how
// much inUse grew, then tears everything down.
func idleBytes(tb testing.TB, start func(testing.TB) *target, sh shape) memory {
	tb.Helper()
	sc := newScope(tb)
	defer sc.close()
	t := start(sc)
	before := inUse()
	subs := connect(sc, sh.subscribeURLs(t), t.preamble, false)
	after := inUse()
	runtime.KeepAlive(subs)
	return memory{heap: after.heap - before.heap, stack: after.stack - before.stack}
}

package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/pkg/broker"
)

// A parked subscription holds no goroutine and no buffer while it waits.
//
// An SSE connection is idle almost all its life. Left to net/http, an idle
// one costs its goroutine's stack (8 KiB once a request has run on it),
// the connection's 4 KiB read and 4 KiB write buffers and the response's
// 2 KiB one: about 30 KB of RSS per subscriber, the same as a naive
// server's. So on plain HTTP/1.x the subscribe handler takes the
// connection over from net/http (Hijack), writes the response head and the
// backlog itself, registers a wake function with its subscription and
// returns. What stays is the socket, the subscription and this struct.
//
// When the hub has frames for it, or a heartbeat is due, or the broker
// drains or the token expires, wake starts one goroutine that writes
// everything queued in one chunk and exits (at once, or a moment later
// when the node is busy: see coalescer). That goroutine comes from the
// runtime's free list and its buffer from a pool, so a delivery allocates
// nothing in steady state.
//
// A goroutine blocked in net/http notices a client that hangs up at once,
// because it keeps reading the connection. A parked subscription is told
// by the hang-up watcher (one epoll goroutine for all of them, on Linux),
// and elsewhere notices on its next write, or at its next heartbeat (a
// non-blocking peek, no goroutine): a vanished client is let go within one
// heartbeat interval at worst.
//
// HTTP/2 and TLS connections cannot be taken over this way and stay on the
// goroutine path (serveLive).
type parkedSubscription struct {
	srv  *Server
	conn net.Conn
	// raw is the socket for the liveness peek; nil when conn has none.
	raw syscall.RawConn
	sub *broker.Subscription
	log zerolog.Logger

	// state schedules deliveries: one goroutine at a time, and a wake
	// that arrives while it runs makes it go round once more.
	state atomic.Int32
	// queued: this delivery is counted in the coalescer's pending, from
	// its start until its first write. Only the goroutine that owns the
	// delivery (state parkRunning) touches it.
	queued bool
	// expired is set by the token's expiry timer (nil without auth).
	expired atomic.Bool
	expiry  *time.Timer
	// hangup is set when the hang-up watcher saw the client go;
	// hangupKey is the watcher's key for this connection (under its lock).
	hangup    atomic.Bool
	hangupKey uint64

	// buf is the chunk being written; it comes from chunkPool for one
	// delivery and goes back after it.
	buf *[]byte
	// run and write are method values made once, so that scheduling and
	// draining do not allocate.
	run   func()
	write broker.WriteFunc

	// For the request's line, written when the subscription ends: when
	// its handler started, what it asked, and (owned like buf) the body
	// bytes that went out, the events of the chunks written whole, and the
	// events in the chunk being built.
	started                  time.Time
	method, path             string
	bytesWritten, eventsSent int64
	chunkEvents              int64
}

const (
	parkIdle    int32 = iota // no delivery goroutine
	parkRunning              // a delivery goroutine runs
	parkRerun                // ... and must go round once more
)

// chunkHeaderRoom is kept at the start of a chunk buffer for the chunk's
// size line: the hex digits of any length and CRLF. (One event makes one
// chunk however large it is, and publish.max_body has no upper bound, so
// 8 digits, 4 GiB, would not always do.)
const chunkHeaderRoom = len("ffffffffffffffff\r\n")

// maxPooledChunk bounds the buffers kept in chunkPool; a bigger delivery
// (a long backlog, large events) writes in several chunks of about this size.
const maxPooledChunk = 64 << 10

var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, chunkHeaderRoom, 4<<10)
	return &b
}}

// parkRegistry is the set of this Server's parked subscriptions, for
// Shutdown: net/http forgets connections it handed over. setup counts the
// subscribe handlers still setting up, which may yet park.
type parkRegistry struct {
	mu    sync.Mutex
	set   map[*parkedSubscription]struct{}
	setup int
}

func (pr *parkRegistry) setupStarted() {
	pr.mu.Lock()
	pr.setup++
	pr.mu.Unlock()
}

func (pr *parkRegistry) setupDone() {
	pr.mu.Lock()
	pr.setup--
	pr.mu.Unlock()
}

func (pr *parkRegistry) add(p *parkedSubscription) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.set == nil {
		pr.set = make(map[*parkedSubscription]struct{})
	}
	pr.set[p] = struct{}{}
}

func (pr *parkRegistry) remove(p *parkedSubscription) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	delete(pr.set, p)
}

// wait returns once every parked subscription has ended and no subscribe
// handler is still setting up, or ctx has ended. It polls: it runs at
// shutdown, and a WaitGroup could not take the subscriptions that still
// park while it waits.
func (pr *parkRegistry) wait(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		pr.mu.Lock()
		n := len(pr.set) + pr.setup
		pr.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d parked or starting subscriptions to end: %w", n, ctx.Err())
		case <-t.C:
		}
	}
}

// cutWrites moves the write deadline of every parked subscription to at
// most d from now (see liveWriters).
func (pr *parkRegistry) cutWrites(d time.Duration) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	deadline := time.Now().Add(d)
	for p := range pr.set {
		_ = p.conn.SetWriteDeadline(deadline)
	}
}

// wakeAll wakes every parked subscription (they then see the drain).
func (pr *parkRegistry) wakeAll() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for p := range pr.set {
		p.wake()
	}
}

// canPark reports whether r's connection can be taken over: plain
// HTTP/1.1. (A TLS connection could be, but its writes would then block a
// delivery goroutine the way a socket write does not, and HTTP/2 streams
// share their connection. An HTTP/1.0 client cannot read the chunked
// answer a parked subscription writes; net/http answers it unchunked.)
func canPark(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.ProtoMinor >= 1 && r.TLS == nil
}

// hijack takes w's connection over from net/http. It fails, having
// written nothing, when w cannot be hijacked (then the goroutine path
// serves the subscription).
func hijack(w http.ResponseWriter) (net.Conn, error) {
	// A GET has no body and an EventSource sends nothing more, so the
	// buffered reader and writer net/http hands over are dropped, and
	// their 8 KiB with them.
	conn, _, err := http.NewResponseController(w).Hijack()
	return conn, err
}

// newParkedSubscription wraps a hijacked connection; started is when the
// subscribe handler started.
func (s *Server) newParkedSubscription(r *http.Request, conn net.Conn, sub *broker.Subscription, started time.Time) *parkedSubscription {
	p := &parkedSubscription{
		srv: s, conn: conn, sub: sub, log: *subscriptionLog(r, sub),
		started: started, method: r.Method, path: r.URL.Path,
	}
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			p.raw = raw
		}
	}
	p.run = p.deliverLoop
	p.write = p.appendWire
	// Running until park hands over: the goroutine setting it up is its
	// delivery goroutine so far, and wakes meanwhile only ask for a rerun.
	p.state.Store(parkRunning)
	return p
}

// writeHead writes the status line and headers of a chunked 200 answer:
// w's headers (request id, CORS) and the event-stream ones. The response
// ends by closing the connection.
func writeHead(dst []byte, h http.Header) []byte {
	dst = append(dst, "HTTP/1.1 200 OK\r\n"...)
	setStreamHeaders(h)
	h.Set("Transfer-Encoding", "chunked")
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	for k, vs := range h {
		for _, v := range vs {
			dst = append(dst, k...)
			dst = append(dst, ": "...)
			dst = append(dst, v...)
			dst = append(dst, "\r\n"...)
		}
	}
	return append(dst, "\r\n"...)
}

// park starts the parked life of a subscription whose head and backlog
// are written: from now on the hub's wake schedules its deliveries.
func (s *Server) park(r *http.Request, p *parkedSubscription) {
	s.hangups.watch(p)
	p.sub.OnReady(p.wake)
	if end, ok := s.sessionEnd(r); ok {
		p.expiry = time.AfterFunc(time.Until(end), func() {
			p.expired.Store(true)
			p.wake()
		})
	}
	if s.isDraining.Load() {
		p.wake() // Shutdown's wakeAll may have run before parked.add
	}
	// Hand over. A wake that came during the set-up (frames, Shutdown)
	// left a rerun: deliver it now.
	if !p.state.CompareAndSwap(parkRunning, parkIdle) {
		p.state.Store(parkRunning)
		s.coalesce.start(p)
	}
}

// wake schedules a delivery. It never blocks: it runs under the hub's
// locks.
func (p *parkedSubscription) wake() {
	for {
		switch st := p.state.Load(); st {
		case parkIdle:
			if p.state.CompareAndSwap(parkIdle, parkRunning) {
				p.srv.coalesce.start(p)
				return
			}
		case parkRunning:
			if p.state.CompareAndSwap(parkRunning, parkRerun) {
				return
			}
		default: // parkRerun: already asked
			return
		}
	}
}

// deliverLoop is one delivery goroutine's life: deliver until no wake
// came in meanwhile, or end the subscription. A wake that came while the
// node is busy is left to the coalescer, like the first one. After the
// CompareAndSwap to idle, or hold, another goroutine may own p: nothing
// here touches p after either.
func (p *parkedSubscription) deliverLoop() {
	c := p.srv.coalesce
	for {
		ok := p.deliver()
		p.leaveQueue() // when it did not write
		if !ok {
			return // ended: state stays running, so wake starts nothing more
		}
		if p.state.CompareAndSwap(parkRunning, parkIdle) {
			return
		}
		p.state.Store(parkRunning) // a wake came during the delivery
		if c.busy() {
			c.hold(p)
			return
		}
		p.enterQueue()
	}
}

// enterQueue counts a delivery about to start in the coalescer's pending;
// leaveQueue counts it off, at its first write or its end, whichever
// comes first.
func (p *parkedSubscription) enterQueue() {
	p.queued = true
	p.srv.coalesce.pending.Add(1)
}

func (p *parkedSubscription) leaveQueue() {
	if p.queued {
		p.queued = false
		p.srv.coalesce.pending.Add(-1)
	}
}

// deliver writes what is queued (or a heartbeat) in one chunk. It returns
// false once the subscription has ended.
func (p *parkedSubscription) deliver() bool {
	switch {
	case p.srv.isDraining.Load():
		p.end(broker.EndNone, nil, "draining")
		return false
	case p.expired.Load():
		p.end(broker.EndNone, nil, "token_expired")
		return false
	case p.hangup.Load():
		p.end(broker.EndNone, errPeerGone, "")
		return false
	}
	p.buf = chunkPool.Get().(*[]byte)
	defer p.releaseBuffer()
	reason, err := p.sub.Drain(p.write)
	if err == nil && p.sub.HeartbeatDue() && len(*p.buf) == chunkHeaderRoom {
		if p.peerGone() {
			p.end(broker.EndNone, errPeerGone, "")
			return false
		}
		*p.buf = append(*p.buf, heartbeatComment...)
	}
	if err == nil {
		err = p.flushChunk()
	}
	if err != nil || reason != broker.EndNone {
		p.end(reason, err, "")
		return false
	}
	return true
}

func (p *parkedSubscription) releaseBuffer() {
	if cap(*p.buf) <= maxPooledChunk {
		*p.buf = (*p.buf)[:chunkHeaderRoom]
		chunkPool.Put(p.buf)
	}
	p.buf = nil
}

// appendWire is the subscription's broker.WriteFunc: it adds wire to the
// chunk, writing the chunk out first when it has grown large.
func (p *parkedSubscription) appendWire(wire []byte, events int, published time.Time) error {
	if len(*p.buf) > chunkHeaderRoom && len(*p.buf)+len(wire) > maxPooledChunk {
		if err := p.flushChunk(); err != nil {
			return err
		}
	}
	*p.buf = append(*p.buf, wire...)
	p.chunkEvents += int64(events)
	p.srv.metrics.observeDelivery(events, published)
	return nil
}

// flushChunk writes the buffered bytes as one HTTP/1.1 chunk.
func (p *parkedSubscription) flushChunk() error {
	b := *p.buf
	n := len(b) - chunkHeaderRoom
	if n == 0 {
		return nil
	}
	// The size line goes right before the data, in the room kept for it.
	var size [chunkHeaderRoom]byte
	line := append(strconv.AppendUint(size[:0], uint64(n), 16), '\r', '\n')
	start := chunkHeaderRoom - len(line)
	copy(b[start:], line)
	b = append(b, '\r', '\n')
	p.leaveQueue() // a write may block for the whole timeout
	p.srv.armWriteDeadline(p.conn)
	out, err := p.conn.Write(b[start:])
	*p.buf = b[:chunkHeaderRoom]
	p.bytesWritten += int64(min(max(out-len(line), 0), n)) // of a write cut short too
	if err == nil {
		p.eventsSent += p.chunkEvents
	}
	p.chunkEvents = 0
	return err
}

// lastChunk ends a chunked body.
var lastChunk = []byte("0\r\n\r\n")

// errPeerGone: the liveness peek found the client's side closed.
var errPeerGone = errors.New("client closed the connection")

// end ends the subscription: the last chunk when the end is the broker's
// (the client then sees a complete response and reconnects or, after
// stop, is done), the connection closed, and its place on the node freed.
// It ended for reason (the broker's), or for err (the connection's), or
// for why ("draining", "token_expired") when it is neither.
func (p *parkedSubscription) end(reason broker.EndReason, err error, why string) {
	if err == nil {
		p.leaveQueue()
		p.srv.armWriteDeadline(p.conn)
		_, err = p.conn.Write(lastChunk)
	}
	reason = endReason(p.sub, reason)
	p.srv.hangups.unwatch(p) // before Close: the descriptor is still p's
	_ = p.conn.Close()
	if p.expiry != nil {
		p.expiry.Stop()
	}
	p.sub.Close()
	p.srv.heartbeats.leave()
	p.srv.parked.remove(p)
	if why != "" {
		p.log.Debug().Str("end", why).Msg("subscription ended")
	} else {
		logEnd(&p.log, reason, err)
	}
	accessLine(&p.log, p.method, p.path, http.StatusOK, p.bytesWritten, time.Since(p.started)).
		Int64("events", p.eventsSent).Str("end", endCause(reason, err, why)).Msg("request")
}

// endCause names, in a parked subscription's request line, why it ended:
// the broker's reason (stopped, deleted, slow, resync), or draining,
// token_expired, write_timeout (the client stopped reading and a write's
// deadline passed: the broker let it go) or client_gone.
func endCause(reason broker.EndReason, err error, why string) string {
	switch {
	case reason != broker.EndNone:
		return reason.String()
	case why != "":
		return why
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "write_timeout"
	}
	return "client_gone" // the peek saw it go, or a write failed
}

// peerGone reports, without blocking, whether the client has closed its
// side of the connection (a read would return end of file or an error).
func (p *parkedSubscription) peerGone() bool {
	if p.raw == nil {
		return false
	}
	gone := false
	_ = p.raw.Read(func(fd uintptr) bool {
		gone = peekClosed(fd)
		return true // never wait for readability
	})
	return gone
}

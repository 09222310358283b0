package api

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"

	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/sse"
)

// resumePoint reads the Last-Event-ID header, else the lastEventId query
// parameter (EventSource cannot set headers on its first connection). An
// empty value means no resume point.
func resumePoint(r *http.Request) (uint64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		var err error
		if v, _, err = queryValue(r, "lastEventId"); err != nil {
			return 0, fmt.Errorf("%w: %v", broker.ErrInvalidID, err)
		}
	}
	return broker.ParseID(v)
}

// subscribe is the SSE endpoint. Its whole life: answer the headers and
// the retry block at once, write the gap report and the backlog, then
// deliver everything queued with one write per wake-up, until the stream
// stops, the subscriber falls behind, the client goes away or the broker
// shuts down.
//
// On plain HTTP/1.1 the connection is taken over and parked (see
// parkedSubscription): no goroutine waits for it. Otherwise (TLS, HTTP/2,
// HTTP/1.0, or a connection that cannot be taken over) the handler waits
// in serveLive, on top of net/http's, chi's and the middlewares' frames.
// Everything else (setup, backlog, logging) runs in functions that have
// returned by then, so the waiting goroutine's stack stays under a quarter
// of 16 KiB and the runtime can shrink it at GC.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	sub, sw := s.countedStart(w, r)
	if sub == nil {
		return
	}
	defer s.endSubscription(sub, sw)
	s.serveLive(r, sub, sw)
}

// countedStart is startSubscription counted in s.parked from its start:
// once it hijacks its connection, net/http's Shutdown no longer waits for
// this handler, and Server.Shutdown must. Deferred, so that a panic the
// recoverer turns into a 500 does not leave Shutdown waiting for it.
func (s *Server) countedStart(w http.ResponseWriter, r *http.Request) (*broker.Subscription, *sseWriter) {
	s.parked.setupStarted()
	defer s.parked.setupDone()
	return s.startSubscription(w, r)
}

// endSubscription undoes what startSubscription did for a live
// subscription.
func (s *Server) endSubscription(sub *broker.Subscription, sw *sseWriter) {
	sw.release()
	s.heartbeats.leave()
	sub.Close()
}

// startSubscription answers everything up to the live part: errors, 204,
// or the headers, retry block, gap report and backlog. It returns a nil
// Subscription when the handler has nothing more to do (a closed stream's
// backlog ends with its stop event, or the subscription was parked);
// otherwise endSubscription must follow.
//
//go:noinline
func (s *Server) startSubscription(w http.ResponseWriter, r *http.Request) (*broker.Subscription, *sseWriter) {
	started := time.Now()
	stream, ok := s.streamWithRight(w, r, auth.Subscribe)
	if !ok {
		return nil, nil
	}
	if err := s.allowSubscribe(r); err != nil {
		s.writeError(w, r, err)
		return nil, nil
	}
	after, err := resumePoint(r)
	if err != nil {
		s.writeError(w, r, err)
		return nil, nil
	}
	sub, err := s.broker.Subscribe(r.Context(), stream, after)
	if err != nil {
		s.writeError(w, r, err)
		return nil, nil
	}
	if sub.NoContent {
		// The stream is over for this client: 204 makes EventSource stop.
		sub.Close()
		w.WriteHeader(http.StatusNoContent)
		return nil, nil
	}
	if r.Method == http.MethodHead {
		// The head a GET gets (its errors were answered above), and no
		// subscription.
		sub.Close()
		setStreamHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		return nil, nil
	}
	if canPark(r) {
		if conn, err := hijack(w); err == nil {
			s.startParked(r, w.Header(), conn, sub, started)
			markLoggedAtEnd(w)
			return nil, nil
		}
	}

	// Deferred rather than on each early return: a panic in writeBacklog
	// (answered 500 by the recoverer) must still free the hub place.
	live := false
	var sw *sseWriter
	defer func() {
		if !live {
			if sw != nil {
				sw.release()
			}
			sub.Close()
		}
	}()
	setStreamHeaders(w.Header())
	w.WriteHeader(http.StatusOK)

	sw = s.newSSEWriter(w, r)
	err = s.writeBacklog(sw.writeWire, sub)
	if err == nil {
		err = sw.flush()
	}
	if err != nil {
		return nil, nil
	}
	if sub.Gap {
		logGap(r, sub)
	}
	if !sub.Live() {
		return nil, nil // closed stream: the backlog ended with stop
	}
	sub.Backlog = nil // let the backlog's memory go while the stream lives
	s.heartbeats.join()
	live = true
	return sub, sw
}

// startParked writes the head, retry block, gap report and backlog on a
// hijacked connection, then parks the subscription if it goes on. h holds
// the headers set so far (request id, CORS).
func (s *Server) startParked(r *http.Request, h http.Header, conn net.Conn, sub *broker.Subscription, started time.Time) {
	p := s.newParkedSubscription(r, conn, sub, started)
	// Undone by p.end, whichever way the subscription ends.
	s.heartbeats.join()
	s.parked.add(p)

	s.armWriteDeadline(conn)
	_, err := conn.Write(writeHead(make([]byte, 0, 256), h))
	if err == nil {
		p.buf = chunkPool.Get().(*[]byte)
		err = s.writeBacklog(p.write, sub)
		if err == nil {
			err = p.flushChunk()
		}
		p.releaseBuffer()
	}
	if err != nil {
		p.end(broker.EndNone, err, "")
		return
	}
	if sub.Gap {
		logGap(r, sub)
	}
	if !sub.Live() {
		p.end(broker.EndStopped, nil, "") // closed stream: the backlog ended with stop
		return
	}
	sub.Backlog = nil
	s.park(r, p)
}

// setStreamHeaders sets the headers SPEC asks of every event stream.
func setStreamHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
}

func logGap(r *http.Request, sub *broker.Subscription) {
	subscriptionLog(r, sub).Info().Str("first_id", broker.FormatID(sub.FirstID)).Msg("subscriber resumed across a gap")
}

// writeBacklog writes the retry block, the gap report and the backlog.
func (s *Server) writeBacklog(write broker.WriteFunc, sub *broker.Subscription) error {
	buf := sse.AppendRetry(make([]byte, 0, 128), s.opts.Retry.Milliseconds())
	if sub.Gap {
		buf = appendGap(buf, sub.After, sub.FirstID)
	}
	if err := write(buf, 0, time.Time{}); err != nil {
		return err
	}
	for _, e := range sub.Backlog {
		if err := write(e.Wire, 1, time.Time{}); err != nil {
			return err
		}
	}
	return nil
}

// serveLive is where a subscription served by net/http spends its life. Its frame is small
// and holds pointers only; what it logs is built in logSubscriptionEnd,
// on the way out.
//
//go:noinline
func (s *Server) serveLive(r *http.Request, sub *broker.Subscription, sw *sseWriter) {
	expired := s.tokenExpiry(r)
	done := r.Context().Done()
	ready := sub.Ready()
	for {
		select {
		case <-done:
			return
		case <-s.draining:
			return
		case <-expired:
			logSubscriptionEnd(r, sub, broker.EndNone, nil)
			return
		case <-ready:
			reason, err := sw.deliver(sub)
			if err != nil || reason != broker.EndNone {
				logSubscriptionEnd(r, sub, reason, err)
				return
			}
		}
	}
}

// subscriptionLog is the request's logger with the subscription's fields.
func subscriptionLog(r *http.Request, sub *broker.Subscription) *zerolog.Logger {
	log := hlog.FromRequest(r).With().Str("stream", sub.Stream).Str("last_event_id", broker.FormatID(sub.After)).Logger()
	return &log
}

// logSubscriptionEnd logs why serveLive returns: a write error, the broker's
// reason, or (neither) the token's expiry.
//
//go:noinline
func logSubscriptionEnd(r *http.Request, sub *broker.Subscription, reason broker.EndReason, err error) {
	logEnd(subscriptionLog(r, sub), endReason(sub, reason), err)
}

// endReason is the reason to log: reason, or, when there is none (a write
// failed), the broker's, if it had ended the subscription meanwhile.
func endReason(sub *broker.Subscription, reason broker.EndReason) broker.EndReason {
	if reason == broker.EndNone {
		return sub.EndReason()
	}
	return reason
}

// logEnd logs why a subscription ends.
func logEnd(log *zerolog.Logger, reason broker.EndReason, err error) {
	switch {
	case reason == broker.EndSlow:
		// Also with a write error: a slow client's write blocks while the
		// broker cuts it off, and fails when the client goes or at its
		// deadline.
		log.Warn().Err(err).Str("reason", reason.String()).Msg("subscription ended by the broker")
	case err != nil:
		log.Debug().Err(err).Msg("subscriber write failed")
	case reason == broker.EndNone:
		log.Debug().Msg("subscription ended: token expired")
	default:
		log.Debug().Str("reason", reason.String()).Msg("subscription ended by the broker")
	}
}

// appendGap appends the unnumbered gap event: it must not move the
// client's resume point.
func appendGap(dst []byte, after, first uint64) []byte {
	data, _ := json.Marshal(struct {
		After string  `json:"after"`
		First *string `json:"first"`
	}{broker.FormatID(after), optionalID(first)})
	return sse.AppendUnnumberedEvent(dst, broker.EventGap, string(data))
}

// sseWriter writes to one subscriber. Writes go into net/http's buffered
// response writer, so the events of one drain leave in one flush.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	srv *Server // its write deadlines and metrics
	// http2: the deadline is lifted after each flush (see flush).
	http2 bool
	// pending: bytes were written since the last flush (and a write
	// deadline covers them); sinceArmed: bytes written since the deadline
	// was last set.
	pending    bool
	sinceArmed int
	// write is writeWire as a broker.WriteFunc, made once per
	// subscription so that a drain does not allocate a method value.
	write broker.WriteFunc
}

// newSSEWriter is the writer of one event stream served by net/http. Its
// release must come before the handler returns.
func (s *Server) newSSEWriter(w http.ResponseWriter, r *http.Request) *sseWriter {
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), srv: s, http2: r.ProtoMajor >= 2}
	sw.write = sw.writeWire
	s.writers.add(sw.rc)
	return sw
}

// release is for the handler about to return. The end of the response,
// which net/http writes after that, gets a fresh deadline: the one of the
// last write may have passed long ago on a quiet stream, and the end
// would then fail (over TLS, with a broken record). And the drain forgets
// the writer.
func (sw *sseWriter) release() {
	sw.srv.armWriteDeadline(sw.rc)
	sw.srv.writers.remove(sw.rc)
}

// rearmEvery is how much of one drain a write deadline covers: the
// deadline bounds each rearmEvery bytes, not a whole drain, so a client on
// a slow link that keeps reading a long backlog is not cut (the parked
// path sets one per chunk alike).
const rearmEvery = 64 << 10

func (sw *sseWriter) writeWire(wire []byte, events int, published time.Time) error {
	if !sw.pending || sw.sinceArmed >= rearmEvery {
		// Best effort: a ResponseWriter without deadlines (a test recorder)
		// still works, only without the bound.
		sw.srv.armWriteDeadline(sw.rc)
		sw.pending = true
		sw.sinceArmed = 0
	}
	sw.sinceArmed += len(wire)
	if _, err := sw.w.Write(wire); err != nil {
		return err
	}
	sw.srv.metrics.observeDelivery(events, published)
	return nil
}

// deliver writes what sub has queued, or a heartbeat comment when one is
// due and there was nothing to write, then flushes once. It returns why
// the subscription ends (EndNone: it goes on).
func (sw *sseWriter) deliver(sub *broker.Subscription) (broker.EndReason, error) {
	reason, err := sub.Drain(sw.write)
	if err == nil && sub.HeartbeatDue() && !sw.pending {
		err = sw.writeWire(heartbeatComment, 0, time.Time{})
	}
	if err == nil && sw.pending {
		err = sw.flush()
	}
	return reason, err
}

func (sw *sseWriter) flush() error {
	sw.pending = false
	if err := sw.rc.Flush(); err != nil {
		return err
	}
	// HTTP/2 arms a timer for a deadline that resets the stream when it
	// fires, written to or not: left set, it would cut every subscription
	// quiet for longer than the timeout, before its first heartbeat. So
	// it is lifted there. HTTP/1 checks a deadline only while writing; it
	// stays set. (release sets a fresh one for the end of the response.)
	if sw.http2 {
		_ = sw.rc.SetWriteDeadline(time.Time{})
	}
	return nil
}

var heartbeatComment = sse.AppendComment(nil, "heartbeat")

package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"time"

	"github.com/sse-broker/broker/internal/ctxtime"
	"github.com/sse-broker/broker/pkg/sse"
)

// SubscribeOptions change how Subscribe follows a stream.
type SubscribeOptions struct {
	// From is the resume point: only events after this id are yielded,
	// unless the first value is a KindGap: then every retained event
	// follows, from the oldest, which may be at or below From when From is
	// not an id this stream issued (one of a deleted stream, or above its
	// last id). Empty (or "0") means every retained event, from the oldest.
	From string
	// IdleTimeout drops a connection that delivered nothing, not even a
	// heartbeat comment, for this long, and resumes on a new one: it finds
	// a connection that died without a word (a NAT or proxy that forgot
	// it). Set it above the broker's heartbeat interval (default 15s).
	// Zero: never.
	IdleTimeout time.Duration
	// OnReconnect, when set, is called on the loop's goroutine before each
	// wait to reconnect, with why the connection ended and how long the
	// wait is; for logs and metrics.
	OnReconnect func(err error, wait time.Duration)
	// MaxEventSize bounds an event's data in bytes (and any one line, at
	// that plus room for its field name); a larger one ends the loop with
	// an error wrapping sse.ErrTooLarge. Zero: DefaultMaxEventSize.
	MaxEventSize int
}

// DefaultMaxEventSize is SubscribeOptions.MaxEventSize's default: well
// above what a broker accepts in one publish (publish.max_body, 1 MiB by
// default), so that only a misbehaving server or proxy meets it.
const DefaultMaxEventSize = 16 << 20

// Errors passed to OnReconnect.
var (
	// ErrEndedWithoutStop: the response ended before a stop event (the
	// broker shut down, cut a slow subscriber, or the stream was deleted).
	ErrEndedWithoutStop = errors.New("the event stream ended without stop")
	// ErrIdle: nothing arrived for SubscribeOptions.IdleTimeout.
	ErrIdle = errors.New("no data for the idle timeout")
)

// Subscribe follows stream from opts.From. The iterator yields every event
// once, in order, across reconnects, and a KindGap value where the broker
// says events were lost (a gap may come again if the connection drops
// before the next event). It ends without an error after yielding the
// stream's stop event, or when the broker answers 204 (the resume point is
// at or after stop). A non-nil error is final and the last value: ctx's
// error when ctx ended, an *APIError for a 4xx answer other than 408 and
// 429, or an error that says why the answer was not an event stream.
//
// No goroutine is started; breaking out of the loop closes the connection.
func (c *Client) Subscribe(ctx context.Context, stream string, opts SubscribeOptions) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		if !validHeaderValue(opts.From) {
			// It could never be sent: net/http refuses it, every time.
			yield(Event{}, fmt.Errorf("subscribe to %q: the resume point %q has a control character", stream, opts.From))
			return
		}
		s := &subscription{c: c, stream: stream, opts: opts, last: opts.From, retry: defaultRetry}
		s.run(ctx, yield)
	}
}

// subscription is the state one Subscribe loop keeps across connections.
type subscription struct {
	c      *Client
	stream string
	opts   SubscribeOptions
	// last is the id of the last event yielded (never a gap's): the
	// Last-Event-ID of the next connection.
	last string
	// retry is the server's last retry: value.
	retry time.Duration
	// fruitless counts the connections in a row that brought no event
	// (refused, failed, or ended within maxReconnect): each doubles the
	// next pause.
	fruitless int
}

// reconnectWait is the pause before the next connection: the server's
// retry: (at least minReconnect), doubled for every connection in a row
// that brought no event since the last that did (the subscription's first
// connection, which has none before it, counts as one that did: its failure
// waits retry: itself, as WHATWG's first reconnection does), up to
// maxReconnect (or retry:, when the server
// asked for more), plus up to a fifth more (never less: retry: is the
// time to wait, as in WHATWG's reconnection time).
func (s *subscription) reconnectWait() time.Duration {
	d := max(s.retry, minReconnect)
	ceiling := max(maxReconnect, s.retry)
	for range min(s.fruitless, 16) {
		d = min(2*d, ceiling)
	}
	s.fruitless++
	return atLeast(d)
}

func (s *subscription) run(ctx context.Context, yield func(Event, error) bool) {
	for {
		wait, why, done := s.connect(ctx, yield)
		if done {
			return
		}
		if ctx.Err() != nil {
			yield(Event{}, ctx.Err())
			return
		}
		if s.opts.OnReconnect != nil {
			s.opts.OnReconnect(why, wait)
		}
		if ctxtime.Sleep(ctx, wait) != nil {
			yield(Event{}, ctx.Err())
			return
		}
	}
}

// connect runs one connection. done means the loop is over (stop, 204, a
// final error already yielded, or the caller left); otherwise the caller
// waits wait and reconnects; why says what ended the connection.
func (s *subscription) connect(ctx context.Context, yield func(Event, error) bool) (wait time.Duration, why error, done bool) {
	// connCtx ends this connection alone: on return, or when the idle
	// watchdog fires.
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := s.c.newRequest(connCtx, http.MethodGet, streamPath(s.stream, "/events"), nil, nil)
	if err != nil {
		yield(Event{}, fmt.Errorf("subscribe to %q: %w", s.stream, err))
		return 0, nil, true
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if s.last != "" {
		req.Header.Set("Last-Event-ID", s.last)
	}
	var watchdog *time.Timer
	if s.opts.IdleTimeout > 0 {
		watchdog = time.AfterFunc(s.opts.IdleTimeout, cancel)
		defer watchdog.Stop()
	}
	// idleOr tells an idle cut from other read errors.
	idleOr := func(err error) error {
		if ctx.Err() == nil && connCtx.Err() != nil {
			return ErrIdle
		}
		return err
	}

	resp, err := s.c.hc.Do(req)
	if err != nil {
		return s.reconnectWait(), idleOr(err), false
	}
	defer resp.Body.Close()
	switch code := resp.StatusCode; {
	case code == http.StatusNoContent:
		return 0, nil, true
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		ae := readAPIError(resp)
		if ae.RetryAfter > 0 {
			s.fruitless++
			return atLeast(ae.RetryAfter), ae, false
		}
		return s.reconnectWait(), ae, false
	case code != http.StatusOK:
		yield(Event{}, fmt.Errorf("subscribe to %q: %w", s.stream, readAPIError(resp)))
		return 0, nil, true
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		yield(Event{}, fmt.Errorf("subscribe to %q: the answer is %q, not text/event-stream", s.stream, resp.Header.Get("Content-Type")))
		return 0, nil, true
	}

	opened := time.Now()
	var body io.Reader = resp.Body
	if watchdog != nil {
		watchdog.Reset(s.opts.IdleTimeout)
		body = &idleReader{r: resp.Body, t: watchdog, d: s.opts.IdleTimeout}
	}
	dec := sse.NewDecoder(body)
	dec.SetMaxSize(cmp.Or(s.opts.MaxEventSize, DefaultMaxEventSize))
	for {
		ev, err := dec.Next()
		if ms, ok := dec.Retry(); ok {
			// Capped before the multiplication: a huge value must not
			// overflow into a negative pause.
			s.retry = time.Duration(min(ms, maxRetryAfter.Milliseconds())) * time.Millisecond
		}
		if errors.Is(err, sse.ErrTooLarge) {
			// The same event would come again on every resume.
			yield(Event{}, fmt.Errorf("subscribe to %q: %w (SubscribeOptions.MaxEventSize)", s.stream, err))
			return 0, nil, true
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = ErrEndedWithoutStop
			}
			if time.Since(opened) >= maxReconnect {
				// A long-lived connection on a quiet stream (heartbeats
				// only) was not fruitless: no backoff for its end.
				s.fruitless = 0
			}
			return s.reconnectWait(), idleOr(err), false
		}
		if ctx.Err() != nil {
			// Events already buffered must not outlive the caller's context.
			return 0, ctx.Err(), false
		}
		out := Event{Kind: KindEvent, ID: ev.ID, Name: ev.Type, Data: ev.Data}
		if ev.Type == "gap" { // reserved: only the broker sends it, without an id
			out.Kind, out.ID, out.Gap = KindGap, "", s.parseGap(ev.Data)
		} else if ev.ID != "" {
			if !validHeaderValue(ev.ID) {
				// It could never be sent back as Last-Event-ID: every
				// reconnect would fail before reaching the broker. The
				// event is delivered, then the subscription ends.
				if yield(out, nil) {
					yield(Event{}, fmt.Errorf("subscribe to %q: the event id %q has a control character, so the subscription cannot resume after it", s.stream, ev.ID))
				}
				return 0, nil, true
			}
			s.last = ev.ID
		}
		s.fruitless = 0
		// The caller's time with the event is not the connection's
		// silence: the watchdog waits while it has it.
		if watchdog != nil {
			watchdog.Stop()
		}
		if !yield(out, nil) {
			return 0, nil, true
		}
		if watchdog != nil {
			watchdog.Reset(s.opts.IdleTimeout)
		}
		if ev.Type == "stop" {
			return 0, nil, true
		}
	}
}

// parseGap reads the gap's data; should it not be what the broker sends,
// the gap is still reported, after the resume point this client sent.
func (s *subscription) parseGap(data string) *GapInfo {
	var g GapInfo
	if err := json.Unmarshal([]byte(data), &g); err != nil || g.After == "" {
		return &GapInfo{After: s.last}
	}
	return &g
}

// idleReader pushes the watchdog back on every read that returns data.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(r.d)
	}
	return n, err
}

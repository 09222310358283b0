package ssebench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sse-broker/broker/internal/ctxtime"
)

// errStreamClosed ends a subscriber whose resume was answered 204 No
// Content: the stream is closed, and EventSource stops reconnecting then.
var errStreamClosed = errors.New("resume answered 204: stream closed")

// subscriber tracks what one subscriber received over all its connections
// (the first one and every resume).
type subscriber struct {
	st     *stream
	client *http.Client
	slow   bool
	done   chan struct{}

	mu   sync.Mutex // guards body: the reader replaces it on a resume, Run closes it at the end
	body io.ReadCloser

	// seen is the payload sequence numbers received: written by the
	// reader goroutine under seenMu, which the drain takes to compare.
	seenMu sync.Mutex
	seen   seqSet

	// Written only by the reader goroutine, read after done is closed.
	ended       error  // why the reader stopped for good
	byID        bool   // the server sends ids that must increase (broker)
	dup         uint64 // events received again (a sequence number already seen)
	notSent     uint64 // events its stream never sent: another stream's, or a sequence number not issued
	reordered   uint64 // byID: new events whose id was not above the last one
	resumes     uint64 // connections this subscriber reopened
	afterResume uint64 // events received on a resumed connection

	// Read while the run goes (drain, progress).
	distinct atomic.Uint64 // events received at least once
	lastID   atomic.Uint64 // highest id received (byID)
}

func (s *subscriber) setBody(b io.ReadCloser) {
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
}

func (s *subscriber) closeBody() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.body != nil {
		s.body.Close()
	}
}

// track counts one received event. Loss, duplicates and events never
// acknowledged are told apart by the payload's sequence number, in both
// protocols (the baseline's ids say nothing); with the broker's ids it also
// checks their order. An event its stream never sent counts apart, and
// neither its sequence number nor its id counts as the subscriber's own:
// one of another stream (the payload's stream number), or one whose
// sequence number was never handed to a publisher, which must not size
// the set either (the number comes from the server's data: 2^30 made the
// set 128 MiB, and growing it allocated over 700 MiB).
func (s *subscriber) track(id, stream, seq uint64) {
	if stream != s.st.number || seq >= s.st.seq.Load() {
		s.notSent++
		return
	}
	s.seenMu.Lock()
	added := s.seen.add(seq)
	s.seenMu.Unlock()
	if !added {
		s.dup++
		return
	}
	s.distinct.Add(1)
	if !s.byID {
		return
	}
	if id > s.lastID.Load() {
		s.lastID.Store(id)
	} else {
		s.reordered++
	}
}

// hasAll reports whether s has received every event of want.
func (s *subscriber) hasAll(want seqSet) bool {
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	return want.countNotIn(s.seen) == 0
}

// sseState is what an EventSource keeps across its connections: the last
// event id string (sent back as Last-Event-ID) and the reconnection time
// the server asked for with "retry:".
type sseState struct {
	id       uint64 // the last "id:" field seen (the WHATWG last event ID buffer)
	haveID   bool
	resumeID uint64 // the id buffer as of the last dispatched event
	resumeOK bool   // resumeID is set: a resume sends Last-Event-ID
	retry    time.Duration
}

// open sends one subscribe request; lastID, when not empty, is the resume
// point. The caller owns the response.
func (r *runner) open(ctx context.Context, s *subscriber, lastID string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.subscribeURL(s.st), nil)
	if err != nil {
		return nil, fmt.Errorf("subscribe request: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return resp, nil
}

// read counts the events of one subscriber, over its first connection and,
// unless resume is off, over every connection it reopens after the server
// ended the response, until the run ends.
func (r *runner) read(ctx context.Context, s *subscriber) {
	defer close(s.done)
	size := 4096
	if r.cfg.Payload+512 > size {
		size = r.cfg.Payload + 512
	}
	s.mu.Lock()
	br := bufio.NewReaderSize(s.body, size)
	s.mu.Unlock()
	var st sseState
	for {
		err := r.readEvents(s, br, &st)
		if r.cfg.NoResume || ctx.Err() != nil || r.stopped.Load() {
			s.ended = err
			return
		}
		reason := &r.reconnectsErr
		if err == io.EOF {
			reason = &r.reconnectsEOF
		}
		body, err := r.resume(ctx, s, &st, reason)
		if err != nil {
			s.ended = err
			return
		}
		s.resumes++
		s.setBody(body)
		br.Reset(body)
	}
}

// resume waits, then reopens the subscriber's stream with Last-Event-ID, as
// EventSource does: a network error is tried again after the same wait, a
// 204 ends the subscriber (stream closed), any other status but 200 ends it
// too (EventSource fails the connection then). reason counts the reconnect
// once the pause is over and the run still goes.
func (r *runner) resume(ctx context.Context, s *subscriber, st *sseState, reason *atomic.Uint64) (io.ReadCloser, error) {
	r.resuming.Add(1)
	defer r.resuming.Add(-1)
	lastID := ""
	if st.resumeOK {
		lastID = strconv.FormatUint(st.resumeID, 10)
	}
	for attempt := 0; ; attempt++ {
		if err := ctxtime.Sleep(ctx, r.resumeWait(st)); err != nil {
			return nil, err
		}
		if r.stopped.Load() {
			return nil, context.Canceled // the run is counted; nothing more to read
		}
		if attempt == 0 {
			reason.Add(1)
		}
		resp, err := r.open(ctx, s, lastID)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r.reconnectFailures.Add(1)
			continue
		}
		switch resp.StatusCode {
		case http.StatusOK:
			return resp.Body, nil
		case http.StatusNoContent:
			resp.Body.Close()
			r.resume204.Add(1)
			return nil, errStreamClosed
		default:
			resp.Body.Close()
			r.resumeRefused.Add(1)
			return nil, fmt.Errorf("resume after id %q: status %d", lastID, resp.StatusCode)
		}
	}
}

// resumeWait is the pause before a reconnect. By default it is the tool's
// -resume-wait (100 ms), not the server's retry (3 s by default): the tool
// measures how fast the server gets a cut-off subscriber back up to date,
// and a 3 s pause per cut would mostly measure the pause (in a flat-out
// fan-out a subscriber may be cut every second or so). A negative
// -resume-wait uses the server's "retry:" like a browser does.
func (r *runner) resumeWait(st *sseState) time.Duration {
	if r.cfg.ResumeWait >= 0 {
		return r.cfg.ResumeWait
	}
	if st.retry > 0 {
		return st.retry
	}
	return 3 * time.Second // EventSource's usual default when the server sent none
}

// readEvents reads one connection until it ends, with a cheap line
// scanner: it looks at "id:", "event:", "retry:" and the first "data:" line
// of each event. It returns the error that ended the connection (io.EOF
// when the server ended the response cleanly).
func (r *runner) readEvents(s *subscriber, br *bufio.Reader, st *sseState) error {
	var (
		stream   uint64
		seq      uint64
		sent     int64
		haveData bool
		gap      bool
	)
	resumed := s.resumes > 0
	for {
		line, err := br.ReadSlice('\n')
		overlong := false
		for errors.Is(err, bufio.ErrBufferFull) { // an overlong line: skip it
			_, err = br.ReadSlice('\n')
			overlong = true
		}
		if err != nil {
			return err
		}
		if overlong {
			continue // not a blank line: the event goes on
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0: // dispatch
			if !r.stopped.Load() {
				if gap {
					r.gaps.Add(1)
				}
				if haveData {
					d := time.Duration(r.clock() - sent)
					r.hist.Record(d)
					r.bySecond.record(sent, d)
					r.delivered.Add(1)
					s.track(st.id, stream, seq)
					if resumed {
						s.afterResume++
					}
				}
			}
			// WHATWG: the last event ID string takes the id buffer's value
			// at every dispatch; a "gap" has no id, so it keeps the old one.
			st.resumeID, st.resumeOK = st.id, st.haveID
			haveData, gap = false, false
		case bytes.HasPrefix(line, []byte("id:")):
			v := bytes.TrimPrefix(line[3:], []byte(" "))
			st.id, _ = strconv.ParseUint(string(v), 10, 64)
			st.haveID = len(v) > 0 // an empty id resets the buffer: no Last-Event-ID
		case bytes.HasPrefix(line, []byte("data:")) && !haveData:
			var ok bool
			stream, seq, sent, ok = parsePayload(bytes.TrimPrefix(line[5:], []byte(" ")))
			haveData = ok
		case bytes.HasPrefix(line, []byte("event:")):
			gap = string(bytes.TrimPrefix(line[6:], []byte(" "))) == "gap"
		case bytes.HasPrefix(line, []byte("retry:")):
			if ms, err := strconv.ParseUint(string(bytes.TrimPrefix(line[6:], []byte(" "))), 10, 32); err == nil {
				st.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

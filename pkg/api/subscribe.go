package api

import (
	"encoding/json"
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
		v = r.URL.Query().Get("lastEventId")
	}
	return broker.ParseID(v)
}

// subscribe is the SSE endpoint. Its whole life: answer the headers and
// the retry block at once, write the gap report and the backlog, then wait
// for the subscriber's queue to be ready and write everything queued with
// one flush, until the stream stops, the subscriber falls behind, the
// client goes away or the broker shuts down.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	stream, ok := s.streamWithRight(w, r, auth.Subscribe)
	if !ok {
		return
	}
	if err := s.allowSubscribe(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	after, err := resumePoint(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sub, err := s.broker.Subscribe(r.Context(), stream, after)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer sub.Close()
	log := hlog.FromRequest(r).With().Str("stream", stream).Str("last_event_id", broker.FormatID(after)).Logger()
	if sub.NoContent {
		// The stream is over for this client: 204 makes EventSource stop.
		w.WriteHeader(http.StatusNoContent)
		return
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	sw := &sseWriter{w: w, rc: http.NewResponseController(w), metrics: s.metrics}
	buf := sse.AppendRetry(make([]byte, 0, 128), s.opts.Retry.Milliseconds())
	if sub.Gap {
		buf = appendGap(buf, sub.After, sub.FirstID)
	}
	if err := sw.write(buf, 0, time.Time{}); err != nil {
		return
	}
	for _, e := range sub.Backlog {
		if err := sw.write(e.Wire, 1, time.Time{}); err != nil {
			return
		}
	}
	if err := sw.flush(); err != nil {
		return
	}
	if sub.Gap {
		log.Info().Str("first_id", broker.FormatID(sub.FirstID)).Msg("subscriber resumed across a gap")
	}
	if !sub.Live() {
		return // closed stream: the backlog ended with stop
	}
	sub.Backlog = nil // let the backlog's memory go while the stream lives

	heartbeat := time.NewTicker(s.opts.Heartbeat)
	defer heartbeat.Stop()
	expired := s.tokenExpiry(r)
	write := sw.write
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.draining:
			return
		case <-expired:
			log.Debug().Msg("subscription ended: token expired")
			return
		case <-heartbeat.C:
			if err := sw.heartbeat(); err != nil {
				return
			}
		case <-sub.Ready():
			reason, err := sub.Drain(write)
			if err == nil {
				err = sw.flush()
			}
			if err != nil {
				log.Debug().Err(err).Msg("subscriber write failed")
				return
			}
			if reason != broker.EndNone {
				logEnd(log, reason)
				return
			}
		}
	}
}

func logEnd(log zerolog.Logger, reason broker.EndReason) {
	ev := log.Debug()
	if reason == broker.EndSlow {
		ev = log.Warn()
	}
	ev.Str("reason", reason.String()).Msg("subscription ended by the broker")
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
	w        http.ResponseWriter
	rc       *http.ResponseController
	metrics  *metrics
	deadline bool // a write deadline is set for the pending writes
}

func (sw *sseWriter) write(wire []byte, events int, published time.Time) error {
	if !sw.deadline {
		// Best effort: a ResponseWriter without deadlines (a test recorder)
		// still works, only without the bound.
		_ = sw.rc.SetWriteDeadline(time.Now().Add(subscriberWriteTimeout))
		sw.deadline = true
	}
	if _, err := sw.w.Write(wire); err != nil {
		return err
	}
	if events > 0 {
		sw.metrics.delivered.Add(float64(events))
		if !published.IsZero() {
			sw.metrics.deliveryLatency.Observe(time.Since(published).Seconds())
		}
	}
	return nil
}

func (sw *sseWriter) flush() error {
	sw.deadline = false
	return sw.rc.Flush()
}

func (sw *sseWriter) heartbeat() error {
	if err := sw.write(heartbeatComment, 0, time.Time{}); err != nil {
		return err
	}
	return sw.flush()
}

var heartbeatComment = sse.AppendComment(nil, "heartbeat")

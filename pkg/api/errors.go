package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rs/zerolog/hlog"

	"github.com/sse-broker/broker/pkg/broker"
)

// Errors of the transport itself; the broker's sentinels cover the rest.
var (
	errInvalidJSON      = errors.New("invalid JSON")
	errBodyTooLarge     = errors.New("body too large")
	errNotFound         = errors.New("not found")
	errMethodNotAllowed = errors.New("method not allowed")
	errRateLimited      = errors.New("rate limited")
)

// errorMapping is the one table from error to HTTP answer (SPEC.md,
// "Errors"). The first row whose err matches (errors.Is) wins.
var errorMapping = []struct {
	err        error
	status     int
	code       string
	retryAfter bool
}{
	{broker.ErrInvalidStreamID, http.StatusBadRequest, "invalid_stream_id", false},
	{broker.ErrInvalidEvent, http.StatusBadRequest, "invalid_event", false},
	{errInvalidJSON, http.StatusBadRequest, "invalid_json", false},
	{broker.ErrInvalidID, http.StatusBadRequest, "invalid_last_event_id", false},
	{broker.ErrInvalidRequest, http.StatusBadRequest, "invalid_request", false},
	{errMethodNotAllowed, http.StatusMethodNotAllowed, "method_not_allowed", false},
	{errUnauthorized, http.StatusUnauthorized, "unauthorized", false},
	{errForbidden, http.StatusForbidden, "forbidden", false},
	{errNotFound, http.StatusNotFound, "not_found", false},
	{broker.ErrStreamNotFound, http.StatusNotFound, "not_found", false},
	{broker.ErrStreamClosed, http.StatusConflict, "stream_closed", false},
	{errBodyTooLarge, http.StatusRequestEntityTooLarge, "body_too_large", false},
	{errRateLimited, http.StatusTooManyRequests, "rate_limited", true},
	{broker.ErrTooManySubscribers, http.StatusServiceUnavailable, "too_many_subscribers", true},
	{broker.ErrTooManyStreams, http.StatusServiceUnavailable, "too_many_streams", true},
	{broker.ErrStoreUnavailable, http.StatusServiceUnavailable, "store_unavailable", true},
}

// errShuttingDown refuses new work during the drain. It is answered like
// a store that does not answer (503 store_unavailable, SPEC's code for a
// node that cannot serve now), but it is no failure: not logged as one,
// and the client is told why.
var errShuttingDown = fmt.Errorf("%w: the broker is shutting down", broker.ErrStoreUnavailable)

// storeUnavailableMessage is what a client is told of a store failure. The
// cause (a Redis address, a file path, a timeout) is for the operator: it
// goes to the log under the request id, never to a possibly anonymous
// client.
const storeUnavailableMessage = "the store does not answer; retry later (the broker's log has the cause under this answer's X-Request-Id)"

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// writeError answers with the status and code the error maps to. Errors
// that map to nothing are 500 "internal": logged with the request id, never
// shown to the client.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	for _, m := range errorMapping {
		if errors.Is(err, m.err) {
			if m.retryAfter {
				w.Header().Set("Retry-After", strconv.Itoa(s.retryAfterSecondsOf(err)))
			}
			msg := err.Error()
			if m.err == broker.ErrStoreUnavailable && !errors.Is(err, errShuttingDown) {
				hlog.FromRequest(r).Error().Err(err).Msg("store unavailable")
				msg = storeUnavailableMessage
			}
			writeJSON(w, m.status, errorBody{Error: m.code, Message: msg})
			return
		}
	}
	hlog.FromRequest(r).Error().Err(err).Msg("internal error")
	writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal", Message: "internal error; the request id is in the X-Request-Id header"})
}

// retryAfterSeconds is the Retry-After of 503 answers (and of 429s whose
// error does not say when to retry): the SSE
// retry interval, rounded up to whole seconds, so HTTP clients and
// EventSource back off alike.
func (s *Server) retryAfterSeconds() int {
	return max(1, int((s.opts.Retry+999_999_999)/1_000_000_000))
}

// retryAfterSecondsOf is the Retry-After for err: its own, in whole
// seconds rounded up (at least 1), when it knows when to retry (a rate
// limit does), else retryAfterSeconds.
func (s *Server) retryAfterSecondsOf(err error) int {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return max(1, int((ra.RetryAfter()+time.Second-1)/time.Second))
	}
	return s.retryAfterSeconds()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"internal","message":"response could not be encoded"}`)
	}
	writeJSONBody(w, status, append(body, '\n'))
}

// writeJSONBody answers with body, a JSON document and its newline.
func writeJSONBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinels for errors.Is on an *APIError; each matches by the error code
// of the broker's answer (SPEC.md, "Errors").
var (
	ErrNotFound           = errors.New("not found")             // 404 not_found
	ErrStreamClosed       = errors.New("stream closed")         // 409 stream_closed
	ErrUnauthorized       = errors.New("unauthorized")          // 401 unauthorized
	ErrForbidden          = errors.New("forbidden")             // 403 forbidden
	ErrInvalidStreamID    = errors.New("invalid stream id")     // 400 invalid_stream_id
	ErrInvalidLastEventID = errors.New("invalid last event id") // 400 invalid_last_event_id
	ErrRateLimited        = errors.New("rate limited")          // 429 rate_limited
	ErrStoreUnavailable   = errors.New("store unavailable")     // 503 store_unavailable
)

var sentinelByCode = map[string]error{
	"not_found":             ErrNotFound,
	"stream_closed":         ErrStreamClosed,
	"unauthorized":          ErrUnauthorized,
	"forbidden":             ErrForbidden,
	"invalid_stream_id":     ErrInvalidStreamID,
	"invalid_last_event_id": ErrInvalidLastEventID,
	"rate_limited":          ErrRateLimited,
	"store_unavailable":     ErrStoreUnavailable,
}

// APIError is a non-2xx answer of the broker.
type APIError struct {
	Status  int    // HTTP status
	Code    string // the body's "error" code; empty when the body was not the broker's JSON (e.g. a proxy's page)
	Message string // the body's "message", or the start of a foreign body
	// RetryAfter is the answer's Retry-After (429, 503), zero when absent.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.Status)
	}
	if e.Message == "" {
		return fmt.Sprintf("broker answered %d %s", e.Status, code)
	}
	return fmt.Sprintf("broker answered %d %s: %s", e.Status, code, e.Message)
}

// Is makes errors.Is(err, ErrNotFound) and the other sentinels work by
// the answer's code.
func (e *APIError) Is(target error) bool {
	s, ok := sentinelByCode[e.Code]
	return ok && s == target
}

// maxErrorBody bounds how much of an error answer is read: enough for the
// broker's JSON, not a whole page from a misbehaving proxy.
const maxErrorBody = 64 << 10

// readAPIError turns a non-2xx answer into an *APIError. The caller closes
// the body.
func readAPIError(resp *http.Response) *APIError {
	e := &APIError{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		e.Code, e.Message = eb.Error, eb.Message
		return e
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	e.Message = msg
	return e
}

// parseRetryAfter reads a Retry-After in seconds or as an HTTP date; zero
// when absent or unreadable.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		// Bounded before the multiplication: a huge value must not
		// overflow into a short wait (the waits cap it at maxRetryAfter).
		return time.Duration(min(s, int64(math.MaxInt64/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

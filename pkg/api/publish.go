package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog/hlog"

	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/broker"
)

// writeIDsAnswer writes {"stream": ..., "ids": [...]}, the answer of
// publish and close. Publish answers thousands of times a second, so it is
// written by hand rather than through encoding/json's reflection. Nothing
// in it needs escaping: a stream id is [A-Za-z0-9._~-] (checked before any
// handler gets it) and an id is decimal digits. TestIDsAnswerIsTheJSON
// holds it to what encoding/json writes.
func writeIDsAnswer(w http.ResponseWriter, status int, stream string, ids []uint64) {
	body := make([]byte, 0, len(`{"stream":"","ids":[]}`)+len(stream)+len(ids)*23+1)
	body = append(body, `{"stream":"`...)
	body = append(body, stream...)
	body = append(body, `","ids":[`...)
	for i, id := range ids {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, '"')
		body = strconv.AppendUint(body, id, 10)
		body = append(body, '"')
	}
	writeJSONBody(w, status, append(body, "]}\n"...))
}

// createAnswer is the body of POST /v1/streams, its fields in SPEC.md's
// order.
type createAnswer struct {
	Stream    string `json:"stream"`
	EventsURL string `json:"events_url"`
}

func (s *Server) createStream(w http.ResponseWriter, r *http.Request) {
	prefix, err := s.streamPrefix(w, r) // optional {"prefix"}; checked against the token
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Creating and closing streams count against the publish rate like one
	// event each: otherwise they would be a way around it.
	if err := s.allowPublish(r, 1); err != nil {
		s.writeError(w, r, err)
		return
	}
	stream, err := s.broker.CreateStream(r.Context(), prefix)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/streams/"+stream)
	writeJSON(w, http.StatusCreated, createAnswer{Stream: stream, EventsURL: "/v1/streams/" + stream + "/events"})
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	stream, ok := s.streamWithRight(w, r, auth.Publish)
	if !ok {
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if err := broker.ValidateIdempotencyKey(key); err != nil {
		s.writeError(w, r, err)
		return
	}
	msgs, err := s.readMessages(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.allowPublish(r, len(msgs)); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.broker.Publish(r.Context(), stream, msgs, key)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	s.metrics.publishLatency.Observe(time.Since(start).Seconds())
	hlog.FromRequest(r).Debug().Str("stream", stream).Int("events", len(res.IDs)).Bool("replayed", res.Replayed).Msg("published")
	writeIDsAnswer(w, http.StatusCreated, stream, res.IDs)
}

// readMessages decodes a publish body: JSON (one object or an array of
// objects) when the content type says so, otherwise the raw body as the
// data of one event named by ?event=.
func (s *Server) readMessages(w http.ResponseWriter, r *http.Request) ([]broker.Message, error) {
	asJSON, err := isJSON(r.Header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	defer releaseBody(buf)
	if err := s.readBodyInto(w, r, buf); err != nil {
		return nil, err
	}
	body := buf.Bytes() // decoding copies what it keeps: the buffer goes back
	if !asJSON {
		name, named, err := queryValue(r, "event")
		if err != nil {
			return nil, fmt.Errorf("%w: %v", broker.ErrInvalidEvent, err)
		}
		if named && name == "" {
			return nil, fmt.Errorf("%w: ?event= must not be empty", broker.ErrInvalidEvent)
		}
		return []broker.Message{{Name: name, Data: string(body)}}, nil
	}
	if _, named, _ := queryValue(r, "event"); named {
		// Taken silently, it would publish every event as "message" (or
		// under the body's names) while the caller meant this one.
		return nil, fmt.Errorf(`%w: ?event= names the event of a raw body; a JSON body names each event in its "event" member`, broker.ErrInvalidRequest)
	}
	return decodeMessages(body)
}

// bodyPool recycles the read buffers of publish bodies, the one request
// that comes thousands of times a second: a publish keeps nothing of its
// body (decoding copies the names and data it keeps), so its buffer can
// serve the next one instead of becoming garbage.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxBodyReserve bounds what a body's Content-Length reserves before its
// bytes arrive; it covers the common publish, a token or a paragraph.
const maxBodyReserve = 16 << 10

// maxPooledBody: a buffer grown larger than this by one big publish is
// left to the collector rather than held in the pool.
const maxPooledBody = 64 << 10

func releaseBody(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBody {
		buf.Reset()
		bodyPool.Put(buf)
	}
}

// readBody reads the whole body, at most MaxBody bytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	err := s.readBodyInto(w, r, &buf)
	return buf.Bytes(), err
}

// readBodyInto reads the whole body into buf, at most MaxBody bytes.
func (s *Server) readBodyInto(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) error {
	// A compressed body is not its data: it would be refused as invalid
	// UTF-8 or bad JSON with no word of the compression, or, where the
	// compressed bytes happen to be valid UTF-8, published as they are.
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(strings.TrimSpace(ce), "identity") {
		return fmt.Errorf("%w: Content-Encoding %q is not supported; send the body uncompressed", broker.ErrInvalidRequest, ce)
	}
	// A body trickled in byte by byte must not hold the handler forever;
	// the server has no ReadTimeout (it would also cut event streams).
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	if r.ContentLength > s.opts.MaxBody {
		// Refused before a byte of it is read: a client that sent
		// Expect: 100-continue is spared the upload (net/http sends the
		// 100 only once the body is read), and any other the wait.
		return fmt.Errorf("%w: the limit is %d bytes, the body declares %d", errBodyTooLarge, s.opts.MaxBody, r.ContentLength)
	}
	if n := r.ContentLength; n > 0 {
		// Room for the body at once, up to a bound: ReadFrom alone would
		// grow a fresh buffer step by step, but memory reserved from the
		// header alone would let a client that sends headers and no body
		// pin max_body (1 MiB) per request for the whole read timeout, a
		// few hundred bytes of its own each (many at once over one
		// HTTP/2 connection). Beyond the bound the buffer grows with the
		// bytes that arrive.
		buf.Grow(int(min(n, maxBodyReserve)))
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.opts.MaxBody)); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fmt.Errorf("%w: the limit is %d bytes", errBodyTooLarge, s.opts.MaxBody)
		}
		return fmt.Errorf("%w: reading the body: %v", broker.ErrInvalidRequest, err)
	}
	return nil
}

// isJSON reports whether a publish body is JSON by its Content-Type. Any
// other type is a raw body (SPEC), also one that does not parse, except
// application/json with a parameter that does not parse ("application/json;
// charset"): its sender meant JSON, and publishing its JSON text as one raw
// event would be a silent surprise, so it is an error.
func isJSON(contentType string) (bool, error) {
	switch contentType { // the common cases, without parsing's allocations
	case "application/json":
		return true, nil
	case "", "text/plain", "text/plain; charset=utf-8":
		return false, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	switch {
	case err == nil:
		return mt == "application/json", nil
	case mt == "application/json": // the type parsed, a parameter did not
		return false, fmt.Errorf("%w: the Content-Type %q does not parse: %v", broker.ErrInvalidRequest, truncate(contentType, 64), err)
	}
	return false, nil
}

// jsonMessage is one element of a JSON publish body.
type jsonMessage struct {
	Event json.RawMessage `json:"event"` // a string or null: see decodeMessage
	Data  json.RawMessage `json:"data"`
}

// decodeMessages parses `{...}` or `[{...}, ...]`. Syntax errors (and
// invalid UTF-8, which encoding/json would silently replace) are
// invalid_json; a valid document of the wrong shape is invalid_event.
func decodeMessages(body []byte) ([]broker.Message, error) {
	if err := checkJSONBody(body, `{"event", "data"} or an array of them`); err != nil {
		return nil, err
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var raws []json.RawMessage
	switch trimmed[0] {
	case '{':
		raws = []json.RawMessage{trimmed}
	case '[':
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			return nil, fmt.Errorf("%w: %v", errInvalidJSON, err)
		}
		if len(raws) > broker.MaxBatchEvents {
			return nil, fmt.Errorf("%w: at most %d events in one request, got %d", broker.ErrInvalidEvent, broker.MaxBatchEvents, len(raws))
		}
	default:
		return nil, fmt.Errorf(`%w: the body must be an object {"event", "data"} or an array of them`, broker.ErrInvalidEvent)
	}
	msgs := make([]broker.Message, len(raws))
	for i, raw := range raws {
		m, err := decodeMessage(raw)
		if err != nil {
			if trimmed[0] == '[' { // an array, of one event or more
				return nil, fmt.Errorf("event %d: %w", i, err)
			}
			return nil, err
		}
		msgs[i] = m
	}
	return msgs, nil
}

func decodeMessage(raw json.RawMessage) (broker.Message, error) {
	// Decoding null into a struct succeeds and changes nothing: without
	// this check [null] would publish an empty event.
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return broker.Message{}, fmt.Errorf(`%w: each event must be an object {"event": string, "data": any}`, broker.ErrInvalidEvent)
	}
	var jm jsonMessage
	if err := decodeStrict(raw, &jm); err != nil {
		return broker.Message{}, fmt.Errorf(`%w: %v; want {"event": string, "data": any}`, broker.ErrInvalidEvent, err)
	}
	var m broker.Message
	if len(jm.Event) > 0 && string(jm.Event) != "null" {
		if jm.Event[0] != '"' {
			return broker.Message{}, fmt.Errorf(`%w: "event" must be a string, not %s; want {"event": string, "data": any}`, broker.ErrInvalidEvent, jsonKind(jm.Event))
		}
		name, err := decodedString(jm.Event, "event")
		if err != nil {
			return broker.Message{}, err
		}
		if name == "" {
			return broker.Message{}, fmt.Errorf("%w: event name must not be empty", broker.ErrInvalidEvent)
		}
		m.Name = name
	}
	data, err := dataText(jm.Data)
	if err != nil {
		return broker.Message{}, err
	}
	m.Data = data
	return m, nil
}

// dataText is the SSE data of a JSON "data" member: a string as is, any
// other value as its compact JSON text, absent as empty.
func dataText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", nil
	}
	if raw[0] == '"' {
		return decodedString(raw, "data")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", fmt.Errorf("%w: %v", errInvalidJSON, err)
	}
	return buf.String(), nil
}

func (s *Server) closeStream(w http.ResponseWriter, r *http.Request) {
	stream, ok := s.streamWithRight(w, r, auth.Publish)
	if !ok {
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	data, err := decodeCloseBody(body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.allowPublish(r, 1); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.broker.CloseStream(r.Context(), stream, data)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	hlog.FromRequest(r).Info().Str("stream", stream).Str("stop_id", broker.FormatID(res.IDs[0])).Msg("stream closed")
	writeIDsAnswer(w, http.StatusOK, stream, res.IDs)
}

// decodeCloseBody reads the optional `{"data": ...}` of a close.
func decodeCloseBody(body []byte) (string, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return "", nil
	}
	if err := checkJSONBody(body, `an empty body or {"data": ...}`); err != nil {
		return "", err
	}
	if bytes.TrimLeft(body, " \t\r\n")[0] != '{' {
		return "", fmt.Errorf(`%w: the body must be empty or a JSON object {"data": ...}`, broker.ErrInvalidEvent)
	}
	var cb struct {
		Data json.RawMessage `json:"data"`
	}
	if err := decodeStrict(body, &cb); err != nil {
		return "", fmt.Errorf(`%w: %v; want {"data": any}`, broker.ErrInvalidEvent, err)
	}
	return dataText(cb.Data)
}

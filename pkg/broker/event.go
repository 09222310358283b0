package broker

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sse-broker/broker/pkg/sse"
)

// Limits of the v1 contract (SPEC.md). They are part of the wire contract,
// not tuning knobs, so they are constants rather than configuration.
const (
	MaxStreamIDLen  = 128  // bytes of a stream id after percent-decoding
	MaxEventNameLen = 64   // characters of an event name
	MaxBatchEvents  = 1000 // events in one publish request
	MaxIdemKeyLen   = 128  // characters of an Idempotency-Key

	// EventStop is the event close publishes; EventGap is the event that
	// reports lost history. Both are reserved: publishers cannot send them.
	EventStop = "stop"
	EventGap  = "gap"
	// EventMessage is the SSE default event type.
	EventMessage = sse.DefaultEventType
)

// Message is an event as a publisher hands it in, before it has an id.
type Message struct {
	Name string // "" means EventMessage
	Data string
}

// Event is a stored event.
type Event struct {
	ID   uint64
	Name string // never empty; EventMessage by default
	Data string // as delivered: line breaks are LF only
	Time time.Time
	// Wire is the event's SSE encoding. It is shared by every subscriber
	// and by history; nobody may modify it.
	Wire []byte
}

// Frame is what fan-out carries: the events of one publish request, in id
// order, with their wire bytes back to back in one buffer so a subscriber
// writes a whole publish with one Write. Subscriber queues count frames,
// not events, so one large batch never cuts off a subscriber that was
// keeping up.
type Frame struct {
	Stream string
	Events []Event
	Wire   []byte
	// Final marks the frame holding a stream's stop event: subscribers'
	// responses end after it.
	Final bool
}

// EncodeFrame encodes events (ids and names already set) into one buffer,
// points each event's Wire into it, and returns the frame. Stores call it
// once per stored publish (bolt and Redis again for the events a Read
// returns, and Redis once on each node for a feed frame it decodes); the
// bytes are shared by every subscriber the frame reaches and, in the
// memory store, by history.
func EncodeFrame(stream string, events []Event, final bool) *Frame {
	n := 0
	for i := range events {
		n += sse.EncodedLen(events[i].ID, events[i].Name, events[i].Data)
	}
	buf := make([]byte, 0, n)
	for i := range events {
		start := len(buf)
		buf = sse.AppendEvent(buf, events[i].ID, events[i].Name, events[i].Data)
		events[i].Wire = buf[start:len(buf):len(buf)]
	}
	return &Frame{Stream: stream, Events: events, Wire: buf, Final: final}
}

// LastID is the id of the frame's last event.
func (f *Frame) LastID() uint64 { return f.Events[len(f.Events)-1].ID }

// Sentinel errors. pkg/api maps each to one status and error code; wrap
// them with %w to add detail for the human-readable message.
var (
	ErrInvalidStreamID    = errors.New("invalid stream id")
	ErrInvalidEvent       = errors.New("invalid event")
	ErrInvalidRequest     = errors.New("invalid request")
	ErrStreamNotFound     = errors.New("stream not found")
	ErrStreamClosed       = errors.New("stream closed")
	ErrTooManyStreams     = errors.New("too many streams")
	ErrTooManySubscribers = errors.New("too many subscribers")
	ErrStoreUnavailable   = errors.New("store unavailable")
)

// ValidateStreamID checks the stream id rule: 1 to 128 characters of
// [A-Za-z0-9._~-], not dots alone. Dots alone are refused because "." and
// ".." are path segments that proxies and URL libraries rewrite.
func ValidateStreamID(id string) error {
	if id == "" || len(id) > MaxStreamIDLen {
		return fmt.Errorf("%w: must be 1 to %d characters", ErrInvalidStreamID, MaxStreamIDLen)
	}
	dotsOnly := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '~', c == '-':
			dotsOnly = false
		case c == '.':
		default:
			return fmt.Errorf("%w: only A-Z a-z 0-9 . _ ~ - are allowed", ErrInvalidStreamID)
		}
	}
	if dotsOnly {
		return fmt.Errorf("%w: must not be made of dots alone", ErrInvalidStreamID)
	}
	return nil
}

// ValidateEventName checks a publisher's event name: 1 to 64 characters of
// valid UTF-8 without CR, LF or NUL (each would break the "event:" line or
// be dropped by parsers), and not a reserved name.
func ValidateEventName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: event name must not be empty", ErrInvalidEvent)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: event name is not valid UTF-8", ErrInvalidEvent)
	case utf8.RuneCountInString(name) > MaxEventNameLen:
		return fmt.Errorf("%w: event name is longer than %d characters", ErrInvalidEvent, MaxEventNameLen)
	case strings.ContainsAny(name, "\r\n\x00"):
		return fmt.Errorf("%w: event name must not contain CR, LF or NUL", ErrInvalidEvent)
	case name == EventStop || name == EventGap:
		return fmt.Errorf("%w: event name %q is reserved for the broker", ErrInvalidEvent, name)
	}
	return nil
}

// NormalizeData checks that data is valid UTF-8 and turns CR and CRLF into
// LF: SSE cannot carry a CR, so the stored data is what every subscriber
// and the JSON history will see.
func NormalizeData(data string) (string, error) {
	if !utf8.ValidString(data) {
		return "", fmt.Errorf("%w: data is not valid UTF-8", ErrInvalidEvent)
	}
	if !strings.Contains(data, "\r") {
		return data, nil
	}
	return strings.ReplaceAll(strings.ReplaceAll(data, "\r\n", "\n"), "\r", "\n"), nil
}

// ValidateMessages checks a publish request and normalizes it in place.
func ValidateMessages(msgs []Message) error {
	switch {
	case len(msgs) == 0:
		return fmt.Errorf("%w: a publish needs at least one event", ErrInvalidEvent)
	case len(msgs) > MaxBatchEvents:
		return fmt.Errorf("%w: at most %d events in one request, got %d", ErrInvalidEvent, MaxBatchEvents, len(msgs))
	}
	for i := range msgs {
		if msgs[i].Name == "" {
			msgs[i].Name = EventMessage
		}
		if err := ValidateEventName(msgs[i].Name); err != nil {
			return inBatch(msgs, i, err)
		}
		data, err := NormalizeData(msgs[i].Data)
		if err != nil {
			return inBatch(msgs, i, err)
		}
		msgs[i].Data = data
	}
	return nil
}

// inBatch names the event err is about when the request has several, so
// that a publisher can find it; a request of one event (a raw body, a
// single JSON object) has no "event 0" to look for.
func inBatch(msgs []Message, i int, err error) error {
	if len(msgs) == 1 {
		return err
	}
	return fmt.Errorf("event %d: %w", i, err)
}

// ValidateIdempotencyKey checks the Idempotency-Key header value.
func ValidateIdempotencyKey(key string) error {
	if utf8.RuneCountInString(key) > MaxIdemKeyLen {
		return fmt.Errorf("%w: Idempotency-Key is longer than %d characters", ErrInvalidRequest, MaxIdemKeyLen)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: Idempotency-Key is not valid UTF-8", ErrInvalidRequest)
	}
	return nil
}

package sse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Event is one event as a browser's EventSource dispatches it.
type Event struct {
	// ID is the stream's last event ID at the moment of dispatch (the
	// MessageEvent's lastEventId): the id of this event, or of an earlier
	// one when this event carried none.
	ID string
	// Type is the event name; "message" when the event had none.
	Type string
	// Data is the data buffer with the final LF removed.
	Data string
}

// Decoder reads events with the WHATWG event stream interpretation
// algorithm, to the letter: lines end at CRLF, LF or CR; a leading BOM is
// skipped; one space after the colon is removed; an "id" holding NUL is
// ignored; "retry" is taken only when it is all ASCII digits; an event with
// an empty data buffer is not dispatched; an unterminated event at the end
// of the stream is discarded. It is strict on purpose: the broker's tests use
// it as the reference for what a browser would see.
type Decoder struct {
	r        *bufio.Reader
	started  bool
	lastID   string
	retry    int64
	comments int
	line     []byte
	// skipLF: the last line ended with a CR; an LF right after it is the
	// rest of a CRLF. (Peeking for it instead would hold back an event
	// whose blank line is a lone CR until the next byte arrives.)
	skipLF bool
	// maxSize bounds a line and an event's data buffer; 0: no bound.
	maxSize int
}

// lineRoom is what a line may hold beyond the data bound: its field name,
// colon and space ("data: ").
const lineRoom = 16

// ErrTooLarge is returned by Next for a line or an event's data larger
// than the limit SetMaxSize set.
var ErrTooLarge = errors.New("sse: an event is larger than the decoder's limit")

// SetMaxSize bounds, in bytes, each event's data, its lines joined with
// LF as Event.Data has them, and each line at that plus room for its field
// name (0, the default: no bound, as in a browser). A stream that exceeds
// it fails Next with ErrTooLarge, so that a misbehaving server or proxy
// cannot make the reader hold an unbounded event in memory.
func (d *Decoder) SetMaxSize(n int) { d.maxSize = max(0, n) }

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReader(r), retry: -1}
}

// Retry returns the last reconnection time the stream set, in
// milliseconds, and whether it set one.
func (d *Decoder) Retry() (int64, bool) { return d.retry, d.retry >= 0 }

// LastEventID returns the last event ID string, which the browser would
// send as Last-Event-ID on reconnect: the id buffer as of the last blank
// line read. An "id:" of an event not yet ended by a blank line (say, one
// cut by the end of the stream) is not in it.
func (d *Decoder) LastEventID() string { return d.lastID }

// Comments returns how many comment lines have been read so far.
func (d *Decoder) Comments() int { return d.comments }

// Next reads until the next event is dispatched and returns it. At the end
// of the stream it returns io.EOF (an unterminated event is discarded, as a
// browser does).
func (d *Decoder) Next() (Event, error) {
	var (
		data      strings.Builder
		eventType string
		idBuf     = d.lastID
	)
	for {
		line, err := d.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Event{}, io.EOF
			}
			return Event{}, err
		}
		if len(line) == 0 {
			d.lastID = idBuf
			if data.Len() == 0 {
				eventType = ""
				continue
			}
			s := strings.TrimSuffix(data.String(), "\n")
			if eventType == "" {
				eventType = DefaultEventType
			}
			return Event{ID: d.lastID, Type: eventType, Data: s}, nil
		}
		if line[0] == ':' {
			d.comments++
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			eventType = toUTF8(value)
		case "data":
			text := toUTF8(value) // may be larger: U+FFFD is 3 bytes
			if d.maxSize > 0 && data.Len()+len(text) > d.maxSize {
				return Event{}, ErrTooLarge
			}
			data.WriteString(text)
			data.WriteByte('\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				idBuf = toUTF8(value)
			}
		case "retry":
			if isDigits(value) {
				if v, err := strconv.ParseInt(string(value), 10, 64); err == nil {
					d.retry = v
				}
			}
		}
	}
}

// readLine returns the next line without its terminator. The returned
// slice is valid until the next call.
func (d *Decoder) readLine() ([]byte, error) {
	d.line = d.line[:0]
	for {
		c, err := d.r.ReadByte()
		if err != nil {
			return nil, err
		}
		if d.skipLF {
			d.skipLF = false
			if c == '\n' {
				continue
			}
		}
		switch c {
		case '\n':
			return d.stripBOM(), nil
		case '\r':
			d.skipLF = true
			return d.stripBOM(), nil
		}
		if d.maxSize > 0 && len(d.line) >= d.maxSize+lineRoom {
			return nil, ErrTooLarge
		}
		d.line = append(d.line, c)
	}
}

func (d *Decoder) stripBOM() []byte {
	if !d.started {
		d.started = true
		return bytes.TrimPrefix(d.line, []byte("\xEF\xBB\xBF"))
	}
	return d.line
}

func isDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// toUTF8 decodes as a browser does (the Encoding Standard's UTF-8
// decoder): each maximal subpart of an invalid sequence becomes one U+FFFD.
// strings.ToValidUTF8 would fold a run of bad bytes into one, and
// utf8.DecodeRune alone would replace a truncated sequence byte by byte.
func toUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var out strings.Builder
	out.Grow(len(b) + 8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r != utf8.RuneError || size != 1 {
			out.Write(b[:size])
			b = b[size:]
			continue
		}
		out.WriteRune(utf8.RuneError)
		b = b[maximalSubpart(b):]
	}
	return out.String()
}

// maximalSubpart returns the length of the invalid sequence at the start
// of b: its lead byte and the continuation bytes that could still have
// completed it.
func maximalSubpart(b []byte) int {
	lead := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF) // the range of the first continuation byte
	switch {
	case lead >= 0xC2 && lead <= 0xDF:
		need = 1
	case lead >= 0xE0 && lead <= 0xEF:
		need = 2
		if lead == 0xE0 {
			lo = 0xA0
		} else if lead == 0xED {
			hi = 0x9F
		}
	case lead >= 0xF0 && lead <= 0xF4:
		need = 3
		if lead == 0xF0 {
			lo = 0x90
		} else if lead == 0xF4 {
			hi = 0x8F
		}
	default:
		return 1 // not a lead byte
	}
	n := 1
	for n <= need && n < len(b) && b[n] >= lo && b[n] <= hi {
		n++
		lo, hi = 0x80, 0xBF
	}
	return n
}

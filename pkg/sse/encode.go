// Package sse writes and reads the Server-Sent Events wire format
// (WHATWG HTML, "Server-sent events", section 9.2).
//
// The encoder is the broker's only way of producing wire bytes: an event is
// encoded once when it is published and the same bytes go to every
// subscriber. The decoder is a strict implementation of the WHATWG parsing
// algorithm; the broker's tests and clients use it to check that what was
// published is exactly what a browser would receive.
package sse

import (
	"strconv"
	"strings"
)

// DefaultEventType is the type a browser gives an event that has no
// "event:" field. The encoder leaves the field out for it, as the spec of
// the broker requires.
const DefaultEventType = "message"

// AppendEvent appends one event in wire form to dst and returns the
// extended slice:
//
//	id: <id>
//	event: <name>        (left out when name is "" or "message")
//	data: <line>         (one per line of data; at least one)
//	<blank line>
//
// Lines of data are split on LF, CR and CRLF, because a CR inside a
// "data:" line would end the line early for the parser and let the rest of
// the line be read as a new field; after the round trip each of them reads
// as LF. Empty data is written as one empty "data:" line, so the browser
// still dispatches the event (an event with no data line is dropped).
//
// The caller guarantees that name holds no CR, LF or NUL (see
// broker.ValidateEventName); AppendEvent does not check it again on the hot
// path.
func AppendEvent(dst []byte, id uint64, name, data string) []byte {
	dst = append(dst, "id: "...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, '\n')
	return AppendUnnumberedEvent(dst, name, data)
}

// AppendUnnumberedEvent is AppendEvent without an "id:" field. The broker
// uses it for "gap": an event that reports loss must not move the client's
// resume point.
func AppendUnnumberedEvent(dst []byte, name, data string) []byte {
	if name != "" && name != DefaultEventType {
		dst = append(dst, "event: "...)
		dst = append(dst, name...)
		dst = append(dst, '\n')
	}
	dst = appendData(dst, data)
	return append(dst, '\n')
}

func appendData(dst []byte, data string) []byte {
	for {
		i := strings.IndexAny(data, "\r\n")
		if i < 0 {
			dst = append(dst, "data: "...)
			dst = append(dst, data...)
			return append(dst, '\n')
		}
		dst = append(dst, "data: "...)
		dst = append(dst, data[:i]...)
		dst = append(dst, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// EncodedLen is the exact length AppendEvent will add for these fields, so
// a batch can be encoded into one allocation.
func EncodedLen(id uint64, name, data string) int {
	n := len("id: ") + digits(id) + 1
	if name != "" && name != DefaultEventType {
		n += len("event: ") + len(name) + 1
	}
	lines := 1
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '\n':
			lines++
		case '\r':
			lines++
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
				n-- // the LF of a CRLF is not data; it is folded into the break
			}
		}
	}
	// Every line break in data is one byte of data replaced by the "\ndata: "
	// prefix of the next line; the first line has its own prefix.
	n += len(data) - (lines - 1) + lines*len("data: \n")
	return n + 1
}

func digits(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

// AppendRetry appends a block that only sets the client's reconnection
// time. It dispatches no event (its data buffer is empty), which makes it
// the right first block of a response: the client learns at once that it
// is connected and how long to wait before it reconnects.
func AppendRetry(dst []byte, milliseconds int64) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, milliseconds, 10)
	return append(dst, '\n', '\n')
}

// AppendComment appends a comment line. Comments keep idle connections
// alive through proxies and are ignored by every parser. Line breaks in
// text are replaced by spaces so a comment can never become a field.
func AppendComment(dst []byte, text string) []byte {
	dst = append(dst, ':')
	if text != "" {
		dst = append(dst, ' ')
		for i := 0; i < len(text); i++ {
			c := text[i]
			if c == '\r' || c == '\n' {
				c = ' '
			}
			dst = append(dst, c)
		}
	}
	return append(dst, '\n', '\n')
}

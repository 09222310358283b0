package sse_test

// Fuzz targets of the SSE wire format. The seeds (f.Add below and the files
// under testdata/fuzz/<FuzzName>/) run in every `go test` as regression
// cases; scripts/fuzz.sh explores beyond them for a bounded time.

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/sse"
)

// FuzzEncodeRoundTrip checks the broker's promise "what is published is
// what is received": an event the broker accepts, encoded with AppendEvent
// and read back with the strict WHATWG decoder, is exactly one event with
// the same id, the same type and the same data (CR and CRLF read as LF).
func FuzzEncodeRoundTrip(f *testing.F) {
	seeds := []struct {
		id         uint64
		name, data string
	}{
		{0, "", ""},
		{1, "", "hello"},
		{2, "message", "x"},
		{3, "token", "a\nb"},
		{4, "token", "a\rb"},
		{5, "token", "a\r\nb"},
		{6, "t", "\r\n\r\n"},
		{7, "t", "\n"},
		{8, "t", "\r"},
		{9, "t", "tail\r"},
		{10, "t", "\r\nlead"},
		{11, "t", " leading space"},
		{12, "t", "  two spaces"},
		{13, "t", ":colon"},
		{14, "t", "data: injected\n\nid: 99\nevent: stop\n"},
		{15, " spaced name", "x"},
		{16, "a:b", "x"},
		{17, ":", "x"},
		{18, "é世🎉", "é世🎉"},
		{19, strings.Repeat("é", 64), "x"},
		{20, "t", "\xEF\xBB\xBFbom inside data"},
		{21, "t", "nul\x00inside"},
		{22, "t", "a\n\nb"},
		{23, "retry", "retry: 5"},
		{24, "id", "id: 1"},
		{1<<64 - 1, "t", "max id"},
		{broker.EpochFloor(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) + 12345, "t", "a typical id"},
		{26, "t", strings.Repeat("x\r\n", 100)},
	}
	for _, s := range seeds {
		f.Add(s.id, s.name, s.data)
	}
	f.Fuzz(func(t *testing.T, id uint64, name, data string) {
		if name != "" && broker.ValidateEventName(name) != nil {
			t.Skip("the broker never publishes this name")
		}
		wire := sse.AppendEvent(nil, id, name, data)
		if n := sse.EncodedLen(id, name, data); n != len(wire) {
			t.Fatalf("EncodedLen = %d, AppendEvent wrote %d bytes: %q", n, len(wire), wire)
		}
		if bytes.IndexByte(wire, '\r') >= 0 {
			t.Fatalf("wire holds a CR: %q", wire)
		}
		if !bytes.HasSuffix(wire, []byte("\n\n")) {
			t.Fatalf("wire does not end with a blank line: %q", wire)
		}
		wantType := name
		if wantType == "" {
			wantType = sse.DefaultEventType
		}
		if !utf8.ValidString(data) {
			// The broker refuses it (broker.NormalizeData); FuzzDecoder
			// covers what a reader makes of invalid bytes.
			t.Skip("the broker never publishes invalid UTF-8")
		}
		wantData := strings.ReplaceAll(strings.ReplaceAll(data, "\r\n", "\n"), "\r", "\n")
		want := sse.Event{ID: strconv.FormatUint(id, 10), Type: wantType, Data: wantData}

		// Alone, and twice back to back as in one frame: an event's data can
		// never leak into the next event.
		for copies := 1; copies <= 2; copies++ {
			dec := sse.NewDecoder(bytes.NewReader(bytes.Repeat(wire, copies)))
			for i := range copies {
				got, err := dec.Next()
				if err != nil {
					t.Fatalf("copy %d of %q: %v", i, wire, err)
				}
				if got != want {
					t.Fatalf("copy %d of %q decoded as %+q, want %+q", i, wire, got, want)
				}
			}
			if ev, err := dec.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("%q: after %d events got %+q, %v; want EOF", wire, copies, ev, err)
			}
			if dec.LastEventID() != want.ID {
				t.Fatalf("%q: Last-Event-ID %q, want %q", wire, dec.LastEventID(), want.ID)
			}
			if _, ok := dec.Retry(); ok || dec.Comments() != 0 {
				t.Fatalf("%q: the data set a retry or a comment", wire)
			}
		}
	})
}

// FuzzDecoder feeds arbitrary bytes to the strict decoder: it never
// panics, never loops forever, and dispatches exactly what an independent
// implementation of the WHATWG algorithm (below, written from the spec
// text) dispatches.
func FuzzDecoder(f *testing.F) {
	for _, s := range []string{
		"",
		"data: a\n\n",
		"\xEF\xBB\xBFdata: a\n\n",
		"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\n",
		"event: x\n\ndata: b\n\n",
		"id: 7\ndata: a\n\ndata: b\n\n",
		"id: 1\x002\ndata: a\n\n",
		"id\ndata\n\n",
		"data\n\n",
		"data: a\rdata: b\r\r",
		"data: a\r\n\r\n",
		"data: a\n\ndata: b\n",
		"data: a\r",
		"foo: bar\ndata: a\n\n",
		": comment\n\n",
		"retry: 1000\n\n",
		"retry: 99999999999999999999\n\n",
		"retry: -1\n\nretry: 1x\n\n",
		"data:no space\ndata:  two spaces\n\n",
		"event:\ndata: x\n\n",
		"id: 5\n\ndata: x\n\n",
		"id:\ndata: x\n\n",
		"data: \xe2\x82\n\n",
		"event: \xff\ndata: x\n\n",
		"\r\n\r\n\r\n",
		"data: x\n\nid: 9\n",
		"data: x\n\n\n\n\n",
		"id: 1\nevent: token\ndata: a\ndata: b\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		want := whatwgParse(wire)
		dec := sse.NewDecoder(bytes.NewReader(wire))
		var got []sse.Event
		// Each dispatched event consumes at least its blank line, so more
		// events than line ends means the decoder is looping.
		limit := bytes.Count(wire, []byte("\n")) + bytes.Count(wire, []byte("\r")) + 1
		for {
			ev, err := dec.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Next on an in-memory reader: %v", err)
			}
			got = append(got, ev)
			if len(got) > limit {
				t.Fatalf("%d events from %d line ends: the decoder loops", len(got), limit)
			}
			if !utf8.ValidString(ev.ID) || !utf8.ValidString(ev.Type) || !utf8.ValidString(ev.Data) {
				t.Fatalf("event %+q is not valid UTF-8", ev)
			}
			if ev.Type == "" || strings.ContainsRune(ev.ID, 0) {
				t.Fatalf("event %+q: empty type or NUL in id", ev)
			}
		}
		if len(got) != len(want.events) {
			t.Fatalf("%q: decoder dispatched %d events %+q, WHATWG %d %+q", wire, len(got), got, len(want.events), want.events)
		}
		for i := range got {
			if got[i] != want.events[i] {
				t.Fatalf("%q: event %d is %+q, WHATWG gives %+q", wire, i, got[i], want.events[i])
			}
		}
		if dec.LastEventID() != want.lastID {
			t.Fatalf("%q: last event id %q, WHATWG %q", wire, dec.LastEventID(), want.lastID)
		}
		if r, ok := dec.Retry(); ok != want.hasRetry || (ok && r != want.retry) {
			t.Fatalf("%q: retry %d %v, WHATWG %d %v", wire, r, ok, want.retry, want.hasRetry)
		}
		if dec.Comments() != want.comments {
			t.Fatalf("%q: %d comments, WHATWG %d", wire, dec.Comments(), want.comments)
		}
	})
}

type whatwgResult struct {
	events   []sse.Event
	lastID   string
	retry    int64
	hasRetry bool
	comments int
}

// whatwgParse is the "event stream interpretation" of the WHATWG HTML
// standard (9.2.6), step by step, over a whole stream: decode with UTF-8
// decode (BOM stripped, errors replaced per the Encoding Standard), split
// into lines at CRLF, LF or CR, process each complete line, and discard an
// unterminated last line and any undispatched event at the end.
func whatwgParse(b []byte) whatwgResult {
	text := whatwgDecode(bytes.TrimPrefix(b, []byte("\xEF\xBB\xBF")))
	var (
		res              whatwgResult
		data, typ, idBuf string
		lastIDString     string
		lines            []string
		start            int
	)
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case '\n':
			lines = append(lines, text[start:i])
			start = i + 1
		case '\r':
			lines = append(lines, text[start:i])
			if i+1 < len(text) && text[i+1] == '\n' {
				i++
			}
			start = i + 1
		}
	}
	for _, line := range lines {
		if line == "" {
			// Dispatch.
			lastIDString = idBuf
			if data == "" {
				data, typ = "", ""
				continue
			}
			data = strings.TrimSuffix(data, "\n")
			ev := sse.Event{ID: lastIDString, Type: "message", Data: data}
			if typ != "" {
				ev.Type = typ
			}
			res.events = append(res.events, ev)
			data, typ = "", ""
			continue
		}
		if line[0] == ':' {
			res.comments++
			continue
		}
		field, value := line, ""
		if i := strings.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			typ = value
		case "data":
			data += value + "\n"
		case "id":
			if !strings.ContainsRune(value, 0) {
				idBuf = value
			}
		case "retry":
			allDigits := value != ""
			for _, c := range value {
				if c < '0' || c > '9' {
					allDigits = false
				}
			}
			if allDigits {
				// The spec's integer is unbounded; a value beyond int64 is
				// ignored here as by the decoder (no browser can wait that long).
				if v, err := strconv.ParseInt(value, 10, 64); err == nil {
					res.retry, res.hasRetry = v, true
				}
			}
		}
	}
	res.lastID = lastIDString
	return res
}

// whatwgDecode is the Encoding Standard's UTF-8 decoder (without BOM
// handling): every maximal invalid subpart becomes one U+FFFD, so "\xff\xff"
// is two replacement characters and a truncated "\xe2\x82" is one.
func whatwgDecode(b []byte) string {
	var (
		out                strings.Builder
		cp                 rune
		needed, seen       int
		lower, upper       byte = 0x80, 0xBF
		replacementAsBytes      = "\uFFFD"
	)
	for i := 0; i < len(b); i++ {
		c := b[i]
		if needed == 0 {
			switch {
			case c <= 0x7F:
				out.WriteByte(c)
			case c >= 0xC2 && c <= 0xDF:
				needed, cp = 1, rune(c&0x1F)
			case c >= 0xE0 && c <= 0xEF:
				if c == 0xE0 {
					lower = 0xA0
				}
				if c == 0xED {
					upper = 0x9F
				}
				needed, cp = 2, rune(c&0x0F)
			case c >= 0xF0 && c <= 0xF4:
				if c == 0xF0 {
					lower = 0x90
				}
				if c == 0xF4 {
					upper = 0x8F
				}
				needed, cp = 3, rune(c&0x07)
			default:
				out.WriteString(replacementAsBytes)
			}
			continue
		}
		if c < lower || c > upper {
			cp, needed, seen, lower, upper = 0, 0, 0, 0x80, 0xBF
			out.WriteString(replacementAsBytes)
			i-- // the byte is processed again as the start of a sequence
			continue
		}
		lower, upper = 0x80, 0xBF
		cp = cp<<6 | rune(c&0x3F)
		seen++
		if seen == needed {
			out.WriteRune(cp)
			cp, needed, seen = 0, 0, 0
		}
	}
	if needed != 0 {
		out.WriteString(replacementAsBytes)
	}
	return out.String()
}

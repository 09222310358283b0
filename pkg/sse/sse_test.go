package sse

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAppendEventWireBytes(t *testing.T) {
	tests := []struct {
		name       string
		id         uint64
		event      string
		data, want string
	}{
		{"plain", 1, "", "hello", "id: 1\ndata: hello\n\n"},
		{"default name left out", 2, "message", "x", "id: 2\ndata: x\n\n"},
		{"named", 3, "token", "x", "id: 3\nevent: token\ndata: x\n\n"},
		{"empty data still has a data line", 4, "stop", "", "id: 4\nevent: stop\ndata: \n\n"},
		{"LF splits lines", 5, "", "a\nb", "id: 5\ndata: a\ndata: b\n\n"},
		{"CR splits lines", 6, "", "a\rb", "id: 6\ndata: a\ndata: b\n\n"},
		{"CRLF is one break", 7, "", "a\r\nb", "id: 7\ndata: a\ndata: b\n\n"},
		{"trailing LF kept", 8, "", "a\n", "id: 8\ndata: a\ndata: \n\n"},
		{"leading space kept", 9, "", " a", "id: 9\ndata:  a\n\n"},
		{"colon in data", 10, "", "id: 99", "id: 10\ndata: id: 99\n\n"},
		{"non-ASCII", 18446744073709551615, "", "héllo 世界 🎉", "id: 18446744073709551615\ndata: héllo 世界 🎉\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendEvent(nil, tc.id, tc.event, tc.data)
			if string(got) != tc.want {
				t.Fatalf("AppendEvent = %q, want %q", got, tc.want)
			}
			if n := EncodedLen(tc.id, tc.event, tc.data); n != len(got) {
				t.Fatalf("EncodedLen = %d, encoded %d bytes", n, len(got))
			}
		})
	}
}

func TestRoundTripThroughDecoder(t *testing.T) {
	datas := []string{"", "x", "a\nb", "a\rb", "a\r\nb", "\n", "\r\n\r\n", "a\n\nb", " lead", ":colon", "data: x", "é世🎉", "\r", "tail\r"}
	var wire []byte
	wire = AppendRetry(wire, 3000)
	wire = AppendComment(wire, "hi\nthere")
	for i, d := range datas {
		wire = AppendEvent(wire, uint64(i+1), "ev", d)
	}
	dec := NewDecoder(bytes.NewReader(wire))
	for i, d := range datas {
		ev, err := dec.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(d)
		if ev.Data != want || ev.Type != "ev" || ev.ID != itoa(i+1) {
			t.Fatalf("event %d = %+v, want data %q", i, ev, want)
		}
	}
	if _, err := dec.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after last event: %v, want EOF", err)
	}
	if r, ok := dec.Retry(); !ok || r != 3000 {
		t.Fatalf("retry = %d %v", r, ok)
	}
	if dec.Comments() != 1 {
		t.Fatalf("comments = %d", dec.Comments())
	}
}

func TestDecoderFollowsWHATWG(t *testing.T) {
	tests := []struct {
		name string
		wire string
		want []Event
	}{
		{"BOM skipped", "\xEF\xBB\xBFdata: a\n\n", []Event{{"", "message", "a"}}},
		{"no data, no dispatch", "event: x\n\ndata: b\n\n", []Event{{"", "message", "b"}}},
		{"id persists", "id: 7\ndata: a\n\ndata: b\n\n", []Event{{"7", "message", "a"}, {"7", "message", "b"}}},
		{"id with NUL ignored", "id: 1\x002\ndata: a\n\n", []Event{{"", "message", "a"}}},
		{"field without colon", "data\n\n", []Event{{"", "message", ""}}},
		{"CR line ends", "data: a\rdata: b\r\r", []Event{{"", "message", "a\nb"}}},
		{"unterminated discarded", "data: a\n\ndata: b\n", []Event{{"", "message", "a"}}},
		{"unknown field ignored", "foo: bar\ndata: a\n\n", []Event{{"", "message", "a"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dec := NewDecoder(strings.NewReader(tc.wire))
			var got []Event
			for {
				ev, err := dec.Next()
				if err != nil {
					break
				}
				got = append(got, ev)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("event %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestAppendEventDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendEvent(buf[:0], 123456789, "token", "some data\nmore")
	})
	if allocs != 0 {
		t.Fatalf("AppendEvent allocates %v times per call", allocs)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// An event whose lines end with lone CRs is dispatched at its blank line,
// without waiting for the next byte (which may come only with the next
// event or heartbeat): the decoder must not peek past a CR.
func TestLoneCRDispatchesAtOnce(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	go func() { _, _ = io.WriteString(w, "id: 1\rdata: hello\r\r") }() // then nothing more
	got := make(chan Event, 1)
	go func() {
		if ev, err := NewDecoder(r).Next(); err == nil {
			got <- ev
		}
	}()
	select {
	case ev := <-got:
		if ev.ID != "1" || ev.Data != "hello" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the event was held back waiting for a byte after its last CR")
	}
	// CRLF still counts as one line end.
	ev, err := NewDecoder(strings.NewReader("id: 2\r\ndata: a\r\n\r\nid: 3\r\ndata: b\r\n\r\n")).Next()
	if err != nil || ev.ID != "2" || ev.Data != "a" {
		t.Fatalf("CRLF: %+v %v", ev, err)
	}
}

// SetMaxSize bounds an event's data (and a line, at that plus its field
// name): events within it decode as before, data one byte over it or a
// longer line is ErrTooLarge, not held whole.
func TestDecoderMaxSize(t *testing.T) {
	for _, tc := range []struct {
		name, stream string
		wantErr      bool
	}{
		{"data of exactly the bound", "data: 123456789012\n\n", false},
		{"data one over", "data: 1234567890123\n\n", true},
		{"lines joined within", "data: 12345\ndata: 123456\n\n", false}, // 12 with the LF
		{"lines joined over", "data: 1234\ndata: 5678\ndata: 9012\n\n", true},
		{"long comment", ": " + strings.Repeat("x", 40) + "\n\ndata: ok\n\n", true},
		// A line holds the bound plus lineRoom (16): 28 bytes here.
		{"line of exactly the line bound", ": " + strings.Repeat("x", 26) + "\n\ndata: ok\n\n", false},
		{"line one over the line bound", ": " + strings.Repeat("x", 27) + "\n\ndata: ok\n\n", true},
		// Each invalid byte becomes U+FFFD, 3 bytes: the bound is on the data.
		{"invalid bytes within", "data: \xff\xff\xff\xff\n\n", false},
		{"invalid bytes over once replaced", "data: \xff\xff\xff\xff\xff\n\n", true},
	} {
		d := NewDecoder(strings.NewReader(tc.stream))
		d.SetMaxSize(12)
		_, err := d.Next()
		if tc.wantErr != errors.Is(err, ErrTooLarge) || (!tc.wantErr && err != nil) {
			t.Errorf("%s: %v, want ErrTooLarge %v", tc.name, err, tc.wantErr)
		}
	}
}

// LastEventID is what a reconnect sends: the id as of the last blank line,
// not an id line of an event the end of the stream cut off.
func TestLastEventIDIsTheDispatchedOne(t *testing.T) {
	d := NewDecoder(strings.NewReader("id: 1\ndata: a\n\nid: 2\ndata: b\n"))
	if ev, err := d.Next(); err != nil || ev.ID != "1" {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	if _, err := d.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("the cut event: %v, want EOF", err)
	}
	if got := d.LastEventID(); got != "1" {
		t.Fatalf("LastEventID = %q after an event cut at its id line, want %q", got, "1")
	}
}

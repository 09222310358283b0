package broker_test

// Fuzz targets of the broker's input rules. Each one compares the
// implementation with the rule of SPEC.md written again here, independently
// (a regular expression or a direct reading of the text). The seeds (f.Add
// and testdata/fuzz/<FuzzName>/) run in every `go test` as regression
// cases; scripts/fuzz.sh explores beyond them for a bounded time.

import (
	"bytes"
	"errors"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/sse"
)

// SPEC: "A resume point must be 1 to 20 decimal digits without leading
// zeros, or `0`" and ids "fit an unsigned 64-bit integer"; "An empty value
// means no resume point".
var idRule = regexp.MustCompile(`^(0|[1-9][0-9]{0,19})$`)

var maxUint64 = new(big.Int).SetUint64(1<<64 - 1)

func FuzzParseID(f *testing.F) {
	for _, s := range []string{
		"", "0", "1", "7", "10", "00", "01", "007", "-1", "+1", " 1", "1 ", "1.0", "1e3", "0x10",
		"18446744073709551615", "18446744073709551616", "99999999999999999999",
		"100000000000000000000", "123456789012345678901", "abc", "１", "٣", "1\x00", "\n1",
		"9223372036854775807", "9223372036854775808",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := broker.ParseID(s)
		want, valid := uint64(0), s == ""
		if idRule.MatchString(s) {
			v, ok := new(big.Int).SetString(s, 10)
			if !ok {
				t.Fatalf("the rule's regexp matched a non-number %q", s)
			}
			if v.Cmp(maxUint64) <= 0 {
				want, valid = v.Uint64(), true
			}
		}
		switch {
		case valid && err != nil:
			t.Fatalf("ParseID(%q) refused a valid id: %v", s, err)
		case !valid && err == nil:
			t.Fatalf("ParseID(%q) = %d, want an error", s, got)
		case !valid && !errors.Is(err, broker.ErrInvalidID):
			t.Fatalf("ParseID(%q) error %v is not ErrInvalidID (the API would answer 500)", s, err)
		case valid && got != want:
			t.Fatalf("ParseID(%q) = %d, want %d", s, got, want)
		}
		if valid && s != "" && broker.FormatID(got) != s {
			t.Fatalf("FormatID(ParseID(%q)) = %q: an id has two spellings", s, broker.FormatID(got))
		}
		if err != nil && len(err.Error()) > 300 { // the input is quoted, at most 32 bytes of it
			t.Fatalf("error message of %d bytes echoes the whole input: %.80q", len(err.Error()), err.Error())
		}
	})
}

// SPEC: "`[A-Za-z0-9._~-]{1,128}` after percent-decoding, and not made of
// dots alone".
var (
	streamIDChars = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
	dotsOnly      = regexp.MustCompile(`^\.+$`)
)

func FuzzValidateStreamID(f *testing.F) {
	for _, s := range []string{
		"", "a", "chat-42", "A.b_c~d-e", ".", "..", "...", "..a", "a..", ".-.",
		strings.Repeat("x", 128), strings.Repeat("x", 129), strings.Repeat(".", 128),
		"a/b", "a b", "a%20b", "a+b", "é", "a\x00", "a\n", "ａ", "*", "chat-*", "~", "-", "_",
		"0", strings.Repeat("é", 64),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := streamIDChars.MatchString(s) && !dotsOnly.MatchString(s)
		err := broker.ValidateStreamID(s)
		switch {
		case want && err != nil:
			t.Fatalf("ValidateStreamID(%q) refused a valid id: %v", s, err)
		case !want && err == nil:
			t.Fatalf("ValidateStreamID(%q) accepted an invalid id", s)
		case !want && !errors.Is(err, broker.ErrInvalidStreamID):
			t.Fatalf("ValidateStreamID(%q) error %v is not ErrInvalidStreamID", s, err)
		}
	})
}

// FuzzValidateMessages checks one published message against the SPEC's
// rules for names ("1 to 64 characters, no CR, LF or NUL"; "stop" and "gap"
// reserved; absent means "message") and data ("valid UTF-8"; "CR and CRLF
// arrive as LF"), then that the accepted message, encoded as the store
// encodes it, reaches a WHATWG reader unchanged.
func FuzzValidateMessages(f *testing.F) {
	for _, s := range []struct{ name, data string }{
		{"", ""},
		{"", "hello"},
		{"message", "x"},
		{"token", "a\r\nb\rc\nd"},
		{"stop", "x"},
		{"gap", "x"},
		{"Stop", "x"},
		{"stop ", "x"},
		{"a\nb", "x"},
		{"a\rb", "x"},
		{"a\x00b", "x"},
		{strings.Repeat("a", 64), "x"},
		{strings.Repeat("a", 65), "x"},
		{strings.Repeat("é", 64), "x"},
		{strings.Repeat("é", 65), "x"},
		{"\xff", "x"},
		{"t", "\xff"},
		{"t", "a\xe2\x82"},
		{"t", "\xed\xa0\x80"},
		{" ", "x"},
		{":", "data: x"},
		{"t", "\r"},
		{"t", "\r\r\n\n"},
		{"t", "nul\x00ok"},
		{"🎉", "🎉"},
	} {
		f.Add(s.name, s.data)
	}
	f.Fuzz(func(t *testing.T, name, data string) {
		wantName := name
		if wantName == "" {
			wantName = broker.EventMessage
		}
		nameOK := utf8.ValidString(wantName) &&
			utf8.RuneCountInString(wantName) >= 1 && utf8.RuneCountInString(wantName) <= 64 &&
			!strings.ContainsAny(wantName, "\r\n\x00") &&
			wantName != "stop" && wantName != "gap"
		dataOK := utf8.ValidString(data)
		msgs := []broker.Message{{Name: name, Data: data}}
		err := broker.ValidateMessages(msgs)
		if (err == nil) != (nameOK && dataOK) {
			t.Fatalf("ValidateMessages(%q, %q) = %v; by the rule: name ok %v, data ok %v", name, data, err, nameOK, dataOK)
		}
		if err != nil {
			if !errors.Is(err, broker.ErrInvalidEvent) {
				t.Fatalf("ValidateMessages(%q, %q) error %v is not ErrInvalidEvent", name, data, err)
			}
			return
		}
		wantData := strings.ReplaceAll(strings.ReplaceAll(data, "\r\n", "\n"), "\r", "\n")
		if msgs[0].Name != wantName || msgs[0].Data != wantData {
			t.Fatalf("normalized to %+q, want name %q data %q", msgs[0], wantName, wantData)
		}

		// Stored and sent as the store does: one frame, read back by a
		// strict WHATWG reader.
		const id = 1<<40 + 17
		frame := broker.EncodeFrame("s", []broker.Event{{ID: id, Name: msgs[0].Name, Data: msgs[0].Data}}, false)
		if cap(frame.Wire) != len(frame.Wire) {
			t.Fatalf("EncodedLen planned %d bytes, the encoding took %d", cap(frame.Wire), len(frame.Wire))
		}
		if !bytes.Equal(frame.Events[0].Wire, frame.Wire) {
			t.Fatalf("the event's wire bytes are not the frame's")
		}
		ev, err := sse.NewDecoder(bytes.NewReader(frame.Wire)).Next()
		if err != nil {
			t.Fatalf("decoding %q: %v", frame.Wire, err)
		}
		if want := (sse.Event{ID: broker.FormatID(id), Type: wantName, Data: wantData}); ev != want {
			t.Fatalf("published %+q, a browser receives %+q", want, ev)
		}
	})
}

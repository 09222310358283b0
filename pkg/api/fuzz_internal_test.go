package api

// Fuzz targets of the publish body decoder and of stream ids in request
// paths. The seeds (f.Add and testdata/fuzz/<FuzzName>/) run in every `go
// test` as regression cases; scripts/fuzz.sh explores beyond them for a
// bounded time.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// FuzzDecodeMessages feeds arbitrary bodies to the JSON publish decoder
// (and to the close body decoder). It never panics; every error is one the
// API answers with 400 (never 500); what it accepts is at most 1,000
// messages of valid UTF-8; and when the body is, by an independent reading
// with encoding/json into generic values, an object or an array of objects
// {"event": non-empty string, "data": any}, the decoded messages carry
// exactly those names and data (a string as is, any other value as its
// compact JSON text). Half a surrogate pair (a \u escape) in a string
// that is decoded is refused, never turned into U+FFFD.
func FuzzDecodeMessages(f *testing.F) {
	for _, s := range []string{
		`{"data":"hello"}`,
		`{"event":"token","data":"a\nb"}`,
		`[{"data":"a"},{"event":"t","data":"b"}]`,
		`[]`,
		`{}`,
		`[{}]`,
		`{"data":{"x":[1, 2, {"y": null}]}}`,
		`{"data":null}`,
		`{"data":1e400}`,
		`{"data":-0.0}`,
		`{"data":"\ud800"}`,
		`{"data":"\u0000"}`,
		`{"event":"","data":"x"}`,
		`{"event":null,"data":"x"}`,
		`{"event":5,"data":"x"}`,
		`{"event":"stop","data":"x"}`,
		`{"Event":"t","DATA":"x"}`,
		`{"data":"a","data":"b"}`,
		`{"data":"x","extra":1}`,
		`[{"data":"ok"},{"data":"x","extra":1}]`,
		`"just a string"`,
		`null`,
		`42`,
		` 	{"data":"leading whitespace"}  `,
		`{"data":"x"} {"data":"y"}`,
		`{"data":"x"`,
		"{\"data\":\"\xff\"}",
		"\xEF\xBB\xBF{\"data\":\"bom\"}",
		`[` + strings.Repeat(`{"data":"x"},`, broker.MaxBatchEvents) + `{"data":"x"}]`,
		`[[{"data":"x"}]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := decodeMessages(body)
		lone := loneSurrogate(body)
		if err != nil {
			if !errors.Is(err, errInvalidJSON) && !errors.Is(err, broker.ErrInvalidEvent) && !errors.Is(err, broker.ErrInvalidRequest) {
				t.Fatalf("decodeMessages(%q) error %v maps to no 400 code", body, err)
			}
		} else if lone && !bytes.ContainsRune(body, utf8.RuneError) && !bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
			// Half a pair may stay in data given as JSON (it is delivered
			// as its text); where a string is decoded it must be refused,
			// not turned into U+FFFD.
			for i, m := range msgs {
				if strings.ContainsRune(m.Data, utf8.RuneError) || strings.ContainsRune(m.Name, utf8.RuneError) {
					t.Fatalf("decodeMessages(%q) message %d %+q: half a surrogate pair became U+FFFD", body, i, m)
				}
			}
		}
		if err == nil {
			if len(msgs) > broker.MaxBatchEvents {
				t.Fatalf("decodeMessages accepted %d messages", len(msgs))
			}
			for i, m := range msgs {
				if !utf8.ValidString(m.Data) || !utf8.ValidString(m.Name) {
					t.Fatalf("message %d %+q is not valid UTF-8", i, m)
				}
			}
			// SPEC: "one object or an array of objects".
			if i, elem, ok := nonObject(body); ok {
				t.Fatalf("decodeMessages(%q) accepted element %d %s, which is not an object", body, i, elem)
			}
			checked := append([]broker.Message(nil), msgs...)
			if err := broker.ValidateMessages(checked); err != nil {
				if !errors.Is(err, broker.ErrInvalidEvent) {
					t.Fatalf("ValidateMessages after decodeMessages(%q): %v is not ErrInvalidEvent", body, err)
				}
			} else {
				for i, m := range checked {
					if broker.ValidateEventName(m.Name) != nil || strings.ContainsRune(m.Data, '\r') {
						t.Fatalf("validated message %d %+q breaks the rules", i, m)
					}
				}
			}
		}

		if want, ok := expectedMessages(body); ok && !lone {
			switch {
			case len(want) > broker.MaxBatchEvents:
				if !errors.Is(err, broker.ErrInvalidEvent) {
					t.Fatalf("%d events in one body: %v, want ErrInvalidEvent", len(want), err)
				}
			case err != nil:
				t.Fatalf("decodeMessages(%q) refused a well-formed body: %v", body, err)
			case len(msgs) != len(want):
				t.Fatalf("decodeMessages(%q) = %d messages, want %d", body, len(msgs), len(want))
			default:
				for i := range want {
					if msgs[i] != want[i] {
						t.Fatalf("decodeMessages(%q) message %d = %+q, want %+q", body, i, msgs[i], want[i])
					}
				}
			}
		}

		if data, err := decodeCloseBody(body); err != nil {
			if !errors.Is(err, errInvalidJSON) && !errors.Is(err, broker.ErrInvalidEvent) && !errors.Is(err, broker.ErrInvalidRequest) {
				t.Fatalf("decodeCloseBody(%q) error %v maps to no 400 code", body, err)
			}
		} else if !utf8.ValidString(data) {
			t.Fatalf("decodeCloseBody(%q) = %q, not valid UTF-8", body, data)
		}
	})
}

// nonObject returns the first top-level value or array element of body
// that is not a JSON object.
func nonObject(body []byte) (int, string, bool) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var elems []json.RawMessage // fresh: Unmarshal would write into the elements' arrays
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &elems); err != nil {
			return 0, string(trimmed), true
		}
	} else {
		elems = []json.RawMessage{trimmed}
	}
	for i, e := range elems {
		if len(e) == 0 || e[0] != '{' {
			return i, string(e), true
		}
	}
	return 0, "", false
}

// expectedMessages reads body independently of decodeMessages. It reports
// ok only for bodies whose meaning is unambiguous: valid UTF-8, an object or
// an array of objects, each with no other member than "event" (a non-empty
// string) and "data" (any value), spelled in lower case.
func expectedMessages(body []byte) ([]broker.Message, bool) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if !utf8.Valid(body) || len(trimmed) == 0 {
		return nil, false
	}
	var elems []json.RawMessage
	switch trimmed[0] {
	case '[':
		if err := json.Unmarshal(body, &elems); err != nil {
			return nil, false
		}
	case '{':
		elems = []json.RawMessage{body}
	default:
		return nil, false
	}
	out := make([]broker.Message, 0, len(elems))
	for _, raw := range elems {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil || repeatsAMember(raw) {
			return nil, false
		}
		var m broker.Message
		for k, v := range obj {
			switch k {
			case "event":
				if err := json.Unmarshal(v, &m.Name); err != nil || m.Name == "" {
					return nil, false
				}
			case "data":
				var s string
				if v[0] == '"' {
					if err := json.Unmarshal(v, &s); err != nil {
						return nil, false
					}
				} else {
					var buf bytes.Buffer
					if err := json.Compact(&buf, v); err != nil {
						return nil, false
					}
					s = buf.String()
				}
				m.Data = s
			default:
				return nil, false
			}
		}
		out = append(out, m)
	}
	return out, true
}

// repeatsAMember reports whether the JSON object raw gives a member twice
// (a map keeps only the last).
func repeatsAMember(raw []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		name, err := dec.Token()
		if err != nil {
			return false
		}
		if seen[name.(string)] {
			return true
		}
		seen[name.(string)] = true
		if err := dec.Decode(new(json.RawMessage)); err != nil {
			return false
		}
	}
	return false
}

// The SPEC's stream id rule, written again: "`[A-Za-z0-9._~-]{1,128}` after
// percent-decoding, and not made of dots alone".
var (
	fuzzStreamIDChars = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
	fuzzDotsOnly      = regexp.MustCompile(`^\.+$`)
)

// FuzzStreamIDInPath sends GET /v1/streams/<segment> through the whole
// router, as the HTTP server parses it from a request line: the answer is
// 404 not_found (no such stream yet) exactly when the percent-decoded
// segment obeys the stream id rule, else 400 invalid_stream_id.
func FuzzStreamIDInPath(f *testing.F) {
	hub := broker.NewHub(100, 16)
	store := memory.New(broker.StoreOptions{MaxEvents: 10, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 100}, hub)
	f.Cleanup(func() { _ = store.Close() })
	srv := New(Options{
		Broker: broker.New(store, hub), Logger: zerolog.Nop(),
		Retry: time.Second, Heartbeat: time.Second, MaxBody: 1 << 10,
	})
	for _, s := range []string{
		"chat-42", "a", ".", "..", "...", "..a", "%2E", "%2e%2E", "%2E%2Ea", "a%2Fb", "a%2fb", "%41",
		"a%20b", "a+b", "%", "%zz", "%C3%A9", "a;b", "~", "%7E", "a%00b", "a%0Ab",
		strings.Repeat("x", 128), strings.Repeat("x", 129), strings.Repeat("%78", 128), strings.Repeat("%78", 129),
		"a:b", "a@b", "*", "%2A",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, segment string) {
		if segment == "" {
			t.Skip("GET /v1/streams/ is another route (404 not_found)")
		}
		for i := 0; i < len(segment); i++ {
			// What a client sends: visible ASCII, no path or query delimiter.
			if c := segment[i]; c <= ' ' || c >= 0x7F || c == '/' || c == '?' || c == '#' {
				t.Skip("not a single path segment on the wire")
			}
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(
			"GET /v1/streams/" + segment + " HTTP/1.1\r\nHost: broker\r\n\r\n")))
		if err != nil {
			t.Skip("the HTTP server refuses this request line itself")
		}
		id, err := url.PathUnescape(segment)
		wantOK := err == nil && fuzzStreamIDChars.MatchString(id) && !fuzzDotsOnly.MatchString(id)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		var body errorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		switch {
		case wantOK && (rec.Code != http.StatusNotFound || body.Error != "not_found"):
			t.Fatalf("GET /v1/streams/%s (id %q): %d %s, want 404 not_found", segment, id, rec.Code, rec.Body)
		case !wantOK && (rec.Code != http.StatusBadRequest || body.Error != "invalid_stream_id"):
			t.Fatalf("GET /v1/streams/%s (id %q): %d %s, want 400 invalid_stream_id", segment, id, rec.Code, rec.Body)
		}
	})
}

// loneSurrogate finds exactly the \u escapes of half a surrogate pair.
func TestLoneSurrogate(t *testing.T) {
	for _, tc := range []struct {
		json string
		lone bool
	}{
		{`{"data":"plain"}`, false},
		{`{"data":"\ud83d\ude00"}`, false}, // a whole pair: one character
		{`{"data":"\uD83D\uDE00"}`, false}, // in upper case
		{`{"data":"\u00e9\u20ac"}`, false}, // no surrogates at all
		{`{"data":"\\ud800"}`, false},      // an escaped backslash, then the letters ud800
		{`{"data":"\ud800"}`, true},        // high half alone
		{`{"data":"\udc00"}`, true},        // low half alone
		{`{"data":"\ud800x"}`, true},       // high half, then not an escape
		{`{"data":"\ud800\n"}`, true},      // high half, then another escape
		{`{"data":"\ud800\u0041"}`, true},  // high half, then a \u that is not a low half
		{`{"data":"\ude00\ud83d"}`, true},  // a pair in the wrong order
		{`{"data":"\\\ud800"}`, true},      // an escaped backslash, then a high half
		{`{"event":"\udfff","data":"x"}`, true},
		{`{"data":{"k":"\ud800"}}`, true}, // inside data that is JSON
	} {
		if got := loneSurrogate([]byte(tc.json)); got != tc.lone {
			t.Errorf("loneSurrogate(%s) = %v, want %v", tc.json, got, tc.lone)
		}
	}
}

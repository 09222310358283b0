package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/sse-broker/broker/internal/jsonobject"
	"github.com/sse-broker/broker/pkg/broker"
)

// checkJSONBody refuses a JSON request body that encoding/json would
// refuse, or accept only by changing it, with a message a person can act
// on: what (want) the body should have been is part of each message.
//
//   - Invalid UTF-8: encoding/json replaces it with U+FFFD and goes on, so
//     the event delivered would not be the event published. 400
//     invalid_json. (A \u escape of half a surrogate pair is the same
//     where a string is decoded; decodedString refuses it there.)
//   - Bad syntax: 400 invalid_json, with encoding/json's description and
//     the byte offset.
//   - Valid JSON nested deeper than encoding/json's limit (10,000): 400
//     invalid_request, since the body is JSON, just not one it will read.
func checkJSONBody(body []byte, want string) error {
	if !utf8.Valid(body) {
		return fmt.Errorf("%w: the body is not valid UTF-8; want %s", errInvalidJSON, want)
	}
	if !json.Valid(body) {
		// Unmarshal into a RawMessage only scans: its error says what
		// Valid found, without building anything.
		var syntax *json.SyntaxError
		if err := json.Unmarshal(body, new(json.RawMessage)); errors.As(err, &syntax) {
			if strings.Contains(syntax.Error(), "exceeded max depth") {
				return fmt.Errorf("%w: the body nests arrays and objects deeper than 10000 levels; want %s", broker.ErrInvalidRequest, want)
			}
			return fmt.Errorf("%w: %s at byte %d; want %s", errInvalidJSON, syntax.Error(), syntax.Offset, want)
		}
		return fmt.Errorf("%w: the body is not one JSON document; want %s", errInvalidJSON, want)
	}
	return nil
}

// decodedString decodes raw, a JSON string that is to be delivered as
// text (an event's name, or data given as a string), refusing a \u
// escape of half a UTF-16 surrogate pair, which encoding/json would
// deliver as U+FFFD. (Data given as any other JSON value is delivered as
// its JSON text, escapes and all, so it may have one.)
func decodedString(raw json.RawMessage, member string) (string, error) {
	if loneSurrogate(raw) {
		return "", fmt.Errorf(`%w: %q has a \u escape of half a UTF-16 surrogate pair, which is not a character`, errInvalidJSON, member)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %q: %v", errInvalidJSON, member, err)
	}
	return s, nil
}

// loneSurrogate reports whether a valid JSON text has a \u escape of a
// UTF-16 surrogate (D800-DFFF) that is not half of a high-low pair.
// Backslashes occur only inside strings in valid JSON, so the whole text
// can be scanned.
func loneSurrogate(b []byte) bool {
	for i := 0; i < len(b); i++ {
		next := bytes.IndexByte(b[i:], '\\')
		if next < 0 {
			return false
		}
		i += next + 1 // the escaped character; for any but u, nothing more to see
		if i >= len(b) || b[i] != 'u' {
			continue
		}
		r, ok := hex4(b[i+1:])
		if !ok {
			continue // not valid JSON; json.Valid has refused it already
		}
		i += 4 // at the last hex digit
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return true // a low half with no high half before it
		case r >= 0xD800 && r <= 0xDBFF:
			if i+6 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
				if lo, ok := hex4(b[i+3:]); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 6
					continue
				}
			}
			return true // a high half with no low half after it
		}
	}
	return false
}

// hex4 decodes the four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// decodeStrict decodes raw, valid JSON (checkJSONBody), into dst, a
// pointer to a struct, refusing members dst does not have; its error says
// what is wrong in the API's terms (decodeProblem), for the caller to wrap
// with its code.
func decodeStrict(raw []byte, dst any) error {
	if err := checkMemberNames(raw, dst); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return errors.New(decodeProblem(err))
	}
	return nil
}

// checkMemberNames refuses what encoding/json would take silently in raw,
// a valid JSON object (anything else is left to Decode): a member whose
// name matches one of dst's json names only when case is ignored, and a
// member given twice, whose last value would win. Either way the event
// published would not be the one the client meant: {"EVENT": "x"} would go
// out as a "message", {"data": "a", "DATA": "b"} as "b". It allocates
// nothing for names without escapes: it runs on every JSON publish.
func checkMemberNames(raw []byte, dst any) error {
	t := reflect.TypeOf(dst).Elem()
	var names [4]string // the API's objects have 1 or 2 members
	known := names[:0]
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		known = append(known, name)
	}
	// An unknown member, once or twice, is left to Decode to refuse.
	return jsonobject.CheckNames(raw, known...)
}

// decodeProblem says what is wrong with a JSON object of valid syntax
// that did not decode, in the terms of the API: encoding/json's own text
// names Go types and struct fields ("Go struct field jsonMessage.event of
// type string").
func decodeProblem(err error) string {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		if typ.Field == "" {
			return "the body must be a JSON object, not " + typ.Value
		}
		want := "of another type"
		if typ.Type != nil && typ.Type.Kind() == reflect.String {
			want = "a string"
		}
		return fmt.Sprintf("%q must be %s, not %s", typ.Field, want, typ.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown member " + name
	}
	return err.Error()
}

// jsonKind names the kind of the JSON value raw (valid, not empty) holds,
// as encoding/json's messages do.
func jsonKind(raw []byte) string {
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// Package jsonobject reads a JSON object's members as they are written,
// for the checks encoding/json does not make when it decodes into a
// struct: it matches member names to fields without regard to case, and
// lets the last of a repeated member win. Either way what is decoded is
// not what the sender (or whoever checked the text on its way) read.
package jsonobject

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Members calls f with the name and the raw value of each member of raw,
// in order, until f returns an error, which it returns. raw must be valid
// JSON (json.Valid); anything but an object has no members. Names are
// decoded; it allocates nothing for names without escapes.
func Members(raw []byte, f func(name, value []byte) error) error {
	i := skipSpace(raw, 0)
	if i == len(raw) || raw[i] != '{' {
		return nil
	}
	for i = skipSpace(raw, i+1); raw[i] != '}'; i = skipSpace(raw, i) {
		if raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
		end := stringEnd(raw, i)
		name := raw[i+1 : end-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			var s string
			if err := json.Unmarshal(raw[i:end], &s); err != nil {
				return nil // not valid JSON after all: the decoder says why
			}
			name = []byte(s)
		}
		i = skipSpace(raw, end)      // at the ':'
		start := skipSpace(raw, i+1) // at the value
		i = valueEnd(raw, start)
		if err := f(name, raw[start:i]); err != nil {
			return err
		}
	}
	return nil
}

// CheckNames refuses, in raw (valid JSON), a member whose name is one of
// known only when case is ignored, and a member of known given twice.
// Other members, and anything but an object, are the decoder's to judge.
func CheckNames(raw []byte, known ...string) error {
	var seen uint64 // by index in known
	return Members(raw, func(name, _ []byte) error {
		for i, k := range known {
			if string(name) == k {
				if i < 64 && seen&(1<<i) != 0 {
					return fmt.Errorf("member %q is given twice", name)
				}
				seen |= 1 << i
				return nil
			}
			if strings.EqualFold(k, string(name)) {
				return fmt.Errorf("unknown member %q (member names are case-sensitive: %q)", name, k)
			}
		}
		return nil
	})
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the JSON string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++ // the escaped character, a quote maybe
		}
	}
	return i + 1
}

// valueEnd returns the index after the JSON value that starts at b[i].
func valueEnd(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = stringEnd(b, i) - 1
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of a number, true, false or null
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

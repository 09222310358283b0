package jsonobject

import (
	"slices"
	"strings"
	"testing"
)

// Members names the members of an object whatever their values hold
// (strings with quotes, braces and escapes, nested objects and arrays,
// numbers, literals, white space), decoding escaped names.
func TestObjectMembers(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want []string
	}{
		{`{}`, nil},
		{` { } `, nil},
		{`[{"a":1}]`, nil},
		{`"x"`, nil},
		{`{"a":1}`, []string{"a"}},
		{`{ "a" : -1.5e3 , "b":true,"c":null,"d":false }`, []string{"a", "b", "c", "d"}},
		{`{"a":"x\"}{,:","b":"\\"}`, []string{"a", "b"}},
		{`{"a":{"x":[1,{"y":"}"}],"z":{}},"b":[[],[{}]],"c":""}`, []string{"a", "b", "c"}},
		{"{\n\t\"a\"\r\n:\n[ 1 , 2 ]\n,\n\"b\":{ }\n}", []string{"a", "b"}},
		{`{"\u0065vent":1,"d\"q":2,"":3}`, []string{"event", `d"q`, ""}},
		{`{"a":1,"a":2}`, []string{"a", "a"}},
	} {
		var got []string
		err := Members([]byte(tc.raw), func(name, _ []byte) error {
			got = append(got, string(name))
			return nil
		})
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Members(%s) = %q, %v; want %q", tc.raw, got, err, tc.want)
		}
	}
}

// Members hands each member's value as written, whatever it holds.
func TestMemberValues(t *testing.T) {
	raw := `{ "a" : -1.5e3 , "b":{"x":[1,"}"]},"c":"q\"}" ,"d":null}`
	var got []string
	if err := Members([]byte(raw), func(_, value []byte) error {
		got = append(got, string(value))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{`-1.5e3`, `{"x":[1,"}"]}`, `"q\"}"`, `null`}; !slices.Equal(got, want) {
		t.Fatalf("values %q, want %q", got, want)
	}
}

func TestCheckNames(t *testing.T) {
	for _, tc := range []struct {
		raw, wrong string // wrong: part of the error, "" for none
	}{
		{`{"sub":"a","streams":{}}`, ""},
		{`{"sub":"a","other":1,"other":2}`, ""}, // not known: the decoder's to judge
		{`{"Sub":"a"}`, `unknown member "Sub"`},
		{`{"STREAMS":{}}`, `unknown member "STREAMS"`},
		{`{"sub":"a","sub":"b"}`, `member "sub" is given twice`},
		{`{"s\u0075b":"a","sub":"b"}`, `member "sub" is given twice`},
		{`[{"Sub":1}]`, ""},
	} {
		err := CheckNames([]byte(tc.raw), "sub", "streams")
		switch {
		case tc.wrong == "" && err != nil:
			t.Errorf("%s: %v, want no error", tc.raw, err)
		case tc.wrong != "" && (err == nil || !strings.Contains(err.Error(), tc.wrong)):
			t.Errorf("%s: %v, want %q", tc.raw, err, tc.wrong)
		}
	}
}

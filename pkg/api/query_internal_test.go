package api

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sse-broker/broker/pkg/broker"
)

func TestQueryValue(t *testing.T) {
	tests := []struct {
		query       string
		wantValue   string
		wantPresent bool
		wantErr     bool
	}{
		{"", "", false, false},
		{"lastEventId=5", "5", true, false},
		{"lastEventId=", "", true, false},
		{"lastEventId=5&lastEventId=7", "5", true, false}, // the first, as url.Values.Get
		{"lastEventId=%35", "5", true, false},
		{"last%45ventId=5", "5", true, false}, // the key is decoded too
		// Another parameter's bad pair is not this one's business.
		{"access_token=%zz&lastEventId=5", "5", true, false},
		{"x=1;y=2&lastEventId=5", "5", true, false},
		{"access_token=%zz", "", false, false},
		// This one's bad pair is an error, wherever the ';' put it.
		{"lastEventId=5;x", "", true, true},
		{"x=1;lastEventId=5", "", true, true},
		{"lastEventId=5%zz", "", true, true},
		{"lastEventId=5%", "", true, true},
		{"last%45ventId=5;x", "", true, true},
		{"a=1&lastEventId=5;x&b=2", "", true, true},
		{"lastEventId=5&lastEventId=%zz", "", true, true}, // a later bad one too
		// net/http's ParseQuery gives up past 10,000 pairs, and drops them all.
		{"lastEventId=5" + strings.Repeat("&", 10000), "5", true, false},
		{strings.Repeat("&", 10000) + "lastEventId=5", "5", true, false},
		{"lastEventId=5;x" + strings.Repeat("&", 10000), "", true, true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/?"+tt.query, nil)
		value, present, err := queryValue(r, "lastEventId")
		if value != tt.wantValue || present != tt.wantPresent || (err != nil) != tt.wantErr {
			t.Errorf("%q: got %q, %v, %v; want %q, %v, error %v", tt.query, value, present, err, tt.wantValue, tt.wantPresent, tt.wantErr)
		}
	}
}

// Any content type but JSON is a raw body (SPEC), also one that does not
// parse; JSON with a parameter that does not parse is refused rather than
// published as the raw text of its JSON.
func TestIsJSON(t *testing.T) {
	for _, tc := range []struct {
		contentType string
		json, fails bool
	}{
		{"", false, false},
		{"application/json", true, false},
		{"application/json; charset=utf-8", true, false},
		{"Application/JSON; Charset=UTF-8", true, false},
		{"text/plain;charset=UTF-8", false, false},
		{"application/x-www-form-urlencoded", false, false},
		{"text/plain; charset=", false, false},
		{"multipart/form-data; boundary=----=_Part_0_1.2", false, false},
		{"application/json garbage", false, false}, // the type itself does not parse: raw
		{"application/json; charset", false, true},
		{"application/json;;", false, true},
	} {
		got, err := isJSON(tc.contentType)
		if got != tc.json || (err != nil) != tc.fails || (err != nil && !errors.Is(err, broker.ErrInvalidRequest)) {
			t.Errorf("%q: JSON %v, error %v; want JSON %v, error %v", tc.contentType, got, err, tc.json, tc.fails)
		}
	}
}

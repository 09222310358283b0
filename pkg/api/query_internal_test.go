package api

import (
	"net/http/httptest"
	"testing"
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
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/?"+tt.query, nil)
		value, present, err := queryValue(r, "lastEventId")
		if value != tt.wantValue || present != tt.wantPresent || (err != nil) != tt.wantErr {
			t.Errorf("%q: got %q, %v, %v; want %q, %v, error %v", tt.query, value, present, err, tt.wantValue, tt.wantPresent, tt.wantErr)
		}
	}
}

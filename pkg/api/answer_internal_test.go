package api

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// The hand-written answer of publish and close is byte for byte what
// encoding/json writes for it, for every stream id the broker accepts.
func TestIDsAnswerIsTheJSON(t *testing.T) {
	type answer struct {
		Stream string   `json:"stream"`
		IDs    []string `json:"ids"`
	}
	many := make([]uint64, 1000)
	for i := range many {
		many[i] = math.MaxUint64 - uint64(i)
	}
	for _, tc := range []struct {
		stream string
		ids    []uint64
	}{
		{"s", []uint64{1}},
		{"chat-42", []uint64{0, 7, 123456789012345678}},
		{"AZaz09._~-", []uint64{math.MaxUint64}},
		{"x", many},
	} {
		rec := httptest.NewRecorder()
		writeIDsAnswer(rec, http.StatusCreated, tc.stream, tc.ids)
		want := answer{Stream: tc.stream}
		for _, id := range tc.ids {
			want.IDs = append(want.IDs, strconv.FormatUint(id, 10))
		}
		body, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		body = append(body, '\n')
		if got := rec.Body.String(); got != string(body) {
			t.Errorf("%q, %d ids:\n got %.200s\nwant %.200s", tc.stream, len(tc.ids), got, body)
		}
		if rec.Code != http.StatusCreated || rec.Header().Get("Content-Type") != "application/json" ||
			rec.Header().Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("%q: status %d, headers %v", tc.stream, rec.Code, rec.Header())
		}
	}
}

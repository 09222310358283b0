package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sse-broker/broker/internal/testbroker"
)

// Every bad input gets the right status and JSON error code, over real HTTP.
func TestBadInputs(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxBody: 64 << 10})
	json := http.Header{"Content-Type": {"application/json"}}
	publishJSON(t, b, "closed-1", `{"data":"x"}`)
	closeStream(t, b, "closed-1")

	long := func(n int) string { return strings.Repeat("a", n) }
	batch := func(n int) string {
		return "[" + strings.TrimSuffix(strings.Repeat(`{"data":"x"},`, n), ",") + "]"
	}
	tests := []struct {
		name        string
		method      string
		path        string
		header      http.Header
		body        string
		wantStatus  int
		wantCode    string
		wantRetryAf bool
	}{
		// Stream ids, on every endpoint.
		{"id with slash (encoded)", "POST", "/v1/streams/a%2Fb/messages", nil, "x", 400, "invalid_stream_id", false},
		{"id with space", "GET", "/v1/streams/a%20b/events", nil, "", 400, "invalid_stream_id", false},
		{"id of dots", "GET", "/v1/streams/.../messages", nil, "", 400, "invalid_stream_id", false},
		{"id too long", "GET", "/v1/streams/" + long(129), nil, "", 400, "invalid_stream_id", false},
		{"id with non-ASCII", "DELETE", "/v1/streams/%C3%A9", nil, "", 400, "invalid_stream_id", false},
		{"id with plus", "GET", "/v1/streams/a+b", nil, "", 400, "invalid_stream_id", false},
		// Publish bodies.
		{"invalid JSON", "POST", "/v1/streams/s/messages", json, `{"data":`, 400, "invalid_json", false},
		{"trailing garbage", "POST", "/v1/streams/s/messages", json, `{"data":"x"} x`, 400, "invalid_json", false},
		{"invalid UTF-8 in JSON", "POST", "/v1/streams/s/messages", json, "{\"data\":\"\xff\"}", 400, "invalid_json", false},
		{"invalid UTF-8 raw", "POST", "/v1/streams/s/messages", nil, "a\xffb", 400, "invalid_event", false},
		{"JSON scalar", "POST", "/v1/streams/s/messages", json, `"x"`, 400, "invalid_event", false},
		{"array of scalars", "POST", "/v1/streams/s/messages", json, `[1,2]`, 400, "invalid_event", false},
		{"empty array", "POST", "/v1/streams/s/messages", json, `[]`, 400, "invalid_event", false},
		{"array of null", "POST", "/v1/streams/s/messages", json, `[null]`, 400, "invalid_event", false},
		{"null after an object", "POST", "/v1/streams/s/messages", json, `[{"data":"ok"},null]`, 400, "invalid_event", false},
		{"close with null", "POST", "/v1/streams/s2/close", nil, `null`, 400, "invalid_event", false},
		{"unknown member", "POST", "/v1/streams/s/messages", json, `{"data":"x","id":"5"}`, 400, "invalid_event", false},
		// encoding/json matches names whatever their case and lets a
		// repeated member win: the event published would not be the one meant.
		{"member in another case", "POST", "/v1/streams/s/messages", json, `{"EVENT":"tok","data":"x"}`, 400, "invalid_event", false},
		{"member given twice", "POST", "/v1/streams/s/messages", json, `{"data":"x","data":"y"}`, 400, "invalid_event", false},
		{"member twice in a batch", "POST", "/v1/streams/s/messages", json, `[{"data":"a"},{"data":"x","DATA":"y"}]`, 400, "invalid_event", false},
		{"close with member in another case", "POST", "/v1/streams/s2/close", nil, `{"DATA":"bye"}`, 400, "invalid_event", false},
		{"create with member in another case", "POST", "/v1/streams", json, `{"PREFIX":"zz-"}`, 400, "invalid_request", false},
		{"event not a string", "POST", "/v1/streams/s/messages", json, `{"event":5,"data":"x"}`, 400, "invalid_event", false},
		{"reserved stop", "POST", "/v1/streams/s/messages", json, `{"event":"stop"}`, 400, "invalid_event", false},
		{"reserved gap", "POST", "/v1/streams/s/messages?event=gap", nil, "x", 400, "invalid_event", false},
		{"name with LF", "POST", "/v1/streams/s/messages", json, `{"event":"a\nb"}`, 400, "invalid_event", false},
		{"name with CR", "POST", "/v1/streams/s/messages", json, `{"event":"a\rb"}`, 400, "invalid_event", false},
		{"name with NUL", "POST", "/v1/streams/s/messages", json, `{"event":"a\u0000b"}`, 400, "invalid_event", false},
		{"name too long", "POST", "/v1/streams/s/messages", json, `{"event":"` + long(65) + `"}`, 400, "invalid_event", false},
		{"empty name", "POST", "/v1/streams/s/messages", json, `{"event":""}`, 400, "invalid_event", false},
		{"empty ?event=", "POST", "/v1/streams/s/messages?event=", nil, "x", 400, "invalid_event", false},
		{"too many events", "POST", "/v1/streams/s/messages", json, batch(1001), 400, "invalid_event", false},
		{"body too large", "POST", "/v1/streams/s/messages", nil, long(64<<10 + 1), 413, "body_too_large", false},
		{"idempotency key too long", "POST", "/v1/streams/s/messages", http.Header{"Idempotency-Key": {long(129)}}, "x", 400, "invalid_request", false},
		{"publish to closed", "POST", "/v1/streams/closed-1/messages", nil, "x", 409, "stream_closed", false},
		{"close closed", "POST", "/v1/streams/closed-1/close", nil, "", 409, "stream_closed", false},
		{"close with bad JSON", "POST", "/v1/streams/s2/close", nil, `{"data":`, 400, "invalid_json", false},
		{"close with wrong shape", "POST", "/v1/streams/s2/close", nil, `{"dat":1}`, 400, "invalid_event", false},
		// encoding/json would deliver U+FFFD for half a surrogate pair.
		{"lone surrogate", "POST", "/v1/streams/s/messages", json, `{"data":"\ud800"}`, 400, "invalid_json", false},
		{"lone surrogate in close", "POST", "/v1/streams/s2/close", nil, `{"data":"\udc00"}`, 400, "invalid_json", false},
		{"lone surrogate in name", "POST", "/v1/streams/s/messages", json, `{"event":"\ud800","data":"x"}`, 400, "invalid_json", false},
		{"nesting past the decoder's limit", "POST", "/v1/streams/s/messages", json, `{"data":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`, 400, "invalid_request", false},
		// Resume points.
		{"leading zero", "GET", "/v1/streams/s/events", http.Header{"Last-Event-ID": {"01"}}, "", 400, "invalid_last_event_id", false},
		{"letters", "GET", "/v1/streams/s/events", http.Header{"Last-Event-ID": {"abc"}}, "", 400, "invalid_last_event_id", false},
		{"negative", "GET", "/v1/streams/s/events?lastEventId=-1", nil, "", 400, "invalid_last_event_id", false},
		{"21 digits", "GET", "/v1/streams/s/events", http.Header{"Last-Event-ID": {"100000000000000000000"}}, "", 400, "invalid_last_event_id", false},
		{"over uint64", "GET", "/v1/streams/s/events", http.Header{"Last-Event-ID": {"18446744073709551616"}}, "", 400, "invalid_last_event_id", false},
		{"history bad after", "GET", "/v1/streams/s/messages?after=x", nil, "", 400, "invalid_last_event_id", false},
		{"history bad limit", "GET", "/v1/streams/s/messages?limit=0", nil, "", 400, "invalid_request", false},
		{"history negative limit", "GET", "/v1/streams/s/messages?limit=-5", nil, "", 400, "invalid_request", false},
		{"history text limit", "GET", "/v1/streams/s/messages?limit=ten", nil, "", 400, "invalid_request", false},
		// Query pairs that do not decode are errors, not absent parameters
		// (net/http's Query() drops them): a dropped resume point would
		// replay what the client has, a dropped ?event= publish as message.
		{"resume point with ';'", "GET", "/v1/streams/s/events?lastEventId=5;x", nil, "", 400, "invalid_last_event_id", false},
		{"resume point after ';'", "GET", "/v1/streams/s/events?x=1;lastEventId=5", nil, "", 400, "invalid_last_event_id", false},
		{"resume point bad escape", "GET", "/v1/streams/s/events?lastEventId=5%zz", nil, "", 400, "invalid_last_event_id", false},
		{"history after with ';'", "GET", "/v1/streams/s/messages?after=5;x", nil, "", 400, "invalid_last_event_id", false},
		{"history limit bad escape", "GET", "/v1/streams/s/messages?limit=1%", nil, "", 400, "invalid_request", false},
		{"?event= with ';'", "POST", "/v1/streams/s/messages?event=tok;x", nil, "x", 400, "invalid_event", false},
		{"?event= bad escape", "POST", "/v1/streams/s/messages?event=%zz", nil, "x", 400, "invalid_event", false},
		{"?event= with a JSON body", "POST", "/v1/streams/s/messages?event=tok", json, `{"data":"x"}`, 400, "invalid_request", false},
		{"compressed body", "POST", "/v1/streams/s/messages", http.Header{"Content-Encoding": {"gzip"}}, "x", 400, "invalid_request", false},
		{"compressed close body", "POST", "/v1/streams/s2/close", http.Header{"Content-Encoding": {"br"}}, "", 400, "invalid_request", false},
		{"Content-Type that does not parse", "POST", "/v1/streams/s/messages", http.Header{"Content-Type": {"application/json; charset"}}, `{"data":"x"}`, 400, "invalid_request", false},
		// Unknown things.
		{"unknown stream info", "GET", "/v1/streams/nope", nil, "", 404, "not_found", false},
		{"unknown stream history", "GET", "/v1/streams/nope/messages", nil, "", 404, "not_found", false},
		{"unknown stream delete", "DELETE", "/v1/streams/nope", nil, "", 404, "not_found", false},
		{"unknown route", "GET", "/v2/nothing", nil, "", 404, "not_found", false},
		{"wrong method", "PUT", "/v1/streams/s/messages", nil, "", 405, "method_not_allowed", false},
		{"wrong method on events", "POST", "/v1/streams/s/events", nil, "", 405, "method_not_allowed", false},
		{"demo with bad body", "POST", "/v1/demo/chat", json, `{"stream":"s"}`, 400, "invalid_request", false},
		{"demo with unknown member", "POST", "/v1/demo/chat", json, `{"stream":"s","message":"hi","z":1}`, 400, "invalid_request", false},
		{"demo with bad stream", "POST", "/v1/demo/chat", json, `{"stream":"a b","message":"hi"}`, 400, "invalid_stream_id", false},
	}
	// Messages speak of the API, not of the decoder's Go types.
	wantMessage := map[string]string{
		"event not a string":               `"event" must be a string, not number`,
		"unknown member":                   `unknown member "id"`,
		"close with wrong shape":           `unknown member "dat"`,
		"member in another case":           `unknown member "EVENT" (member names are case-sensitive: "event")`,
		"member given twice":               `member "data" is given twice`,
		"member twice in a batch":          `event 1: `,
		"demo with unknown member":         `unknown member "z"`,
		"?event= with a JSON body":         `"event" member`,
		"compressed body":                  `Content-Encoding "gzip" is not supported`,
		"lone surrogate":                   "surrogate",
		"nesting past the decoder's limit": "deeper than 10000",
		"invalid JSON":                     "unexpected end of JSON input",
	}
	// A 405 says which methods the route has (RFC 9110); nothing else has Allow.
	wantAllow := map[string]string{"wrong method": "GET, HEAD, POST", "wrong method on events": "GET, HEAD"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := b.Do(t, tc.method, tc.path, tc.header, tc.body)
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", status, tc.wantStatus, body)
			}
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q, want application/json", ct)
			}
			if allow, want := strings.Join(h.Values("Allow"), ", "), wantAllow[tc.name]; allow != want {
				t.Fatalf("Allow %q, want %q", allow, want)
			}
			var e struct{ Error, Message string }
			mustJSON(t, body, &e)
			if e.Error != tc.wantCode || e.Message == "" {
				t.Fatalf("error body %s, want code %s with a message", body, tc.wantCode)
			}
			if want := wantMessage[tc.name]; !strings.Contains(e.Message, want) || strings.Contains(e.Message, "Go struct") {
				t.Fatalf("message %q, want one that says %q in the API's terms", e.Message, want)
			}
		})
	}

	// Nothing was published by any of the rejected requests.
	status, _, _ := b.Do(t, "GET", "/v1/streams/s", nil, "")
	if status != http.StatusNotFound {
		t.Fatalf("stream s exists after only rejected publishes: %d", status)
	}
}

func TestBatchIsAllOrNothing(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	publishJSON(t, b, "s", `{"data":"first"}`)
	status, _, body := b.Do(t, "POST", "/v1/streams/s/messages", http.Header{"Content-Type": {"application/json"}},
		`[{"data":"ok"},{"event":"stop","data":"bad"},{"data":"ok too"}]`)
	if status != 400 || !contains(body, "invalid_event") || !contains(body, "event 1") {
		t.Fatalf("mixed batch: %d %s", status, body)
	}
	_, _, hist := b.Do(t, "GET", "/v1/streams/s/messages", nil, "")
	var h struct{ Events []struct{ Data string } }
	mustJSON(t, hist, &h)
	if len(h.Events) != 1 || h.Events[0].Data != "first" {
		t.Fatalf("history after a rejected batch: %s", hist)
	}
}

func TestLimitsAnswer503WithRetryAfter(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxStreams: 2, MaxSubscribers: 2, Retry: 2500 * 1e6})
	publish(t, b, "one", "x")
	status, _, _ := b.Do(t, "POST", "/v1/streams", nil, "")
	if status != http.StatusCreated {
		t.Fatalf("second stream: %d", status)
	}
	for _, req := range []struct{ method, path string }{{"POST", "/v1/streams/three/messages"}, {"POST", "/v1/streams"}, {"POST", "/v1/streams/three/close"}} {
		status, h, body := b.Do(t, req.method, req.path, nil, "")
		if status != 503 || !contains(body, `"too_many_streams"`) || h.Get("Retry-After") != "3" {
			t.Fatalf("%s %s over streams.max: %d %s Retry-After=%q", req.method, req.path, status, body, h.Get("Retry-After"))
		}
	}
	// Existing streams still take events.
	publish(t, b, "one", "y")

	subscribe(t, b, "/v1/streams/one/events", "")
	subscribe(t, b, "/v1/streams/waiting/events", "")
	status, h, body := b.Do(t, "GET", "/v1/streams/one/events", nil, "")
	if status != 503 || !contains(body, `"too_many_subscribers"`) || h.Get("Retry-After") != "3" {
		t.Fatalf("over subscribers.max: %d %s Retry-After=%q", status, body, h.Get("Retry-After"))
	}
}

// Publish bodies are read into pooled buffers that the next publish
// reuses: what the store keeps must be a copy, in every body format. A
// stored event that pointed into the buffer would read as a later body.
func TestPublishedDataOutlivesItsBuffer(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	text := http.Header{"Content-Type": {"text/plain"}}
	json := http.Header{"Content-Type": {"application/json"}}
	bodies := []struct {
		header http.Header
		body   string
		want   []string
	}{
		{text, "first text body", []string{"first text body"}},
		{text, "XXXXXXXXXXXXXXXXXXXXXXXXX", []string{"XXXXXXXXXXXXXXXXXXXXXXXXX"}},
		{json, `{"event":"tok","data":"a JSON string"}`, []string{"a JSON string"}},
		{json, `[{"data":{"k":[1,2]}},{"data":"second of a batch"}]`, []string{`{"k":[1,2]}`, "second of a batch"}},
		{json, `{"data":"YYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYY"}`, []string{"YYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYY"}},
		{text, "last", []string{"last"}},
	}
	var want []string
	for _, p := range bodies {
		if status, _, body := b.Do(t, "POST", "/v1/streams/pooled/messages", p.header, p.body); status != http.StatusCreated {
			t.Fatalf("publish %q: %d %s", p.body, status, body)
		}
		want = append(want, p.want...)
	}
	_, _, hist := b.Do(t, "GET", "/v1/streams/pooled/messages", nil, "")
	var h struct {
		Events []struct{ Event, Data string }
	}
	mustJSON(t, hist, &h)
	var got []string
	for _, e := range h.Events {
		got = append(got, e.Data)
	}
	if strings.Join(got, "|") != strings.Join(want, "|") || h.Events[2].Event != "tok" {
		t.Fatalf("history %q, want %q (event 2 named tok)", got, want)
	}
}

// Half a UTF-16 surrogate pair is refused where a string is decoded for
// delivery (TestBadInputs), but data given as a JSON value is delivered as
// its JSON text, and that keeps the escape as it was sent.
func TestSurrogateEscapeInJSONDataIsKept(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	ids := publishJSON(t, b, "kept", `{"data":{"x":"\ud800"}}`)
	_, _, body := b.Do(t, "GET", "/v1/streams/kept/messages", nil, "")
	var hist struct {
		Events []struct {
			ID   string `json:"id"`
			Data string `json:"data"`
		} `json:"events"`
	}
	mustJSON(t, body, &hist)
	if len(hist.Events) != 1 || hist.Events[0].ID != ids[0] || string(hist.Events[0].Data) != `{"x":"\ud800"}` {
		t.Fatalf("history %s, want the data as sent", body)
	}
}

// Content-Encoding: identity says the body is as sent: it is taken.
func TestIdentityContentEncodingIsTaken(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	status, _, body := b.Do(t, "POST", "/v1/streams/s/messages", http.Header{"Content-Encoding": {"Identity"}}, "x")
	if status != 201 {
		t.Fatalf("publish with Content-Encoding identity: %d %s", status, body)
	}
}

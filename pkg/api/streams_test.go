package api_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/testbroker"
)

var rfc3339Millis = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestCreateStream(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	seen := map[string]bool{}
	for range 20 {
		status, h, body := b.Do(t, "POST", "/v1/streams", nil, "")
		var ans struct {
			Stream    string
			EventsURL string `json:"events_url"`
		}
		mustJSON(t, body, &ans)
		if status != http.StatusCreated || len(ans.Stream) < 26 || ans.EventsURL != "/v1/streams/"+ans.Stream+"/events" || seen[ans.Stream] {
			t.Fatalf("create: %d %s", status, body)
		}
		if h.Get("Location") != "/v1/streams/"+ans.Stream {
			t.Fatalf("Location %q", h.Get("Location"))
		}
		seen[ans.Stream] = true
	}
	// The new stream exists (info answers) and is empty.
	for id := range seen {
		status, _, body := b.Do(t, "GET", "/v1/streams/"+id, nil, "")
		if status != http.StatusOK || !strings.Contains(body, `"retained":0`) || !strings.Contains(body, `"last_id":null`) {
			t.Fatalf("info of a new stream: %d %s", status, body)
		}
		break
	}
}

func TestStreamInfo(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxEvents: 2})
	ids := publishJSON(t, b, "s", `[{"data":"1"},{"data":"2"},{"data":"3"}]`)
	subscribe(t, b, "/v1/streams/s/events", ids[2])
	subscribe(t, b, "/v1/streams/s/events", ids[2])
	status, _, body := b.Do(t, "GET", "/v1/streams/s", nil, "")
	var in struct {
		Stream      string
		FirstID     *string `json:"first_id"`
		LastID      *string `json:"last_id"`
		Retained    int
		Subscribers int
		Closed      bool
		CreatedAt   string `json:"created_at"`
	}
	mustJSON(t, body, &in)
	if status != 200 || in.Stream != "s" || *in.FirstID != ids[1] || *in.LastID != ids[2] || in.Retained != 2 ||
		in.Subscribers != 2 || in.Closed || !rfc3339Millis.MatchString(in.CreatedAt) {
		t.Fatalf("info: %d %s", status, body)
	}
	closeStream(t, b, "s")
	_, _, body = b.Do(t, "GET", "/v1/streams/s", nil, "")
	if !strings.Contains(body, `"closed":true`) {
		t.Fatalf("info after close: %s", body)
	}
}

func TestHistoryJSON(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxEvents: 1500})
	ids := publishJSON(t, b, "s", `[{"event":"token","data":"a\r\nb"},{"data":{"k":[1, 2]}},{"data":""}]`)
	status, _, body := b.Do(t, "GET", "/v1/streams/s/messages", nil, "")
	var h struct {
		Stream string
		Events []struct{ ID, Event, Data, Time string }
		Gap    bool
	}
	mustJSON(t, body, &h)
	if status != 200 || h.Stream != "s" || h.Gap || len(h.Events) != 3 {
		t.Fatalf("history: %d %s", status, body)
	}
	want := []struct{ id, event, data string }{{ids[0], "token", "a\nb"}, {ids[1], "message", `{"k":[1,2]}`}, {ids[2], "message", ""}}
	for i, w := range want {
		e := h.Events[i]
		if e.ID != w.id || e.Event != w.event || e.Data != w.data || !rfc3339Millis.MatchString(e.Time) {
			t.Fatalf("event %d = %+v, want %+v", i, e, w)
		}
	}
	_, _, body = b.Do(t, "GET", "/v1/streams/s/messages?after="+ids[0]+"&limit=1", nil, "")
	mustJSON(t, body, &h)
	if len(h.Events) != 1 || h.Events[0].ID != ids[1] || h.Gap {
		t.Fatalf("page after %s: %s", ids[0], body)
	}
	_, _, body = b.Do(t, "GET", "/v1/streams/s/messages?after=12345", nil, "")
	mustJSON(t, body, &h)
	if !h.Gap || len(h.Events) != 3 {
		t.Fatalf("history after an unknown id: %s", body)
	}

	// limit: default 100, above 1000 counts as 1000.
	var batch []string
	for i := range 1000 {
		batch = append(batch, fmt.Sprintf(`{"data":"%d"}`, i))
	}
	publishJSON(t, b, "s", "["+strings.Join(batch, ",")+"]")
	publishJSON(t, b, "s", "["+strings.Join(batch[:100], ",")+"]")
	for q, n := range map[string]int{"": 100, "?limit=5": 5, "?limit=1000": 1000, "?limit=5000": 1000, "?limit=99999999999999999999999": 1000} {
		_, _, body = b.Do(t, "GET", "/v1/streams/s/messages"+q, nil, "")
		mustJSON(t, body, &h)
		if len(h.Events) != n {
			t.Fatalf("history%s: %d events, want %d", q, len(h.Events), n)
		}
	}
}

// On a closed stream, history after the stop event follows the subscribe
// rule too: a subscribe from there answers 204 (nothing lost, nothing to
// come), so history has no events and no gap, not the whole stream again.
func TestHistoryAfterStop(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	publishJSON(t, b, "c", `{"data":"a"}`)
	status, _, body := b.Do(t, "POST", "/v1/streams/c/close", nil, "")
	var closed struct{ IDs []string }
	mustJSON(t, body, &closed)
	if status != 200 || len(closed.IDs) != 1 {
		t.Fatalf("close: %d %s", status, body)
	}
	stop, _ := strconv.ParseUint(closed.IDs[0], 10, 64)
	for _, after := range []uint64{stop, stop + 1, stop + 1000} {
		q := strconv.FormatUint(after, 10)
		if status, _, _ := b.Do(t, "GET", "/v1/streams/c/events", http.Header{"Last-Event-ID": {q}}, ""); status != 204 {
			t.Fatalf("subscribe after %s (stop %d): %d, want 204", q, stop, status)
		}
		status, _, body := b.Do(t, "GET", "/v1/streams/c/messages?after="+q, nil, "")
		var h struct {
			Events []struct{ ID string }
			Gap    bool
		}
		mustJSON(t, body, &h)
		if status != 200 || h.Gap || len(h.Events) != 0 {
			t.Fatalf("history after %s (stop %d): %d %s, want no events and no gap", q, stop, status, body)
		}
	}
}

func TestIdempotencyKey(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxEvents: 4})
	key := http.Header{"Idempotency-Key": {"answer-1"}, "Content-Type": {"application/json"}}
	status, h, first := b.Do(t, "POST", "/v1/streams/s/messages", key, `[{"data":"a"},{"data":"b"}]`)
	if status != 201 || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first publish: %d %s", status, first)
	}
	status, h, again := b.Do(t, "POST", "/v1/streams/s/messages", key, `[{"data":"a"},{"data":"b"}]`)
	if status != 201 || again != first || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("repeat: %d %s (first %s) replayed=%q", status, again, first, h.Get("Idempotent-Replayed"))
	}
	// The same key on another stream is another publish.
	status, h, _ = b.Do(t, "POST", "/v1/streams/other/messages", key, `{"data":"a"}`)
	if status != 201 || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("same key, other stream: %d replayed=%q", status, h.Get("Idempotent-Replayed"))
	}
	// A repeat after close still answers the first publish, not 409.
	closeStream(t, b, "s")
	if status, _, body := b.Do(t, "POST", "/v1/streams/s/messages", key, `{"data":"a"}`); status != 201 || body != first {
		t.Fatalf("repeat after close: %d %s", status, body)
	}
	_, _, hist := b.Do(t, "GET", "/v1/streams/s/messages", nil, "")
	if n := strings.Count(hist, `"id"`); n != 3 {
		t.Fatalf("history holds %d events, want 3 (a, b, stop): %s", n, hist)
	}
}

// Blind concurrent retries publish once.
func TestIdempotencyKeyConcurrentRetries(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	var wg sync.WaitGroup
	bodies := make([]string, 16)
	for i := range bodies {
		wg.Go(func() {
			status, _, body := b.Do(t, "POST", "/v1/streams/s/messages", http.Header{"Idempotency-Key": {"k"}}, "token")
			if status != 201 {
				t.Errorf("retry %d: %d %s", i, status, body)
			}
			bodies[i] = body
		})
	}
	wg.Wait()
	for _, body := range bodies[1:] {
		if body != bodies[0] {
			t.Fatalf("answers differ: %s vs %s", body, bodies[0])
		}
	}
	_, _, info := b.Do(t, "GET", "/v1/streams/s", nil, "")
	if !strings.Contains(info, `"retained":1`) {
		t.Fatalf("16 retries stored more than one event: %s", info)
	}
}

// A key is remembered while its publish is in history, then forgotten.
func TestIdempotencyKeyLivesWithHistory(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxEvents: 2})
	key := http.Header{"Idempotency-Key": {"k"}}
	_, _, first := b.Do(t, "POST", "/v1/streams/s/messages", key, "x")
	publish(t, b, "s", "y")
	publish(t, b, "s", "z") // evicts x
	status, h, again := b.Do(t, "POST", "/v1/streams/s/messages", key, "x")
	if status != 201 || again == first || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("key outside the history window: %d %s replayed=%q", status, again, h.Get("Idempotent-Replayed"))
	}
}

func TestOperations(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Queue: 1})
	if status, _, body := b.Do(t, "GET", "/healthz", nil, ""); status != 200 {
		t.Fatalf("healthz: %d %s", status, body)
	}
	if status, _, body := b.Do(t, "GET", "/readyz", nil, ""); status != 200 {
		t.Fatalf("readyz: %d %s", status, body)
	}
	s := subscribe(t, b, "/v1/streams/m/events", "")
	id := publish(t, b, "m", "x")
	expectIDs(t, s, id)
	_, h, metrics := b.Do(t, "GET", "/metrics", nil, "")
	if !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics Content-Type %q", h.Get("Content-Type"))
	}
	for _, want := range []string{
		"sseb_subscribers 1", "sseb_streams 1", "sseb_events_published_total 1",
		"sseb_events_delivered_total 1", "sseb_slow_subscriber_disconnects_total 0",
		"sseb_publish_duration_seconds_count 1", "sseb_delivery_latency_seconds_count 1",
		"sseb_store_errors_total 0", "process_resident_memory_bytes", "go_goroutines",
	} {
		if !strings.Contains(metrics, want+"\n") && !strings.Contains(metrics, want+" ") {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Readiness goes to 503 once the broker drains.
	go func() { _ = b.API.Shutdown(t.Context()) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, h, body := b.Do(t, "GET", "/readyz", nil, "")
		if status == 503 && strings.Contains(body, "store_unavailable") {
			if h.Get("Retry-After") == "" {
				t.Fatal("readyz while draining: 503 without Retry-After")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz while draining: %d %s", status, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	expectEnd(t, s)
}

func TestDemo(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{DemoTokenDelay: time.Millisecond})
	status, h, page := b.Do(t, "GET", "/", nil, "")
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(page, "EventSource") {
		t.Fatalf("demo page: %d %q", status, h.Get("Content-Type"))
	}
	// Its own origin only, and no framing by another site.
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "connect-src 'self'") || h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("demo page headers: %v", h)
	}
	s := subscribe(t, b, "/v1/streams/conv/events", "")
	status, _, body := b.Do(t, "POST", "/v1/demo/chat", http.Header{"Content-Type": {"application/json"}}, `{"stream":"conv","message":"Why is the sky blue?"}`)
	if status != http.StatusAccepted {
		t.Fatalf("demo chat: %d %s", status, body)
	}
	var text strings.Builder
	tokens := 0
	for {
		ev := s.next(t)
		if ev.Type == "stop" {
			if ev.Data != "" {
				t.Fatalf("a whole answer's stop has data %q, want none", ev.Data)
			}
			break
		}
		tokens++
		text.WriteString(ev.Data)
	}
	if tokens < 10 || !strings.Contains(text.String(), "Why is the sky blue?") {
		t.Fatalf("demo answer in %d tokens: %q", tokens, text.String())
	}
	expectEnd(t, s)

	// The answer's stream is closed now: a second question into it is
	// refused like a service's publish, not accepted and dropped.
	status, _, body = b.Do(t, "POST", "/v1/demo/chat", http.Header{"Content-Type": {"application/json"}}, `{"stream":"conv","message":"And why red at dusk?"}`)
	if status != http.StatusConflict || !strings.Contains(body, "stream_closed") {
		t.Fatalf("demo chat into a closed stream: %d %s", status, body)
	}

	off := testbroker.Start(t, testbroker.Options{NoDemo: true})
	// Every method: a 405 would advertise a method that answers 404.
	for _, req := range []struct{ method, path string }{{"GET", "/"}, {"POST", "/v1/demo/chat"}, {"POST", "/"}, {"GET", "/v1/demo/chat"}} {
		if status, _, body := off.Do(t, req.method, req.path, nil, `{"stream":"x","message":"y"}`); status != 404 || !strings.Contains(body, "not_found") {
			t.Fatalf("demo off: %s %s: %d %s", req.method, req.path, status, body)
		}
	}
}

// HEAD of the events route answers the status GET would (RFC 9110 §9.3.2):
// 204 when the resume point is at or past stop, 503 when the node is full.
func TestHeadOfEventsAnswersAsGetWould(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxSubscribers: 1})
	publish(t, b, "s", "x")
	stop := closeStream(t, b, "s")
	client := &http.Client{Timeout: 5 * time.Second}
	status := func(method, stream, lastID string) int {
		t.Helper()
		req, err := http.NewRequest(method, b.URL+"/v1/streams/"+stream+"/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res.StatusCode
	}
	if got, head := status("GET", "s", stop), status("HEAD", "s", stop); got != http.StatusNoContent || head != got {
		t.Errorf("closed stream, resuming at its stop: GET %d, HEAD %d; want 204 both", got, head)
	}
	hold := subscribe(t, b, "/v1/streams/open/events", "") // the node's one place
	if got, head := status("GET", "open", ""), status("HEAD", "open", ""); got != http.StatusServiceUnavailable || head != got {
		t.Errorf("node full: GET %d, HEAD %d; want 503 both", got, head)
	}
	hold.close()
}

// Stream ids are checked after percent-decoding: %41 is "A".
func TestStreamIDPercentDecoded(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	status, _, body := b.Do(t, "POST", "/v1/streams/%41b~c/messages", nil, "x")
	if status != http.StatusCreated || !strings.Contains(body, `"stream":"Ab~c"`) {
		t.Fatalf("publish to %%41b~c: %d %s", status, body)
	}
	if status, _, body := b.Do(t, "GET", "/v1/streams/Ab~c", nil, ""); status != 200 {
		t.Fatalf("info of the decoded id: %d %s", status, body)
	}
	// Closing a stream that does not exist yet creates it closed, like a
	// publish creates it open.
	if status, _, body := b.Do(t, "POST", "/v1/streams/fresh/close", nil, ""); status != 200 {
		t.Fatalf("close of a new stream: %d %s", status, body)
	}
}

// HEAD is served wherever GET is (RFC 9110 §9.1): the same status and
// headers, no body; on the streaming routes no subscription is made and
// the answer ends at once.
func TestHeadWhereverGet(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	publish(t, b, "s", "x")
	tests := []struct {
		path       string
		wantStatus int
		wantType   string
	}{
		{"/healthz", 200, "application/json"},
		{"/metrics", 200, "text/plain"},
		{"/v1/streams/s", 200, "application/json"},
		{"/v1/streams/s/messages", 200, "application/json"},
		{"/v1/streams/nope", 404, "application/json"},
		{"/v1/streams/s/events", 200, "text/event-stream"},
		{"/admin/api/live", 200, "text/event-stream"},
		{"/", 200, "text/html"},
	}
	client := &http.Client{Timeout: 5 * time.Second} // a streaming answer that did not end fails here
	for _, tc := range tests {
		res, err := client.Head(b.URL + tc.path)
		if err != nil {
			t.Fatalf("HEAD %s: %v", tc.path, err)
		}
		body, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if res.StatusCode != tc.wantStatus || !strings.HasPrefix(res.Header.Get("Content-Type"), tc.wantType) || len(body) != 0 {
			t.Fatalf("HEAD %s: %d %q, %d body bytes; want %d %s", tc.path, res.StatusCode, res.Header.Get("Content-Type"), len(body), tc.wantStatus, tc.wantType)
		}
	}
	if n := b.Broker.Stats().Subscribers; n != 0 {
		t.Fatalf("HEAD of the events route left %d subscribers", n)
	}
}

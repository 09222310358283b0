package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/sse"
)

// stream is an open subscription read with the strict WHATWG decoder.
type stream struct {
	res    *http.Response
	dec    *sse.Decoder
	cancel context.CancelFunc
}

// subscribe opens GET path with an optional Last-Event-ID header ("" for
// none) and checks the SSE answer headers.
func subscribe(t testing.TB, b *testbroker.Broker, path, lastEventID string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	res, err := b.Server.Client().Do(req) // not the default client: see testbroker.Broker.Do
	if err != nil {
		cancel()
		t.Fatalf("subscribe %s: %v", path, err)
	}
	s := &stream{res: res, dec: sse.NewDecoder(res.Body), cancel: cancel}
	t.Cleanup(s.close)
	if res.StatusCode == http.StatusOK {
		for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
			if got := res.Header.Get(k); got != want {
				t.Fatalf("subscribe %s: header %s = %q, want %q", path, k, got, want)
			}
		}
	}
	return s
}

func (s *stream) close() {
	s.cancel()
	_ = s.res.Body.Close()
}

// next reads the next event, failing the test after a timeout.
func (s *stream) next(t testing.TB) sse.Event {
	t.Helper()
	type result struct {
		ev  sse.Event
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ev, err := s.dec.Next()
		ch <- result{ev, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading event: %v", r.err)
		}
		return r.ev
	case <-time.After(10 * time.Second):
		s.close()
		t.Fatal("no event within 10s")
	}
	return sse.Event{}
}

// publish posts a raw-body event and returns its id.
func publish(t testing.TB, b *testbroker.Broker, streamID, data string) string {
	t.Helper()
	ids := publishJSON(t, b, streamID, `{"data":`+jsonString(data)+`}`)
	return ids[0]
}

// publishJSON posts a JSON body and returns the ids of the 201 answer.
func publishJSON(t testing.TB, b *testbroker.Broker, streamID, body string) []string {
	t.Helper()
	status, _, resBody := b.Do(t, http.MethodPost, "/v1/streams/"+streamID+"/messages",
		http.Header{"Content-Type": {"application/json"}}, body)
	if status != http.StatusCreated {
		t.Fatalf("publish to %s: %d %s", streamID, status, resBody)
	}
	var ans struct {
		Stream string   `json:"stream"`
		IDs    []string `json:"ids"`
	}
	if err := json.Unmarshal([]byte(resBody), &ans); err != nil {
		t.Fatalf("publish answer %q: %v", resBody, err)
	}
	return ans.IDs
}

func closeStream(t testing.TB, b *testbroker.Broker, streamID string) string {
	t.Helper()
	status, _, body := b.Do(t, http.MethodPost, "/v1/streams/"+streamID+"/close", nil, "")
	if status != http.StatusOK {
		t.Fatalf("close %s: %d %s", streamID, status, body)
	}
	var ans struct{ IDs []string }
	if err := json.Unmarshal([]byte(body), &ans); err != nil || len(ans.IDs) != 1 {
		t.Fatalf("close answer %q: %v", body, err)
	}
	return ans.IDs[0]
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func mustJSON(t testing.TB, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

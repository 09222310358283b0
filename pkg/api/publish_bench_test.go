package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/api"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// BenchmarkPublishHandler is one publish request through the whole
// handler chain (request context, access log, routing, the memory store,
// the hub, the JSON answer), with no subscriber and no network. Its
// allocations are the garbage every publish leaves for the collector,
// which shows in CPU and tail latency at thousands of publishes a second.
//
//	go test -run '^$' -bench PublishHandler -benchmem ./pkg/api/
//
// "raw" is the conversations scenario's publish (64 bytes of text), "json
// batch of 3" the tokens scenario's.
func BenchmarkPublishHandler(b *testing.B) {
	data := strings.Repeat("x", 64)
	item := `{"data":"` + data + `"}`
	for _, bc := range []struct{ name, contentType, body string }{
		{"raw", "text/plain", data},
		{"json batch of 3", "application/json", "[" + item + "," + item + "," + item + "]"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hub := broker.NewHub(10, 64)
			store := memory.New(broker.StoreOptions{MaxEvents: 100, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 10}, hub)
			defer store.Close()
			srv := api.New(api.Options{Broker: broker.New(store, hub), Retry: time.Second, Heartbeat: time.Hour, MaxBody: 1 << 20})
			// One request and one writer, reset each time, so that what is
			// counted is the server's garbage, not the harness's.
			rd := strings.NewReader(bc.body)
			req := httptest.NewRequest(http.MethodPost, "/v1/streams/chat-1/messages", rd)
			req.Header.Set("Content-Type", bc.contentType)
			w := &statusWriter{header: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(bc.body)
				clear(w.header)
				srv.ServeHTTP(w, req)
				if w.status != http.StatusCreated {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}

// statusWriter is a reusable http.ResponseWriter that keeps the status
// and drops the body.
type statusWriter struct {
	header http.Header
	status int
}

func (w *statusWriter) Header() http.Header         { return w.header }
func (w *statusWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *statusWriter) WriteHeader(status int)      { w.status = status }

// SetReadDeadline is there because net/http's own writer has it: without
// it http.ResponseController builds an error each request, which the
// server never does.
func (w *statusWriter) SetReadDeadline(time.Time) error { return nil }

// Command floor is about the least work a net/http server can do for the
// load tool's traffic, written only to find the floor under the CPU figure of
// the conversations scenario (docs/performance-log.md, "The CPU floor"). It is
// not a broker: no history, no replay, no limits, no auth, and a slow
// subscriber holds up its publisher.
//
// It speaks the baseline's protocol, so `ssebench -target baseline` drives
// it:
//
//	GET  /events?stream=S   subscribe
//	POST /publish?stream=S  publish the body as the data of one event
//	GET  /metrics           process_* collectors, read by ssebench
//
// Each publish writes the event straight into every subscriber's
// connection from the publishing request's own goroutine: no channel, no
// goroutine hop, no copy beyond the one encoding, and one write and one
// flush per delivery, which is what one event per request and one TCP
// connection per subscriber cost at the least.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sse-broker/broker/internal/rlimit"
)

func main() {
	listen := flag.String("listen", ":8082", "address to listen on")
	flag.Parse()
	_, _ = rlimit.Raise() // thousands of subscribers: as many sockets as the host allows
	srv := &http.Server{Addr: *listen, Handler: newHandler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "floor listening on %s\n", *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// subscriber is one open event stream.
type subscriber struct {
	w http.ResponseWriter
	f http.Flusher
}

// stream is a set of subscribers and the last id given out; mu serialises
// publishes, so that each subscriber sees ids in order.
type stream struct {
	mu     sync.Mutex
	lastID uint64
	subs   map[*subscriber]struct{}
}

type floor struct {
	mu      sync.Mutex
	streams map[string]*stream
}

func (fl *floor) stream(name string) *stream {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	st := fl.streams[name]
	if st == nil {
		st = &stream{subs: map[*subscriber]struct{}{}}
		fl.streams[name] = st
	}
	return st
}

func newHandler() http.Handler {
	fl := &floor{streams: map[string]*stream{}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", fl.subscribe)
	mux.HandleFunc("POST /publish", fl.publish)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

func (fl *floor) subscribe(w http.ResponseWriter, r *http.Request) {
	st := fl.stream(r.URL.Query().Get("stream"))
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	sub := &subscriber{w: w, f: w.(http.Flusher)}
	st.mu.Lock()
	sub.f.Flush()
	st.subs[sub] = struct{}{}
	st.mu.Unlock()
	<-r.Context().Done()
	st.mu.Lock()
	delete(st.subs, sub)
	st.mu.Unlock()
}

func (fl *floor) publish(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || len(data) == 0 {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	st := fl.stream(r.URL.Query().Get("stream"))
	st.mu.Lock()
	st.lastID++
	frame := make([]byte, 0, len(data)+32)
	frame = append(frame, "id: "...)
	frame = strconv.AppendUint(frame, st.lastID, 10)
	frame = append(frame, "\ndata: "...)
	frame = append(frame, data...)
	frame = append(frame, "\n\n"...)
	for sub := range st.subs {
		_, _ = sub.w.Write(frame)
		sub.f.Flush()
	}
	st.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

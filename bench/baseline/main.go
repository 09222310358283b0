// Command baseline is the naive server the load tool compares the broker
// with: r3labs/sse/v2 used the way its README shows (chi, sse.New() with
// AutoStream on and AutoReplay left at its default, on), plus a publish
// endpoint and the Prometheus process collector on /metrics so that
// ssebench reads its RSS and CPU the same way as the broker's.
//
//	GET  /events?stream=S   subscribe (r3labs' own handler)
//	POST /publish?stream=S  publish the body as the data of one event
//	GET  /metrics           process_* and go_* collectors
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
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/r3labs/sse/v2"

	"github.com/sse-broker/broker/internal/rlimit"
)

func main() {
	listen := flag.String("listen", ":8081", "address to listen on")
	flag.Parse()
	_, _ = rlimit.Raise() // thousands of subscribers: as many sockets as the host allows
	h, closeSSE := newHandler()
	defer closeSSE()
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "baseline (r3labs/sse/v2) listening on %s\n", *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// newHandler builds the baseline's routes; the func closes the SSE server.
func newHandler() (http.Handler, func()) {
	server := sse.New()
	server.AutoStream = true // AutoReplay stays at its default (true), as in the README

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())

	r := chi.NewRouter()
	r.Get("/events", server.ServeHTTP)
	r.Post("/publish", func(w http.ResponseWriter, req *http.Request) {
		stream := req.URL.Query().Get("stream")
		if stream == "" {
			http.Error(w, "stream is required", http.StatusBadRequest)
			return
		}
		data, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if len(data) == 0 {
			http.Error(w, "empty data ends r3labs subscribers; refused", http.StatusBadRequest)
			return
		}
		if !server.StreamExists(stream) {
			server.CreateStream(stream)
		}
		server.Publish(stream, &sse.Event{Data: data})
		w.WriteHeader(http.StatusNoContent)
	})
	r.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return r, server.Close
}

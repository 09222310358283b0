// Package api is the HTTP transport of SSE Broker: chi routes, request
// parsing and validation, the mapping of broker errors to answers, and the
// SSE writer; around them JWT auth, CORS, rate limits, metrics, the /admin
// page, the demo chat and the opt-in pprof endpoints. It decides no ids and
// no replay; pkg/broker does.
package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/rs/xid"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"

	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/broker"
)

// Defaults of the transport that are not configuration keys.
const (
	// subscriberWriteTimeout bounds one write to a subscriber. A server-wide
	// WriteTimeout would cut every long-lived stream; this cuts only a client
	// that stops reading while the kernel's buffers are full.
	subscriberWriteTimeout = 10 * time.Second
	// drainWriteTimeout bounds a write to a subscriber once the broker
	// drains: a write in progress gets this long to finish, and a client
	// that stopped reading is let go after it instead of holding the
	// drain for subscriberWriteTimeout.
	drainWriteTimeout = time.Second
	// bodyReadTimeout bounds reading every request body the API reads:
	// publish, close, create ({"prefix"}) and the demo's.
	bodyReadTimeout = 30 * time.Second
	// maxHistoryLimit and defaultHistoryLimit bound the JSON history page.
	defaultHistoryLimit = 100
	maxHistoryLimit     = 1000
)

// Options configure a Server.
type Options struct {
	Broker *broker.Broker
	Logger zerolog.Logger
	// Retry is sent as the first "retry:" block of every subscription.
	Retry time.Duration
	// Heartbeat is the longest a subscription stays silent (0: 15 s).
	Heartbeat time.Duration
	// MaxBody bounds every request body the API reads: publish, close,
	// create ({"prefix"}) and the demo's.
	MaxBody int64
	// Demo serves the chat page at / and POST /v1/demo/chat.
	Demo bool
	// DemoTokenDelay is the pause between the demo answer's tokens
	// (default 60ms).
	DemoTokenDelay time.Duration
	// Auth verifies tokens; nil means auth is off.
	Auth *auth.Verifier
	// CORSOrigins may call the API from a browser; empty: no CORS headers.
	CORSOrigins []string
	// PublishRate bounds events published per second, SubscribeRate new
	// subscriptions per second, each per token subject (per client IP
	// without auth); 0 means no limit.
	PublishRate, SubscribeRate float64
	// Pprof serves net/http/pprof under /debug/pprof/ (see mountPprof).
	Pprof bool
	// Admin serves the operator's page under /admin (see mountAdmin).
	Admin bool
}

// Server serves the v1 API.
type Server struct {
	opts    Options
	broker  *broker.Broker
	metrics *metrics
	handler http.Handler

	draining   chan struct{} // closed by Shutdown: stream handlers end
	drainOnce  sync.Once
	isDraining atomic.Bool

	demo demoRunner
	// admin is the operator's page's shared snapshot and live count.
	admin adminShared

	heartbeats heartbeatClock
	hangups    hangupWatcher
	// parked holds the subscriptions whose connections were taken over
	// from net/http (see parkedSubscription).
	parked parkRegistry
	// writers holds the connections of the subscriptions net/http serves
	// (parked holds the others).
	writers liveWriters
	// coalesce starts the parked subscriptions' deliveries.
	coalesce *coalescer

	// writeTimeout bounds one write to a subscriber
	// (subscriberWriteTimeout; tests shorten it).
	writeTimeout time.Duration

	// publishLimit and subscribeLimit are nil when their rate is 0.
	publishLimit, subscribeLimit *limiter
}

// New builds a Server and its routes.
func New(opts Options) *Server {
	if opts.Heartbeat <= 0 { // the heartbeat clock's step is a fraction of it
		opts.Heartbeat = 15 * time.Second
	}
	if opts.DemoTokenDelay <= 0 {
		opts.DemoTokenDelay = 60 * time.Millisecond
	}
	s := &Server{
		opts:     opts,
		broker:   opts.Broker,
		draining: make(chan struct{}),

		writeTimeout: subscriberWriteTimeout,
	}
	s.metrics = newMetrics(opts.Broker)
	s.publishLimit, s.subscribeLimit = newLimiter(opts.PublishRate), newLimiter(opts.SubscribeRate)
	s.demo = newDemoRunner(s)
	s.heartbeats.interval, s.heartbeats.tick = opts.Heartbeat, s.broker.Heartbeat
	s.coalesce = newCoalescer(coalesceAbove, coalesceDelay)
	s.handler = s.routes()
	return s
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Shutdown starts draining: /readyz answers 503 (to requests on
// connections still open: http.Server.Shutdown refuses new ones), every
// subscription ends its response cleanly (clients reconnect elsewhere with
// Last-Event-ID), and the demo refuses new answers and stops those
// streaming, each closing its stream. It waits, until ctx ends, for every
// subscription the server serves itself (parked, or still starting) and
// for the demo's answers. Call it beside http.Server.Shutdown, which waits
// for in-flight publishes: an SSE handler is never idle, so Shutdown alone
// never ends. Calling it again after http.Server.Shutdown has returned
// also waits for a subscription that took its connection over in the
// meantime.
func (s *Server) Shutdown(ctx context.Context) error {
	s.drainOnce.Do(func() {
		s.isDraining.Store(true)
		close(s.draining)
		s.writers.cut(drainWriteTimeout)
		s.parked.cutWrites(drainWriteTimeout)
		s.parked.wakeAll()
		s.demo.stop()
	})
	return errors.Join(s.parked.wait(ctx), s.demo.wait(ctx))
}

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(
		requestContext(s.opts.Logger),
		accessLogger,
		recoverer,
		s.corsMiddleware(),
		// RFC 9110 §9.1: a general-purpose server supports HEAD wherever
		// it supports GET. net/http drops a HEAD answer's body; the two
		// streaming routes answer their head and return.
		middleware.GetHead,
	)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errNotFound)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// RFC 9110 §15.5.6: a 405 lists the methods the route has. chi
		// sets Allow only in its own default handler, so ask the router.
		for _, m := range allowedMethods(r, req) {
			w.Header().Add("Allow", m)
		}
		s.writeError(w, req, errMethodNotAllowed)
	})

	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Method(http.MethodGet, "/metrics", s.metrics.handler())

	// Flat routes, one router: a subscription's handler waits for hours on
	// whatever stack its route took, and nested routers only deepen it.
	// Every /v1 route needs a valid token when auth is on (401); each
	// handler then checks the token's right on its stream (403).
	const stream = "/v1/streams/{stream}"
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Post("/v1/streams", s.createStream)
		r.Get(stream, s.info)
		r.Delete(stream, s.deleteStream)
		r.Post(stream+"/messages", s.publish)
		r.Get(stream+"/messages", s.history)
		r.Post(stream+"/close", s.closeStream)
		r.Get(stream+"/events", s.subscribe)
		if s.opts.Demo {
			r.Post("/v1/demo/chat", s.demoChat)
		}
	})
	if s.opts.Demo { // off, both paths are unknown: 404 for every method
		r.Get("/", s.demoPage)
	}
	if s.opts.Admin { // off: every /admin path is unknown, 404
		s.mountAdmin(r)
	}
	if s.opts.Pprof {
		s.mountPprof(r)
	}
	return r
}

// requestContext does what hlog.NewHandler and hlog.RequestIDHandler
// ("req_id", "X-Request-Id") do in turn, in one middleware whose frame,
// under every subscription's handler for its whole life, holds little:
// the work is in withRequestContext, which has returned by then. (The two
// hlog middlewares kept about 650 bytes on the stack of every subscriber
// served by net/http.)
func requestContext(log zerolog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, withRequestContext(&log, w, r))
		})
	}
}

// withRequestContext puts a copy of log (with the request id and the
// client's address, the TCP peer: behind a proxy, the proxy's) and
// the request id in r's context, and the id in the X-Request-Id header.
//
//go:noinline
func withRequestContext(log *zerolog.Logger, w http.ResponseWriter, r *http.Request) *http.Request {
	ctx := r.Context()
	id, ok := hlog.IDFromCtx(ctx)
	if !ok {
		id = xid.New()
		ctx = hlog.CtxWithID(ctx, id)
	}
	idText := id.String()
	// A copy of the logger with the id in its context, made in one go
	// (With, then UpdateContext, copied the context twice).
	l := log.With().Str("req_id", idText).Str("remote", r.RemoteAddr).Logger()
	ctx = l.WithContext(ctx)
	w.Header().Set("X-Request-Id", idText)
	return r.WithContext(ctx)
}

// accessLogger writes the one line per request when the handler returns,
// except for a subscription that took its connection over
// (markLoggedAtEnd): its handler returns once the subscription is parked,
// and the subscription writes its own line when it ends, with its whole
// duration and size.
func accessLogger(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lw := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			if _, later := lw.Header()[loggedAtEnd]; !later {
				accessLine(hlog.FromRequest(r), r.Method, r.URL.Path, lw.Status(), int64(lw.BytesWritten()), time.Since(start)).Msg("request")
			}
		}()
		next.ServeHTTP(lw, r)
	})
}

// loggedAtEnd is the response header key that tells accessLogger a
// subscription writes its own line. It is set after the connection was
// taken over and the head written, so it never reaches the client.
const loggedAtEnd = "X-Sseb-Logged-At-End"

// markLoggedAtEnd tells accessLogger that the handler's subscription,
// whose connection it took over, writes the request's line itself.
func markLoggedAtEnd(w http.ResponseWriter) { w.Header()[loggedAtEnd] = nil }

// accessLine is the one line per request, for Msg("request"). It has the
// path, never the query: query parameters can carry access tokens.
func accessLine(log *zerolog.Logger, method, path string, status int, size int64, d time.Duration) *zerolog.Event {
	if status == 0 {
		status = http.StatusOK // nothing went through the ResponseWriter: net/http sent an empty 200
	}
	return log.Info().
		Str("method", method).
		Str("path", path).
		Int("status", status).
		Int64("size", size).
		Dur("duration", d)
}

// recoverer turns a panic into a 500 JSON answer and a log line with the
// request id, so no stack trace reaches a client.
func recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// fmt.Sprint, not Interface: an error value would log as {}.
				hlog.FromRequest(r).Error().Str("panic", fmt.Sprint(v)).Bytes("stack", debug.Stack()).Msg("handler panicked")
				if sw, ok := w.(interface{ Status() int }); ok && sw.Status() != 0 {
					// The answer has started (an event stream, say): a JSON
					// error would corrupt it. Abort the connection instead.
					panic(http.ErrAbortHandler)
				}
				writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal", Message: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// streamID returns the {stream} path parameter, percent-decoded. chi
// matches on the raw path when the URL has escapes, so the parameter is
// still encoded exactly when RawPath is set.
func streamID(r *http.Request) (string, error) {
	id := chi.URLParam(r, "stream")
	if r.URL.RawPath == "" {
		return id, broker.ValidateStreamID(id)
	}
	dec, err := url.PathUnescape(id)
	if err != nil {
		return "", broker.ErrInvalidStreamID
	}
	return dec, broker.ValidateStreamID(dec)
}

// routeMethods are the methods any route of the API may have.
var routeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// allowedMethods are the methods router has a route for at req's path.
func allowedMethods(router chi.Routes, req *http.Request) []string {
	path := req.URL.RawPath // as chi routes: the escaped path when there is one
	if path == "" {
		path = req.URL.Path
	}
	var allowed []string
	for _, m := range routeMethods {
		if router.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
			if m == http.MethodGet { // served by GetHead
				allowed = append(allowed, http.MethodHead)
			}
		}
	}
	return allowed
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.isDraining.Load() {
		// Another node (or this one, restarted) will answer soon.
		w.Header().Set("Retry-After", strconv.Itoa(s.retryAfterSeconds()))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "store_unavailable", Message: "the broker is shutting down"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.broker.Ready(ctx); err != nil {
		hlog.FromRequest(r).Warn().Err(err).Msg("store not ready")
		w.Header().Set("Retry-After", strconv.Itoa(s.retryAfterSeconds()))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "store_unavailable", Message: "the store does not answer"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// pagePolicy lets the broker's pages (the demo, the operator's page) run
// their own inline script and style and talk to this origin only; no
// other site may frame them.
const pagePolicy = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// setPageHeaders sets the headers of one of the broker's HTML pages. No
// referrer: the operator's page's URL may carry an access token.
func setPageHeaders(h http.Header, cacheControl string) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", cacheControl)
	h.Set("Content-Security-Policy", pagePolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

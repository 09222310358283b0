package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"

	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/web"
)

const (
	// maxDemoMessage bounds the question the demo echoes back.
	maxDemoMessage = 2000
	// maxDemoAnswers bounds the mock answers being streamed at once, so the
	// public demo cannot be used to make the broker hold unbounded work;
	// with auth on, maxDemoAnswersEach bounds one token subject's, so one
	// user cannot take them all. (Without auth there is no fair key: behind
	// a proxy every visitor has the proxy's address.)
	maxDemoAnswers     = 64
	maxDemoAnswersEach = 4
	// demoStoreTimeout bounds one publish or close of a demo answer.
	demoStoreTimeout = 5 * time.Second
)

// demoRunner streams the demo's mock answers in the background and stops
// them on shutdown.
type demoRunner struct {
	s      *Server
	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{}

	// mu orders acquire against shutdown: wg.Add happens under it, and
	// never once closed is set, so shutdown's Wait cannot race an Add
	// (a demo request still in flight when the drain starts).
	mu      sync.Mutex
	closed  bool
	wg      sync.WaitGroup // one per place taken, done at release
	running map[string]int // answers streaming per token subject
}

func newDemoRunner(s *Server) demoRunner {
	ctx, cancel := context.WithCancel(context.Background())
	return demoRunner{s: s, ctx: ctx, cancel: cancel, slots: make(chan struct{}, maxDemoAnswers), running: make(map[string]int)}
}

// acquire takes a place for one answer of client (a token subject, or ""
// without auth), or says why not (429; 503 once shutting down).
func (d *demoRunner) acquire(client string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errShuttingDown
	}
	if client != "" && d.running[client] >= maxDemoAnswersEach {
		return fmt.Errorf("%w: %d of your demo answers are streaming already", errRateLimited, maxDemoAnswersEach)
	}
	select {
	case d.slots <- struct{}{}:
	default:
		return fmt.Errorf("%w: %d demo answers are streaming already", errRateLimited, maxDemoAnswers)
	}
	d.running[client]++
	d.wg.Add(1)
	return nil
}

// release gives back the place acquire took.
func (d *demoRunner) release(client string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	<-d.slots
	if d.running[client]--; d.running[client] == 0 {
		delete(d.running, client)
	}
	d.wg.Done()
}

// stop refuses new answers and cancels the streaming ones, which close
// their streams as they end.
func (d *demoRunner) stop() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
}

// wait waits, until ctx ends, for the answers stop cancelled to end.
func (d *demoRunner) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		if len(d.slots) == 0 {
			// None streams (their goroutines may still be returning): a
			// drain that ran out of time elsewhere is not the demo's doing.
			return nil
		}
		return fmt.Errorf("%d demo answers still streaming: %w", len(d.slots), ctx.Err())
	}
}

func (s *Server) demoPage(w http.ResponseWriter, _ *http.Request) {
	setPageHeaders(w.Header(), "no-cache")
	_, _ = w.Write(web.DemoPage)
}

// demoChat publishes a mock streamed answer into a stream through the same
// Broker.Publish a service uses, then closes the stream. It answers 202 at
// once; the tokens follow over the stream.
func (s *Server) demoChat(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		Stream  string `json:"stream"`
		Message string `json:"message"`
	}
	const want = `{"stream": "...", "message": "..."}`
	if err := checkJSONBody(body, want); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := decodeStrict(body, &req); err != nil {
		s.writeError(w, r, fmt.Errorf(`%w: %v; want %s`, broker.ErrInvalidRequest, err, want))
		return
	}
	if err := broker.ValidateStreamID(req.Stream); err != nil {
		s.writeError(w, r, err)
		return
	}
	// With auth on, the demo publishes like any publisher: only with a
	// publish right on the stream.
	if err := s.authorize(r, auth.Publish, req.Stream); err != nil {
		s.writeError(w, r, err)
		return
	}
	if n := utf8.RuneCountInString(req.Message); n == 0 || n > maxDemoMessage {
		s.writeError(w, r, fmt.Errorf("%w: message must be 1 to %d characters", broker.ErrInvalidRequest, maxDemoMessage))
		return
	}
	tokens := demoAnswer(req.Message)
	// The answer's events (its tokens and the stop) count against the
	// client's publish rate: the demo must not be a way to publish faster
	// than limits.publish_rate allows. They are charged now, whenever one
	// event could be published, and given back if the answer is refused
	// below.
	refund, err := s.takePublish(r, len(tokens)+1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// With auth on, each token subject (or, for tokens without one, each
	// client address) has its own share of the demo's places.
	var client string
	if _, ok := auth.FromContext(r.Context()); ok {
		client = subjectOf(r)
	}
	if err := s.demo.acquire(client); err != nil {
		refund()
		s.writeError(w, r, err)
		return
	}
	// The first token is published before the answer, so that what a
	// service's publish would be refused for (a closed stream: 409, the
	// store down: 503) is the demo's answer too, not a silent stop.
	if _, err := s.broker.Publish(r.Context(), req.Stream, []broker.Message{{Data: tokens[0]}}, ""); err != nil {
		s.demo.release(client)
		refund()
		s.writeError(w, r, err)
		return
	}
	log := hlog.FromRequest(r).With().Str("stream", req.Stream).Logger()
	go func() {
		defer s.demo.release(client)
		s.streamDemoAnswer(s.demo.ctx, log, req.Stream, tokens[1:])
	}()
	writeJSON(w, http.StatusAccepted, map[string]string{"stream": req.Stream})
}

// streamDemoAnswer publishes the rest of a demo answer, a token at a time,
// then closes the stream, also when it stops early (shutdown, a store
// error), so that the page gets its stop and gives the Send button back.
// The stop of an answer cut short has the data "interrupted", so that the
// page does not show it as complete.
//
// Shutdown (ctx) is seen between tokens, never inside a store call: a
// bolt or Redis publish cancelled half way would end the answer with the
// stream left open. Each store call is bounded by demoStoreTimeout instead.
func (s *Server) streamDemoAnswer(ctx context.Context, log zerolog.Logger, stream string, tokens []string) {
	storeCtx := context.WithoutCancel(ctx)
	stopData := demoInterrupted
	defer func() {
		cctx, cancel := context.WithTimeout(storeCtx, demoStoreTimeout)
		defer cancel()
		res, err := s.broker.CloseStream(cctx, stream, stopData)
		switch {
		case err == nil:
			// The lifecycle line POST .../close logs (publish.go).
			log.Info().Str("stop_id", broker.FormatID(res.IDs[0])).Str("by", "demo").Msg("stream closed")
		case errors.Is(err, broker.ErrStreamClosed), errors.Is(err, broker.ErrStreamNotFound):
			// Closed or deleted by someone else meanwhile: nothing to end.
			log.Debug().Err(err).Msg("demo answer's stream already ended")
		case err != nil:
			log.Warn().Err(err).Msg("demo answer could not close its stream")
		}
	}()
	for _, token := range tokens {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.opts.DemoTokenDelay):
		}
		pctx, cancel := context.WithTimeout(storeCtx, demoStoreTimeout)
		_, err := s.broker.Publish(pctx, stream, []broker.Message{{Data: token}}, "")
		cancel()
		if err != nil {
			log.Warn().Err(err).Msg("demo answer stopped")
			return
		}
	}
	stopData = ""
}

// demoInterrupted is the stop data of a demo answer cut short.
const demoInterrupted = "interrupted"

// demoAnswer is the mock reply, split into tokens the way a language model
// streams them: words with their leading space.
func demoAnswer(question string) []string {
	q := strings.Join(strings.Fields(question), " ")
	if utf8.RuneCountInString(q) > 80 {
		q = string([]rune(q)[:80]) + "…"
	}
	text := fmt.Sprintf("You asked: “%s”. This answer is streamed by SSE Broker one token at a time, "+
		"the way a language model sends it: each token is an event with an id, so a browser that "+
		"loses its connection resumes exactly where it stopped. Done.", q)
	words := strings.SplitAfter(text, " ")
	tokens := make([]string, 0, len(words))
	for _, w := range words {
		if w != "" {
			tokens = append(tokens, w)
		}
	}
	return tokens
}

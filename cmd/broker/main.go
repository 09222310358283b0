// Command broker runs SSE Broker: services POST messages into streams and
// browsers subscribe to them over Server-Sent Events.
//
// Configuration: configs/broker.yaml (or --config, or $BROKER_CONFIG), BROKER_* environment
// variables and flags; see the README's table or `broker --help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/pkg/api"
	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/broker"
)

const (
	// shutdownTimeout bounds the drain on SIGTERM: subscribers are told to
	// go at once, in-flight publishes get this long to finish.
	shutdownTimeout = 10 * time.Second
	// Server timeouts. There is no WriteTimeout: it would cut every
	// long-lived stream; subscriber writes have their own deadline.
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	// h2WriteByteTimeout closes an HTTP/2 connection to which nothing
	// could be written for this long: the subscriber write timeout of
	// pkg/api, for a client that stopped reading the whole connection.
	h2WriteByteTimeout = 10 * time.Second
)

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code. Only
// `broker publish` reads standard input, and it reads the process's.
func run(args, environ []string, stdout, stderr io.Writer) int {
	return dispatch(args, cli{environ: environ, stdin: os.Stdin, stdout: stdout, stderr: stderr})
}

// serveCmd is `broker serve` and `broker [flags]`: load the configuration
// from args and environ, then serve until SIGINT or SIGTERM.
func serveCmd(args, environ []string, stdout, stderr io.Writer) int {
	cfg, warnings, err := config.Load(args, environ)
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(stdout, "broker")
		return 0
	}
	var verifier *auth.Verifier
	if err == nil {
		// Key files are configuration too: a bad one is one line naming
		// its key and exit 2, before anything starts.
		verifier, err = checkKeys(cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log := newLogger(cfg, stderr)
	for _, w := range warnings {
		log.Warn().Msg(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// Once the first signal has started the drain, the signals get
		// their default action back: a second SIGINT or SIGTERM (Ctrl-C
		// twice, an impatient supervisor) ends the process at once rather
		// than waiting out a drain that a hung client or disk holds up.
		<-ctx.Done()
		stop()
	}()
	stopHangups := logHangups(log)
	defer stopHangups()
	if err := serve(ctx, cfg, verifier, log); err != nil {
		log.Error().Err(err).Msg("broker stopped")
		return 1
	}
	return 0
}

// logHangups keeps SIGHUP from ending the broker. Its default action kills
// the process on the spot, with no drain: subscribers cut off mid-answer,
// publishes lost halfway. Operators send it expecting a reload (as nginx,
// nats-server and Centrifugo do) and terminals send it when they close. The
// configuration is read only at start, so the signal is logged and
// otherwise ignored, as Caddy (and so Mercure) does. The returned function
// stops listening.
func logHangups(log zerolog.Logger) (stop func()) {
	hangups := make(chan os.Signal, 1)
	signal.Notify(hangups, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hangups:
				log.Warn().Msg("SIGHUP ignored: the configuration is read only at start; restart the broker to change it (SIGTERM drains first)")
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hangups)
		close(done)
	}
}

// newLogger builds the process logger from the validated configuration.
func newLogger(cfg config.Config, out io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.Log.Level)
	if err != nil {
		level = zerolog.InfoLevel // unreachable: config.Load validated it
	}
	f, isFile := out.(*os.File)
	if cfg.EffectiveLogFormat(isFile && term.IsTerminal(int(f.Fd()))) == "console" {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: "15:04:05.000", TimeLocation: time.UTC}
	}
	return zerolog.New(out).Level(level).Hook(timestampHook{})
}

// logTimeFormat is RFC 3339 in UTC with milliseconds. zerolog's own
// Timestamp writes whole seconds (its package-level TimeFieldFormat, which
// a process-wide setting would change for every logger in the process), and
// a browser's drop, reconnect and replay all happen within one second.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// timestampHook adds "time" to every line, where zerolog's Timestamp would.
type timestampHook struct{}

func (timestampHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str(zerolog.TimestampFieldName, time.Now().UTC().Format(logTimeFormat))
}

// serve runs the broker until ctx ends, then drains: readiness goes to
// 503, subscriber responses end (clients reconnect elsewhere), in-flight
// publishes finish, and the store closes last. verifier checks tokens (nil:
// auth off).
func serve(ctx context.Context, cfg config.Config, verifier *auth.Verifier, log zerolog.Logger) error {
	// The address first: a port in use fails before a bolt file is
	// created and locked or Redis is contacted. (srv.Shutdown closes ln.)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	hub := broker.NewHub(cfg.Subscribers.Max, cfg.Subscribers.Queue)
	store, err := openStore(ctx, cfg, hub, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error().Err(err).Msg("closing the store")
		}
	}()
	apiServer := api.New(api.Options{
		Broker:        broker.New(store, hub),
		Logger:        log,
		Retry:         cfg.SSE.Retry,
		Heartbeat:     cfg.SSE.Heartbeat,
		MaxBody:       cfg.Publish.MaxBody,
		Demo:          cfg.Demo.Enabled,
		Auth:          verifier,
		CORSOrigins:   cfg.CORS.AllowedOrigins,
		PublishRate:   cfg.Limits.PublishRate,
		SubscribeRate: cfg.Limits.SubscribeRate,
		Pprof:         cfg.Debug.Pprof,
		Admin:         cfg.Admin.Enabled,
	})
	srv := &http.Server{
		Handler:           apiServer,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          stdlog.New(httpErrorWriter{log.With().Str("component", "http").Logger()}, "", 0),
	}
	tlsOn := cfg.TLS.CertFile != ""
	log.Info().Str("addr", ln.Addr().String()).Str("store", cfg.Redacted().Store).Bool("tls", tlsOn).
		Str("protocols", protocolNames(cfg)).Bool("demo", cfg.Demo.Enabled).Msg("broker listening")
	if !cfg.AuthEnabled() {
		log.Warn().Msg("authentication is off: anyone who can reach the broker can publish and subscribe to any stream")
		if cfg.Admin.Enabled {
			log.Warn().Msg("the operator's page is on without authentication: /admin lists the ids of active streams to anyone (admin.enabled: false turns it off)")
		}
	}

	served := make(chan error, 1)
	go func() {
		served <- serveHTTP(srv, ln, cfg)
	}()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	log.Info().Msg("shutting down: draining subscribers and in-flight publishes (a second signal stops at once)")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Both at once: http.Server.Shutdown stops accepting and waits for
	// handlers, which only end once the API tells its streams to.
	drained := make(chan error, 1)
	go func() { drained <- apiServer.Shutdown(shutdownCtx) }()
	err = srv.Shutdown(shutdownCtx)
	if derr := <-drained; derr != nil {
		log.Warn().Err(derr).Msg("draining the API")
	}
	// Once more, now that net/http has no handler left: a subscribe that
	// was still being read when the first wait found nothing may have
	// taken its connection over since. It ends at once (draining is set);
	// this waits for that before the store closes.
	if derr := apiServer.Shutdown(shutdownCtx); derr != nil {
		log.Warn().Err(derr).Msg("draining the API")
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info().Msg("broker stopped")
	return nil
}

// httpErrorWriter puts net/http's own error lines (failed TLS handshakes,
// accept errors, panics it recovered) in the log with a level, so that
// log.level filters them and collectors that route by level see one.
// Failed handshakes are debug: on a broker that faces the internet every
// scanner and every plain-HTTP request to the TLS port makes one.
type httpErrorWriter struct{ log zerolog.Logger }

func (w httpErrorWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := zerolog.WarnLevel
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = zerolog.DebugLevel
	}
	w.log.WithLevel(level).Msg(msg)
	return len(p), nil
}

// Package config loads the broker configuration: built-in defaults, one YAML
// file, BROKER_* environment variables and a few command-line flags, in that
// order of precedence.
//
// One table (see Fields) describes every key once: its YAML key, environment
// variable, flag, default, documentation and how its value is parsed and
// checked. YAML, environment, flags, validation, the usage text and the
// README table are all driven by it, so adding a key is one table row and a
// struct field, and none of those places can forget it.
//
// Everything is validated at load: the broker either starts fully configured
// or refuses to start with one line that names the key and where its value
// came from. The package holds no global state; Load may be called from
// parallel tests.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"
)

// Config is the effective broker configuration. The field comments give the
// YAML key; Fields documents each one.
type Config struct {
	// File is the configuration file that was read, "" when only built-in
	// defaults, environment and flags were used. It is informational (for
	// the start-up log line) and not a configuration key.
	File string

	Listen string // listen
	Store  string // store: "memory", "bolt:PATH" or "redis://HOST:PORT/DB"
	Redis  struct {
		AllowEviction bool // redis.allow_eviction
	}

	History struct {
		MaxEvents int           // history.max_events
		MaxAge    time.Duration // history.max_age
	}
	Streams struct {
		IdleTTL time.Duration // streams.idle_ttl
		Max     int           // streams.max
	}
	Subscribers struct {
		Max   int // subscribers.max
		Queue int // subscribers.queue
	}
	SSE struct {
		Retry, Heartbeat time.Duration // sse.retry, sse.heartbeat
	}
	Publish struct {
		MaxBody int64 // publish.max_body, in bytes
	}
	Auth struct {
		JWT struct {
			// Secret, PublicKeyFile, Algorithm: auth.jwt.secret,
			// auth.jwt.public_key_file, auth.jwt.algorithm.
			Secret, PublicKeyFile, Algorithm string
		}
	}
	TLS struct {
		CertFile, KeyFile string // tls.cert_file, tls.key_file
	}
	HTTP struct {
		H2C bool // http.h2c
	}
	CORS struct {
		AllowedOrigins []string // cors.allowed_origins
	}
	Demo struct {
		Enabled bool // demo.enabled
	}
	Admin struct {
		Enabled bool // admin.enabled
	}
	Limits struct {
		// PublishRate, SubscribeRate: limits.publish_rate,
		// limits.subscribe_rate, per second; 0 means no limit.
		PublishRate, SubscribeRate float64
	}
	Debug struct {
		Pprof bool // debug.pprof
	}
	Log struct {
		// Level is lower case: trace, debug, info, warn or error.
		// Format is "console", "json" or "" (automatic).
		Level, Format string
	}
}

// Default returns the built-in configuration, the lowest precedence level.
// It is valid as is: a broker started with no file, no environment and no
// flags serves on :8080 with an in-memory store and auth off.
func Default() Config {
	var c Config
	c.Listen = DefaultListen
	c.Store = DefaultStore
	c.History.MaxEvents = DefaultHistoryMaxEvents
	c.History.MaxAge = DefaultHistoryMaxAge
	c.Streams.IdleTTL = DefaultStreamsIdleTTL
	c.Streams.Max = DefaultStreamsMax
	c.Subscribers.Max = DefaultSubscribersMax
	c.Subscribers.Queue = DefaultSubscribersQueue
	c.SSE.Retry = DefaultSSERetry
	c.SSE.Heartbeat = DefaultSSEHeartbeat
	c.Publish.MaxBody = DefaultPublishMaxBody
	c.Auth.JWT.Algorithm = DefaultJWTAlgorithm
	c.Demo.Enabled = DefaultDemoEnabled
	c.Admin.Enabled = DefaultAdminEnabled
	c.Limits.PublishRate = DefaultPublishRate
	c.Limits.SubscribeRate = DefaultSubscribeRate
	c.Log.Level = DefaultLogLevel
	c.Log.Format = DefaultLogFormat
	return c
}

// AuthEnabled reports whether requests must carry a JWT. Auth is switched on
// by configuring a key rather than by a separate flag, so that a deployment
// cannot end up with auth "on" but no key to verify tokens with. The caller
// should log a warning when it is off.
func (c Config) AuthEnabled() bool {
	return c.Auth.JWT.Secret != "" || c.Auth.JWT.PublicKeyFile != ""
}

// redactedMark replaces secrets; it is visibly not a real value.
const redactedMark = "REDACTED"

// errMasked refuses a JWT secret that is the mask Redacted prints: the
// output of `broker config check` saved as a configuration file would
// otherwise run with a key anyone can read in this source and forge tokens
// with. (A masked Redis password needs no such check: it fails Redis's AUTH
// at start, visibly.)
var errMasked = errors.New("is the mask that `broker config check` prints in place of the secret; set the real value (for example in its environment variable)")

func checkNotMasked(s string) error {
	if s == redactedMark {
		return errMasked
	}
	return nil
}

// Redacted returns a copy that is safe to print or log as the effective
// configuration: the JWT secret and any password in a redis:// store URL are
// masked. An empty secret stays empty so the output still shows whether auth
// is on.
func (c Config) Redacted() Config {
	r := c
	r.CORS.AllowedOrigins = slices.Clone(c.CORS.AllowedOrigins)
	if r.Auth.JWT.Secret != "" {
		r.Auth.JWT.Secret = redactedMark
	}
	r.Store = redactStore(c.Store)
	return r
}

// EffectiveLogFormat resolves the automatic log format: people reading a
// terminal want console output, log collectors want json. The caller decides
// isTerminal (e.g. with golang.org/x/term on stderr) so this package stays
// free of I/O.
func (c Config) EffectiveLogFormat(isTerminal bool) string {
	if c.Log.Format != "" {
		return c.Log.Format
	}
	if isTerminal {
		return "console"
	}
	return "json"
}

// Validate checks a Config built in code (tests, embedding) with the same
// rules Load applies, so that such a Config cannot start half-configured
// either. Errors do not name a source since the values did not come from
// one.
func (c Config) Validate() error {
	for _, f := range table() {
		if err := f.check(&c); err != nil {
			return fieldError(f.key, "", err)
		}
	}
	return crossCheck(&c, nil)
}

// fieldError formats the one line Load returns for a bad value. source is
// where the value came from ("default", "configs/broker.yaml:12",
// "BROKER_LISTEN", "--listen") or "" when unknown.
func fieldError(key, source string, err error) error {
	if source == "" {
		return fmt.Errorf("config: %s: %v", key, err)
	}
	return fmt.Errorf("config: %s: %v (from %s)", key, err, source)
}

// redactStore masks the password of a redis:// URL; other stores carry no
// secret.
func redactStore(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		return u.Redacted()
	}
	return s
}

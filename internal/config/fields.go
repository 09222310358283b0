package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sse-broker/broker/pkg/api"
)

// FieldInfo describes one configuration key for documentation and tests.
type FieldInfo struct {
	Key     string // dotted YAML key, e.g. "history.max_events"
	Env     string // environment variable, e.g. "BROKER_HISTORY_MAX_EVENTS"
	Flag    string // flag name without dashes ("listen"), or "" when the key has no flag
	Type    string // string, integer, duration, size, number, boolean or list
	Default string // the built-in default as it would be written in YAML
	Doc     string // one sentence for users
	Secret  bool   // the value must never be printed (see Config.Redacted)
}

// Fields returns the table that drives loading, in documentation order. It
// returns a fresh slice on every call, so callers may modify it.
func Fields() []FieldInfo {
	def := Default()
	t := table()
	out := make([]FieldInfo, len(t))
	for i, f := range t {
		out[i] = FieldInfo{
			Key:     f.key,
			Env:     envName(f.key),
			Flag:    f.flag,
			Type:    f.typ,
			Default: f.format(&def),
			Doc:     f.doc,
			Secret:  f.secret,
		}
	}
	return out
}

// FieldsMarkdown renders Fields as a Markdown table, so the README can be
// generated from (or tested against) the code instead of maintained by hand.
func FieldsMarkdown() string {
	var b strings.Builder
	b.WriteString("| key | environment | flag | default | description |\n")
	b.WriteString("| --- | --- | --- | --- | --- |\n")
	for _, f := range Fields() {
		flagCol, defCol := "", "empty"
		if f.Flag != "" {
			flagCol = "`--" + f.Flag + "`"
		}
		if f.Default != "" {
			defCol = "`" + f.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s | %s |\n",
			f.Key, f.Env, flagCol, defCol, strings.ReplaceAll(f.Doc, "|", `\|`))
	}
	return b.String()
}

// envName derives the environment variable from the key, so the two can
// never disagree: "history.max_events" -> "BROKER_HISTORY_MAX_EVENTS".
func envName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// value is one raw setting before parsing. Only list keys accept a list;
// every source (YAML, environment, flag) is reduced to this shape so that
// one parser per key serves them all.
type value struct {
	scalar string
	list   []string
	isList bool
}

// field is one row of the table. parse turns raw text into the typed value
// and stores it; check holds the rules on the typed value so that Validate
// can apply them to a Config built in code. Their errors describe the
// problem only; the caller adds the key and the source.
type field struct {
	key, flag, typ, doc string
	secret              bool
	parse               func(c *Config, v value) error
	check               func(c *Config) error
	format              func(c *Config) string
}

// table is a function rather than a package variable so that there is no
// mutable global state; building it is cheap.
func table() []field {
	return []field{
		stringField("listen", "listen",
			"Address the HTTP server listens on, host:port; an empty host means all interfaces.",
			func(c *Config) *string { return &c.Listen }, checkListen),
		stringField("store", "store",
			"Where streams and history live: memory (lost on restart), bolt:PATH (a durable file, one node) or redis://HOST:PORT/DB (shared by several nodes).",
			func(c *Config) *string { return &c.Store }, checkStore),
		boolField("redis.allow_eviction", "",
			"With a redis store: start even when Redis's maxmemory-policy may evict keys (history would vanish silently); logged as an error. Off: such a Redis is refused at start.",
			func(c *Config) *bool { return &c.Redis.AllowEviction }),
		intField("history.max_events",
			"Events kept per stream for replay; a client resuming before the oldest kept event gets a gap event.",
			func(c *Config) *int { return &c.History.MaxEvents }),
		durationField("history.max_age",
			"How long an event stays replayable.",
			func(c *Config) *time.Duration { return &c.History.MaxAge }),
		durationField("streams.idle_ttl",
			"A stream with no publish and no subscriber for this long is deleted with its history.",
			func(c *Config) *time.Duration { return &c.Streams.IdleTTL }),
		intField("streams.max",
			"Most streams that may exist at once; beyond, creating one answers 503 too_many_streams.",
			func(c *Config) *int { return &c.Streams.Max }),
		intField("subscribers.max",
			"Most SSE connections at once; beyond, subscribing answers 503 too_many_subscribers with Retry-After.",
			func(c *Config) *int { return &c.Subscribers.Max }),
		intField("subscribers.queue",
			"Publish requests queued per subscriber (a batch counts once); a subscriber whose queue is full is disconnected and resumes from history.",
			func(c *Config) *int { return &c.Subscribers.Queue }),
		durationField("sse.retry",
			"Reconnection delay sent to clients in the SSE retry field.",
			func(c *Config) *time.Duration { return &c.SSE.Retry }),
		durationField("sse.heartbeat",
			"Idle connections get a comment line this often so proxies and clients do not time them out.",
			func(c *Config) *time.Duration { return &c.SSE.Heartbeat }),
		sizeField("publish.max_body",
			"Largest publish request body, in bytes or with a unit (64KiB, 1MiB); beyond, 413 body_too_large.",
			func(c *Config) *int64 { return &c.Publish.MaxBody }),
		secretField("auth.jwt.secret",
			"HMAC secret for HS256 tokens; setting it turns auth on. Empty together with public_key_file: auth off.",
			func(c *Config) *string { return &c.Auth.JWT.Secret }),
		stringField("auth.jwt.public_key_file", "",
			"PEM public key file for RS256, ES256 or EdDSA tokens; setting it turns auth on.",
			func(c *Config) *string { return &c.Auth.JWT.PublicKeyFile }, nil),
		enumField("auth.jwt.algorithm", "",
			"The only algorithm accepted in tokens (HS256, RS256, ES256 or EdDSA); never taken from the token.",
			func(c *Config) *string { return &c.Auth.JWT.Algorithm }, false, "HS256", "RS256", "ES256", "EdDSA"),
		stringField("tls.cert_file", "",
			"PEM certificate chain; set with tls.key_file to serve HTTPS with HTTP/2, empty for plain HTTP.",
			func(c *Config) *string { return &c.TLS.CertFile }, nil),
		stringField("tls.key_file", "",
			"PEM private key of tls.cert_file.",
			func(c *Config) *string { return &c.TLS.KeyFile }, nil),
		boolField("http.h2c", "",
			"Serve HTTP/2 without TLS (h2c) beside HTTP/1.1, for a proxy that speaks it to the broker; ignored with TLS.",
			func(c *Config) *bool { return &c.HTTP.H2C }),
		listField("cors.allowed_origins",
			"Origins allowed to call the API from a browser (scheme://host[:port], or * alone); empty: none. Comma-separated in the environment.",
			func(c *Config) *[]string { return &c.CORS.AllowedOrigins }, checkOrigins),
		boolField("demo.enabled", "demo",
			"Serve the demo chat page at / and POST /v1/demo/chat; off, both answer 404.",
			func(c *Config) *bool { return &c.Demo.Enabled }),
		boolField("admin.enabled", "",
			"Serve the operator's page at /admin and its JSON and live endpoints; with auth off anyone may read them, and they list the ids of active streams. Off: 404.",
			func(c *Config) *bool { return &c.Admin.Enabled }),
		rateField("limits.publish_rate",
			"Events per second per token subject (per client IP without auth), 0.001 to 1e9; beyond, 429 with Retry-After. A batch above one window's budget passes when nothing else is counted, then holds its sender back as long as its events take at the rate. 0 means no limit.",
			func(c *Config) *float64 { return &c.Limits.PublishRate }),
		rateField("limits.subscribe_rate",
			"New subscriptions per second, counted like publish_rate; 0 means no limit.",
			func(c *Config) *float64 { return &c.Limits.SubscribeRate }),
		boolField("debug.pprof", "",
			"Serve net/http/pprof profiles under /debug/pprof/; with auth on they need a token that may publish to every stream. Off: 404.",
			func(c *Config) *bool { return &c.Debug.Pprof }),
		enumField("log.level", "log-level",
			"Least severe level logged: trace, debug, info, warn or error.",
			func(c *Config) *string { return &c.Log.Level }, true, "trace", "debug", "info", "warn", "error"),
		enumField("log.format", "",
			"console (for people) or json (for log collectors); empty or auto: console on a terminal, else json.",
			func(c *Config) *string { return &c.Log.Format }, true, "", "auto", "console", "json"),
	}
}

func stringField(key, flagName, doc string, p func(*Config) *string, chk func(string) error) field {
	if chk == nil {
		chk = func(string) error { return nil }
	}
	return field{
		key: key, flag: flagName, typ: "string", doc: doc,
		parse: func(c *Config, v value) error {
			if err := chk(v.scalar); err != nil {
				return err
			}
			*p(c) = v.scalar
			return nil
		},
		check:  func(c *Config) error { return chk(*p(c)) },
		format: func(c *Config) string { return *p(c) },
	}
}

// secretField is a string whose value never appears in an error message or
// in the generated documentation.
func secretField(key, doc string, p func(*Config) *string) field {
	f := stringField(key, "", doc, p, checkNotMasked)
	f.secret = true
	return f
}

// enumField accepts one of the allowed values. With fold, any letter case is
// accepted and stored in the case of the allowed value, because people type
// INFO or JSON; JWT algorithm names are case-sensitive by RFC 7518, so
// they are not folded. "auto" is stored as "" (the automatic log format).
func enumField(key, flagName, doc string, p func(*Config) *string, fold bool, allowed ...string) field {
	find := func(s string) (string, bool) {
		for _, a := range allowed {
			if s == a || (fold && strings.EqualFold(s, a)) {
				if a == "auto" {
					a = ""
				}
				return a, true
			}
		}
		return "", false
	}
	shown := make([]string, 0, len(allowed))
	for _, a := range allowed {
		if a != "" {
			shown = append(shown, a)
		}
	}
	bad := func(s string) error {
		return fmt.Errorf("%q is not one of %s", s, strings.Join(shown, ", "))
	}
	return field{
		key: key, flag: flagName, typ: "string", doc: doc,
		parse: func(c *Config, v value) error {
			s, ok := find(v.scalar)
			if !ok {
				return bad(v.scalar)
			}
			*p(c) = s
			return nil
		},
		check: func(c *Config) error {
			if s, ok := find(*p(c)); !ok || s != *p(c) {
				return bad(*p(c))
			}
			return nil
		},
		format: func(c *Config) string { return *p(c) },
	}
}

// intField is a count; every count in the broker must be at least 1, since
// 0 would make the broker useless rather than unlimited.
func intField(key, doc string, p func(*Config) *int) field {
	chk := func(n int) error {
		if n <= 0 {
			return fmt.Errorf("%d must be greater than 0", n)
		}
		return nil
	}
	return field{
		key: key, typ: "integer", doc: doc,
		parse: func(c *Config, v value) error {
			n, err := strconv.Atoi(v.scalar)
			if err != nil {
				if errors.Is(err, strconv.ErrRange) {
					return fmt.Errorf("%q is too large", v.scalar)
				}
				return fmt.Errorf("%q is not an integer", v.scalar)
			}
			if err := chk(n); err != nil {
				return err
			}
			*p(c) = n
			return nil
		},
		check:  func(c *Config) error { return chk(*p(c)) },
		format: func(c *Config) string { return strconv.Itoa(*p(c)) },
	}
}

// durationField must be positive: every duration in the broker is an
// interval or a lifetime, and 0 would mean a busy loop or instant expiry.
// sse.retry is sent in whole milliseconds, hence the millisecond floor.
func durationField(key, doc string, p func(*Config) *time.Duration) field {
	chk := func(d time.Duration) error {
		switch {
		case d <= 0:
			return fmt.Errorf("%s must be greater than 0", formatDuration(d))
		case d < time.Millisecond:
			return fmt.Errorf("%s must be at least 1ms", formatDuration(d))
		}
		return nil
	}
	return field{
		key: key, typ: "duration", doc: doc,
		parse: func(c *Config, v value) error {
			d, err := parseDuration(v.scalar)
			if err != nil {
				return err
			}
			if err := chk(d); err != nil {
				return err
			}
			*p(c) = d
			return nil
		},
		check:  func(c *Config) error { return chk(*p(c)) },
		format: func(c *Config) string { return formatDuration(*p(c)) },
	}
}

func sizeField(key, doc string, p func(*Config) *int64) field {
	chk := func(n int64) error {
		if n <= 0 {
			return fmt.Errorf("%d must be greater than 0", n)
		}
		return nil
	}
	return field{
		key: key, typ: "size", doc: doc,
		parse: func(c *Config, v value) error {
			n, err := parseSize(v.scalar)
			if err != nil {
				return err
			}
			if err := chk(n); err != nil {
				return err
			}
			*p(c) = n
			return nil
		},
		check:  func(c *Config) error { return chk(*p(c)) },
		format: func(c *Config) string { return formatSize(*p(c)) },
	}
}

// rateField is a per-second rate where 0 switches the limit off.
func rateField(key, doc string, p func(*Config) *float64) field {
	chk := func(f float64) error {
		if f != 0 && !(f >= api.MinRate && f <= api.MaxRate) { // NaN fails too
			return fmt.Errorf("%v must be 0 (no limit) or from %g to %g per second", f, api.MinRate, api.MaxRate)
		}
		return nil
	}
	return field{
		key: key, typ: "number", doc: doc,
		parse: func(c *Config, v value) error {
			f, err := strconv.ParseFloat(v.scalar, 64)
			if err != nil {
				return fmt.Errorf("%q is not a number", v.scalar)
			}
			if err := chk(f); err != nil {
				return err
			}
			*p(c) = f
			return nil
		},
		check:  func(c *Config) error { return chk(*p(c)) },
		format: func(c *Config) string { return strconv.FormatFloat(*p(c), 'g', -1, 64) },
	}
}

func boolField(key, flagName, doc string, p func(*Config) *bool) field {
	return field{
		key: key, flag: flagName, typ: "boolean", doc: doc,
		// Only true and false: strconv.ParseBool's 1, t and T read as
		// true where yes and on are refused, which no message can make
		// obvious.
		parse: func(c *Config, v value) error {
			switch v.scalar {
			case "true", "false":
				*p(c) = v.scalar == "true"
				return nil
			}
			return fmt.Errorf("%q is not a boolean (true or false)", v.scalar)
		},
		check:  func(*Config) error { return nil },
		format: func(c *Config) string { return strconv.FormatBool(*p(c)) },
	}
}

// listField takes a YAML list, or a comma-separated string (the only way to
// write a list in an environment variable; accepted in YAML too for
// symmetry). Blanks around items and empty items are dropped so that
// "a, b," means [a b].
func listField(key, doc string, p func(*Config) *[]string, chk func([]string) error) field {
	return field{
		key: key, typ: "list", doc: doc,
		parse: func(c *Config, v value) error {
			items := v.list
			if !v.isList {
				items = strings.Split(v.scalar, ",")
			}
			var out []string
			for _, it := range items {
				if it = strings.TrimSpace(it); it != "" {
					out = append(out, it)
				}
			}
			if err := chk(out); err != nil {
				return err
			}
			*p(c) = out
			return nil
		},
		check:  func(c *Config) error { return chk(*p(c)) },
		format: func(c *Config) string { return strings.Join(*p(c), ",") },
	}
}

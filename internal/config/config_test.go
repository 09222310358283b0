package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// writeFile writes content to name in a fresh temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// nestedYAML writes a dotted key as nested mappings, the way people write
// the file: "auth.jwt.secret" -> "auth:\n  jwt:\n    secret: <val>".
func nestedYAML(key, val string) string {
	parts := strings.Split(key, ".")
	var b strings.Builder
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i == len(parts)-1 {
			b.WriteString(" " + val)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func mustLoad(t *testing.T, args, environ []string) Config {
	t.Helper()
	c, _, err := Load(args, environ)
	if err != nil {
		t.Fatalf("Load(%q, %q): %v", args, environ, err)
	}
	return c
}

func TestDefault(t *testing.T) {
	t.Parallel()
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	got := mustLoad(t, nil, nil)
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("Load with nothing = %+v, want Default() %+v", got, Default())
	}
	if got.AuthEnabled() {
		t.Error("auth enabled by default")
	}
	want := map[string]string{
		"listen": ":8080", "store": "memory",
		"history.max_events": "1000", "history.max_age": "1h",
		"streams.idle_ttl": "24h", "streams.max": "100000",
		"subscribers.max": "100000", "subscribers.queue": "256",
		"sse.retry": "3s", "sse.heartbeat": "15s", "publish.max_body": "1MiB",
		"auth.jwt.secret": "", "auth.jwt.public_key_file": "", "auth.jwt.algorithm": "HS256",
		"tls.cert_file": "", "tls.key_file": "", "http.h2c": "false", "cors.allowed_origins": "",
		"demo.enabled": "true", "admin.enabled": "true", "redis.allow_eviction": "false", "limits.publish_rate": "0", "limits.subscribe_rate": "0",
		"debug.pprof": "false", "log.level": "info", "log.format": "",
	}
	fields := Fields()
	if len(fields) != len(want) {
		t.Errorf("Fields() has %d keys, want %d", len(fields), len(want))
	}
	for _, f := range fields {
		if d, ok := want[f.Key]; !ok || d != f.Default {
			t.Errorf("Fields() %s default = %q, want %q (known %v)", f.Key, f.Default, d, ok)
		}
	}
}

// TestFieldsTable guards the single-table design: every leaf of Config (but
// File) has exactly one row, environment names follow the key, and the flags
// are the ones the spec lists.
func TestFieldsTable(t *testing.T) {
	t.Parallel()
	var leaves int
	var count func(reflect.Type)
	count = func(tp reflect.Type) {
		for i := range tp.NumField() {
			f := tp.Field(i)
			if f.Type.Kind() == reflect.Struct {
				count(f.Type)
			} else {
				leaves++
			}
		}
	}
	count(reflect.TypeFor[Config]())
	leaves-- // File is not a key
	fields := Fields()
	if len(fields) != leaves {
		t.Errorf("Fields() has %d rows, Config has %d settable leaves", len(fields), leaves)
	}
	var flags []string
	seen := map[string]bool{}
	for _, f := range fields {
		if seen[f.Key] {
			t.Errorf("key %s twice", f.Key)
		}
		seen[f.Key] = true
		if want := "BROKER_" + strings.ToUpper(strings.ReplaceAll(f.Key, ".", "_")); f.Env != want {
			t.Errorf("%s: env %s, want %s", f.Key, f.Env, want)
		}
		if f.Doc == "" || f.Type == "" {
			t.Errorf("%s: missing doc or type", f.Key)
		}
		if f.Flag != "" {
			flags = append(flags, f.Flag)
		}
	}
	if want := []string{"listen", "store", "demo", "log-level"}; !slices.Equal(flags, want) {
		t.Errorf("flags = %v, want %v", flags, want)
	}
	md := FieldsMarkdown()
	for _, f := range fields {
		if !strings.Contains(md, "`"+f.Key+"`") || !strings.Contains(md, "`"+f.Env+"`") {
			t.Errorf("FieldsMarkdown misses %s", f.Key)
		}
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "b.yaml", "listen: \":1001\"\ndemo:\n  enabled: false\nlog:\n  level: warn\n")
	cases := []struct {
		name    string
		args    []string
		env     []string
		listen  string
		demo    bool
		level   string
		maxEvts int
	}{
		{"default", nil, nil, ":8080", true, "info", 1000},
		{"file over default", []string{"--config", file}, nil, ":1001", false, "warn", 1000},
		{"env over default", nil, []string{"BROKER_LISTEN=:1002", "BROKER_HISTORY_MAX_EVENTS=7"}, ":1002", true, "info", 7},
		{"env over file", []string{"--config", file},
			[]string{"BROKER_LISTEN=:1002", "BROKER_DEMO_ENABLED=true", "BROKER_LOG_LEVEL=debug"}, ":1002", true, "debug", 1000},
		{"flag over env", []string{"--config", file, "--listen", ":1003", "--demo=false", "--log-level=error"},
			[]string{"BROKER_LISTEN=:1002", "BROKER_DEMO_ENABLED=true", "BROKER_LOG_LEVEL=debug"}, ":1003", false, "error", 1000},
		{"bare bool flag", []string{"--config", file, "--demo"}, nil, ":1001", true, "warn", 1000},
		{"single dash flag", []string{"-listen=:1004"}, []string{"BROKER_LISTEN=:1002"}, ":1004", true, "info", 1000},
		{"later env duplicate wins", nil, []string{"BROKER_LISTEN=:1", "BROKER_LISTEN=:2"}, ":2", true, "info", 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := mustLoad(t, tc.args, tc.env)
			if c.Listen != tc.listen || c.Demo.Enabled != tc.demo || c.Log.Level != tc.level || c.History.MaxEvents != tc.maxEvts {
				t.Errorf("got listen=%q demo=%v level=%q max_events=%d, want %q %v %q %d",
					c.Listen, c.Demo.Enabled, c.Log.Level, c.History.MaxEvents, tc.listen, tc.demo, tc.level, tc.maxEvts)
			}
		})
	}
}

// keyCase sets one key to a non-default value. extra holds other keys the
// value needs (a key file for RS256, ...), set through the environment.
type keyCase struct {
	key   string
	text  string // as in the environment or on the command line
	yaml  string // as in YAML; "" means text quoted
	extra []string
	want  func(c *Config)
}

func everyKeyCases(t *testing.T) []keyCase {
	dir := t.TempDir()
	pem := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(pem, []byte("not parsed here"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []keyCase{
		{key: "listen", text: "127.0.0.1:9090", want: func(c *Config) { c.Listen = "127.0.0.1:9090" }},
		{key: "store", text: "redis://:pw@cache:6380/2", want: func(c *Config) { c.Store = "redis://:pw@cache:6380/2" }},
		{key: "history.max_events", text: "50", yaml: "50", want: func(c *Config) { c.History.MaxEvents = 50 }},
		{key: "history.max_age", text: "90m", want: func(c *Config) { c.History.MaxAge = 90 * time.Minute }},
		{key: "streams.idle_ttl", text: "1h30m", want: func(c *Config) { c.Streams.IdleTTL = 90 * time.Minute }},
		{key: "streams.max", text: "10", yaml: "10", want: func(c *Config) { c.Streams.Max = 10 }},
		{key: "subscribers.max", text: "11", yaml: "11", want: func(c *Config) { c.Subscribers.Max = 11 }},
		{key: "subscribers.queue", text: "12", yaml: "12", want: func(c *Config) { c.Subscribers.Queue = 12 }},
		{key: "sse.retry", text: "1500ms", want: func(c *Config) { c.SSE.Retry = 1500 * time.Millisecond }},
		{key: "sse.heartbeat", text: "5s", want: func(c *Config) { c.SSE.Heartbeat = 5 * time.Second }},
		{key: "publish.max_body", text: "64KiB", want: func(c *Config) { c.Publish.MaxBody = 64 << 10 }},
		{key: "auth.jwt.secret", text: "0123456789abcdef0123456789abcdef", want: func(c *Config) {
			c.Auth.JWT.Secret = "0123456789abcdef0123456789abcdef"
		}},
		{key: "auth.jwt.public_key_file", text: pem, extra: []string{"BROKER_AUTH_JWT_ALGORITHM=ES256"}, want: func(c *Config) {
			c.Auth.JWT.PublicKeyFile, c.Auth.JWT.Algorithm = pem, "ES256"
		}},
		{key: "auth.jwt.algorithm", text: "EdDSA", want: func(c *Config) { c.Auth.JWT.Algorithm = "EdDSA" }},
		{key: "tls.cert_file", text: pem, extra: []string{"BROKER_TLS_KEY_FILE=" + pem}, want: func(c *Config) {
			c.TLS.CertFile, c.TLS.KeyFile = pem, pem
		}},
		{key: "tls.key_file", text: pem, extra: []string{"BROKER_TLS_CERT_FILE=" + pem}, want: func(c *Config) {
			c.TLS.CertFile, c.TLS.KeyFile = pem, pem
		}},
		{key: "http.h2c", text: "true", yaml: "true", want: func(c *Config) { c.HTTP.H2C = true }},
		{key: "cors.allowed_origins", text: "https://a.example, http://localhost:3000",
			yaml: "[https://a.example, \"http://localhost:3000\"]", want: func(c *Config) {
				c.CORS.AllowedOrigins = []string{"https://a.example", "http://localhost:3000"}
			}},
		{key: "demo.enabled", text: "false", yaml: "false", want: func(c *Config) { c.Demo.Enabled = false }},
		{key: "admin.enabled", text: "false", yaml: "false", want: func(c *Config) { c.Admin.Enabled = false }},
		{key: "redis.allow_eviction", text: "true", yaml: "true", want: func(c *Config) { c.Redis.AllowEviction = true }},
		{key: "limits.publish_rate", text: "2.5", yaml: "2.5", want: func(c *Config) { c.Limits.PublishRate = 2.5 }},
		{key: "limits.subscribe_rate", text: "10", yaml: "10", want: func(c *Config) { c.Limits.SubscribeRate = 10 }},
		{key: "debug.pprof", text: "true", yaml: "true", want: func(c *Config) { c.Debug.Pprof = true }},
		{key: "log.level", text: "DEBUG", want: func(c *Config) { c.Log.Level = "debug" }},
		{key: "log.format", text: "json", want: func(c *Config) { c.Log.Format = "json" }},
	}
}

func TestEveryKeySettable(t *testing.T) {
	t.Parallel()
	cases := everyKeyCases(t)
	byKey := map[string]FieldInfo{}
	for _, f := range Fields() {
		byKey[f.Key] = f
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		f, ok := byKey[tc.key]
		if !ok {
			t.Fatalf("unknown key %s in test table", tc.key)
		}
		covered[tc.key] = true
		want := Default()
		tc.want(&want)

		y := tc.yaml
		if y == "" {
			y = `"` + tc.text + `"`
		}
		file := writeFile(t, "c.yaml", nestedYAML(tc.key, y))
		sources := map[string]struct {
			args []string
			env  []string
		}{
			"yaml": {[]string{"--config", file}, tc.extra},
			"env":  {nil, append([]string{f.Env + "=" + tc.text}, tc.extra...)},
		}
		if f.Flag != "" {
			sources["flag"] = struct {
				args []string
				env  []string
			}{[]string{"--" + f.Flag + "=" + tc.text}, tc.extra}
		}
		for name, src := range sources {
			t.Run(tc.key+"/"+name, func(t *testing.T) {
				t.Parallel()
				got := mustLoad(t, src.args, src.env)
				got.File = ""
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got  %+v\nwant %+v", got, want)
				}
			})
		}
	}
	for _, f := range Fields() {
		if !covered[f.Key] {
			t.Errorf("key %s has no case", f.Key)
		}
	}
}

func TestUnknownYAMLKey(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, yaml, key, hint string }{
		{"nested typo", "history:\n  max_event: 5\n", "history.max_event", "history.max_events"},
		{"top-level typo", "listn: \":80\"\n", "listn", "listen"},
		{"unknown section", "metrics:\n  enabled: true\n", "metrics", ""},
		{"dotted typo", "sse.retri: 1s\n", "sse.retri", "sse.retry"},
		{"deep", "auth:\n  jwt:\n    secrett: x\n", "auth.jwt.secrett", "auth.jwt.secret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := writeFile(t, "b.yaml", tc.yaml)
			_, _, err := Load([]string{"--config", file}, nil)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `config: unknown key "`+tc.key+`" in `+file) {
				t.Errorf("error %q does not name key %q in %s", msg, tc.key, file)
			}
			if tc.hint != "" && !strings.Contains(msg, `did you mean "`+tc.hint+`"`) {
				t.Errorf("error %q does not suggest %q", msg, tc.hint)
			}
		})
	}
}

func TestUnknownEnvIsWarning(t *testing.T) {
	t.Parallel()
	c, warnings, err := Load(nil, []string{
		"HOME=/root", "BROKERX=1", "BROKER_LISTN=:1", "BROKER_LISTEN=:2", "BROKER_LISTN=:3", "BROKER_NOPE=",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":2" {
		t.Errorf("listen = %q", c.Listen)
	}
	want := []string{
		`config: unknown environment variable BROKER_LISTN ignored (did you mean "BROKER_LISTEN"?)`,
		`config: unknown environment variable BROKER_NOPE ignored`,
	}
	if !slices.Equal(warnings, want) {
		t.Errorf("warnings = %q, want %q", warnings, want)
	}
}

func TestEmptyEnvIsUnset(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "b.yaml", "auth:\n  jwt:\n    secret: 0123456789abcdef0123456789abcdef\n")
	c := mustLoad(t, []string{"--config", file}, []string{"BROKER_AUTH_JWT_SECRET=", "BROKER_HISTORY_MAX_EVENTS="})
	if !c.AuthEnabled() || c.History.MaxEvents != DefaultHistoryMaxEvents {
		t.Errorf("empty variables changed the config: %+v", c)
	}
}

func TestWeakSecretWarning(t *testing.T) {
	t.Parallel()
	_, warnings, err := Load(nil, []string{"BROKER_AUTH_JWT_SECRET=short"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "auth.jwt.secret") || strings.Contains(warnings[0], "short") {
		t.Errorf("warnings = %q", warnings)
	}
}

// badCase is a bad value for key; extra are other settings it needs.
type badCase struct {
	key, text string
	yaml      string // "" means text quoted
	extra     []string
	inMsg     string // expected in the message; "" means the text itself
}

func TestBadValues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pem := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(pem, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	cases := []badCase{
		{key: "listen", text: "8080"},
		{key: "listen", text: "localhost:http"},
		{key: "listen", text: ":70000"},
		{key: "store", text: "mysql://db"},
		{key: "store", text: "bolt:"},
		{key: "store", text: "redis://cache:6379/x"},
		{key: "store", text: "redis://cache:0/1"},
		{key: "store", text: "redis:///1"},
		{key: "store", text: "redis://:hunter2@cache/zz", inMsg: "redis://xxxxx@cache/zz"},
		{key: "history.max_events", text: "abc", inMsg: `"abc" is not an integer`},
		{key: "history.max_events", text: "0", yaml: "0", inMsg: "0 must be greater than 0"},
		{key: "history.max_age", text: "60", yaml: "60", inMsg: `"60" is not a duration`},
		{key: "history.max_age", text: "0s", inMsg: "must be greater than 0"},
		{key: "streams.idle_ttl", text: "-1h", inMsg: "-1h must be greater than 0"},
		{key: "streams.max", text: "-5", yaml: "-5", inMsg: "-5 must be greater than 0"},
		{key: "streams.max", text: "99999999999999999999", inMsg: "too large"},
		{key: "subscribers.max", text: "1.5", yaml: "1.5"},
		{key: "subscribers.queue", text: "0", yaml: "0", inMsg: "0 must be greater than 0"},
		{key: "sse.retry", text: "500us", inMsg: "at least 1ms"},
		{key: "sse.heartbeat", text: "soon"},
		{key: "publish.max_body", text: "1.5MiB"},
		{key: "publish.max_body", text: "0", yaml: "0", inMsg: "must be greater than 0"},
		{key: "publish.max_body", text: "10XB"},
		{key: "publish.max_body", text: "99999999999TiB", inMsg: "too large"},
		{key: "auth.jwt.secret", text: "0123456789abcdef0123456789abcdef",
			extra: []string{"BROKER_AUTH_JWT_PUBLIC_KEY_FILE=" + pem}, inMsg: "set together with auth.jwt.secret"},
		{key: "auth.jwt.public_key_file", text: missing, extra: []string{"BROKER_AUTH_JWT_ALGORITHM=RS256"}},
		{key: "auth.jwt.public_key_file", text: pem, inMsg: "HS256 needs auth.jwt.secret"},
		{key: "auth.jwt.public_key_file", text: dir, extra: []string{"BROKER_AUTH_JWT_ALGORITHM=RS256"}, inMsg: "is a directory"},
		{key: "auth.jwt.algorithm", text: "none"},
		{key: "auth.jwt.algorithm", text: "hs256"},
		{key: "auth.jwt.algorithm", text: "RS256", extra: []string{"BROKER_AUTH_JWT_SECRET=0123456789abcdef0123456789abcdef"},
			inMsg: "RS256 needs auth.jwt.public_key_file"},
		{key: "tls.cert_file", text: missing, extra: []string{"BROKER_TLS_KEY_FILE=" + pem}},
		{key: "tls.cert_file", text: pem, inMsg: "tls.key_file: empty while tls.cert_file is set"},
		{key: "tls.key_file", text: dir, extra: []string{"BROKER_TLS_CERT_FILE=" + pem}, inMsg: "is a directory"},
		{key: "http.h2c", text: "h2"},
		{key: "cors.allowed_origins", text: "https://a.example/", inMsg: "not an origin"},
		{key: "cors.allowed_origins", text: "https://*.example", inMsg: "wildcards"},
		{key: "cors.allowed_origins", text: "*,https://a.example", yaml: `["*", "https://a.example"]`, inMsg: "use it alone"},
		{key: "demo.enabled", text: "maybe"},
		{key: "demo.enabled", text: "1", yaml: "1"},
		{key: "demo.enabled", text: "T", yaml: "T"},
		{key: "demo.enabled", text: "yes", yaml: "yes"},
		{key: "demo.enabled", text: "True", yaml: "True"},
		{key: "admin.enabled", text: "maybe"},
		{key: "redis.allow_eviction", text: "perhaps"},
		{key: "debug.pprof", text: "on-call"},
		{key: "limits.publish_rate", text: "-1", yaml: "-1", inMsg: "-1 must be 0 (no limit) or from 0.001 to 1e+09 per second"},
		// Outside the limiter's range a rate would flip it: below, the
		// window overflowed and every request passed; above, it rounded to
		// 0 and every request was refused.
		{key: "limits.publish_rate", text: "1e-10", inMsg: "1e-10 must be 0 (no limit) or from"},
		{key: "limits.subscribe_rate", text: "1e19", inMsg: "1e+19 must be 0 (no limit) or from"},
		{key: "limits.subscribe_rate", text: "+Inf", inMsg: "+Inf must be"},
		{key: "limits.subscribe_rate", text: "fast"},
		{key: "limits.subscribe_rate", text: "NaN", inMsg: "NaN must be"},
		{key: "log.level", text: "verbose"},
		{key: "log.format", text: "xml"},
	}
	byKey := map[string]FieldInfo{}
	for _, f := range Fields() {
		byKey[f.Key] = f
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		f := byKey[tc.key]
		covered[tc.key] = true
		inMsg := tc.inMsg
		if inMsg == "" {
			inMsg = `"` + tc.text + `"`
		}
		y := tc.yaml
		if y == "" {
			y = `"` + tc.text + `"`
		}
		file := writeFile(t, "bad.yaml", "# a comment line\n"+nestedYAML(tc.key, y))
		line := strings.Count(nestedYAML(tc.key, y), "\n") + 1
		type source struct {
			args       []string
			env        []string
			sourceName string
		}
		sources := map[string]source{
			"yaml": {[]string{"--config", file}, tc.extra, file + ":" + strconv.Itoa(line)},
			"env":  {nil, append([]string{f.Env + "=" + tc.text}, tc.extra...), f.Env},
		}
		if f.Flag != "" {
			sources["flag"] = source{[]string{"--" + f.Flag + "=" + tc.text}, tc.extra, "--" + f.Flag}
		}
		for name, src := range sources {
			t.Run(tc.key+"="+tc.text+"/"+name, func(t *testing.T) {
				t.Parallel()
				c, _, err := Load(src.args, src.env)
				if err == nil {
					t.Fatalf("no error, config %+v", c)
				}
				msg := err.Error()
				if strings.ContainsAny(msg, "\r\n") {
					t.Errorf("error is not one line: %q", msg)
				}
				if !strings.HasPrefix(msg, "config: ") || !strings.Contains(msg, tc.key) ||
					!strings.Contains(msg, src.sourceName) || !strings.Contains(msg, inMsg) {
					t.Errorf("error %q should name %s, %s and contain %s", msg, tc.key, src.sourceName, inMsg)
				}
				if strings.Contains(msg, "hunter2") || strings.Contains(msg, "0123456789abcdef") {
					t.Errorf("error leaks a secret: %q", msg)
				}
				if !reflect.DeepEqual(c, Config{}) {
					t.Errorf("config returned with an error: %+v", c)
				}
			})
		}
	}
	for _, f := range Fields() {
		if !covered[f.Key] {
			t.Errorf("key %s has no bad-value case", f.Key)
		}
	}
}

func TestYAMLShapes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml string
		wantErr    string // "" means it loads
		check      func(c Config) bool
	}{
		{"scalar for section", "history: 5\n", `config: history: expected a mapping with history.max_events, history.max_age, got the value "5"`, nil},
		{"list for section", "auth:\n  - a\n", "config: auth: expected a mapping", nil},
		{"mapping for scalar", "listen:\n  host: x\n", "config: listen: expected a single value, got a mapping", nil},
		{"list for scalar", "listen: [\":1\"]\n", "config: listen: expected a single value, got a list", nil},
		{"mapping for list", "cors:\n  allowed_origins:\n    a: b\n", "config: cors.allowed_origins: expected a list, got a mapping", nil},
		{"mapping in list", "cors:\n  allowed_origins:\n    - a: b\n", "config: cors.allowed_origins: list item 1: expected a string, got a mapping", nil},
		{"null in list", "cors:\n  allowed_origins: [~]\n", "list item 1: expected a string, got nothing", nil},
		{"top-level list", "- a\n", "the top level must be a mapping", nil},
		{"top-level scalar", "hello\n", "the top level must be a mapping", nil},
		{"duplicate via dotted key", "history:\n  max_events: 5\nhistory.max_events: 6\n", `key "history.max_events" set twice`, nil},
		{"two documents", "listen: \":1\"\n---\nlisten: \":2\"\n", "more than one YAML document", nil},
		{"syntax error", "listen: \":1\n  bad: [\n", "config: ", nil},
		// yaml.v3 names no line for an error on the first one.
		{"syntax error on the first line", "store: memory:\n", "s.yaml: line 1: mapping values are not allowed", nil},
		{"syntax error on the second line", "listen: \":1\"\nstore: memory:\n", "s.yaml: line 2: mapping values are not allowed", nil},
		{"not UTF-8", "listen: \":1\"\n# caf\xe9\n", "s.yaml:2: the file is not UTF-8 text", nil},
		// yaml.v3 names no line for a control character either: not line 1.
		{"control character", "listen: \":1\"\n# a\x01b\n", "s.yaml: control characters are not allowed", nil},
		{"null scalar is empty", "history:\n  max_events:\n", `history.max_events: "" is not an integer`, nil},
		{"complex key", "? [a]\n: b\n", "a key must be a plain name", nil},
		{"empty file", "", "", func(c Config) bool { return reflect.DeepEqual(c.Listen, DefaultListen) }},
		{"comments only", "# nothing\n", "", func(c Config) bool { return c.Listen == DefaultListen }},
		{"null document", "~\n", "", func(c Config) bool { return c.Listen == DefaultListen }},
		{"null section", "auth:\nhistory:\n  max_events: 3\n", "", func(c Config) bool { return c.History.MaxEvents == 3 }},
		{"dotted key", "history.max_events: 4\n", "", func(c Config) bool { return c.History.MaxEvents == 4 }},
		{"alias", "x: &n 9\n", "unknown key \"x\"", nil},
		{"alias value", "streams:\n  max: &n 9\nsubscribers:\n  max: *n\n", "", func(c Config) bool { return c.Subscribers.Max == 9 }},
		{"scalar list", "cors:\n  allowed_origins: https://a.example, https://b.example\n", "",
			func(c Config) bool {
				return slices.Equal(c.CORS.AllowedOrigins, []string{"https://a.example", "https://b.example"})
			}},
		{"null list", "cors:\n  allowed_origins:\n", "", func(c Config) bool { return c.CORS.AllowedOrigins == nil }},
		{"quoted number", "history:\n  max_events: \"12\"\n", "", func(c Config) bool { return c.History.MaxEvents == 12 }},
		{"auto log format", "log:\n  format: auto\n", "", func(c Config) bool { return c.Log.Format == "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := writeFile(t, "s.yaml", tc.yaml)
			c, _, err := Load([]string{"--config", file}, nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !tc.check(c) {
					t.Errorf("unexpected config %+v", c)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) || strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error %q, want one line containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		args    []string
		wantErr string
		help    bool
	}{
		{"-h", []string{"-h"}, "", true},
		{"--help", []string{"--help"}, "", true},
		{"help after flags", []string{"--listen=:1", "-help"}, "", true},
		{"unknown flag", []string{"--nope"}, "config: flag provided but not defined: -nope", false},
		{"missing value", []string{"--listen"}, "config: flag needs an argument: -listen", false},
		{"positional", []string{"serve"}, `config: unexpected argument "serve"`, false},
		{"bool with space", []string{"--demo", "false"}, `config: unexpected argument "false"`, false},
		{"missing config", []string{"--config", "/nonexistent/b.yaml"}, `config: --config: "/nonexistent/b.yaml" does not exist`, false},
		{"empty config", []string{"--config="}, "config: --config: empty path", false},
		{"config is a directory", []string{"--config", os.TempDir()}, "config: ", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := Load(tc.args, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.help != errors.Is(err, flag.ErrHelp) {
				t.Errorf("errors.Is(%v, flag.ErrHelp) = %v", err, !tc.help)
			}
			if !strings.HasPrefix(err.Error(), tc.wantErr) || strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error %q, want one line starting %q", err, tc.wantErr)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	Usage(&b, "broker")
	out := b.String()
	for _, want := range []string{"Usage: broker", "--config PATH", "--listen LISTEN", "--store STORE",
		"--demo, --demo=false", "--log-level LEVEL", "-h, --help", "BROKER_HISTORY_MAX_EVENTS", "BROKER_LOG_FORMAT"} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
}

// TestDefaultConfigFile changes the working directory, so it cannot run in
// parallel with the tests that rely on there being no configs/broker.yaml.
func TestDefaultConfigFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if c := mustLoad(t, nil, nil); c.File != "" || c.Listen != DefaultListen {
		t.Errorf("without configs/broker.yaml: %+v", c)
	}
	if err := os.Mkdir("configs", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(DefaultConfigFile, []byte("listen: \":7000\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c := mustLoad(t, nil, nil); c.File != DefaultConfigFile || c.Listen != ":7000" {
		t.Errorf("with configs/broker.yaml: %+v", c)
	}
	other := writeFile(t, "other.yaml", "listen: \":7001\"\n")
	if c := mustLoad(t, []string{"--config", other}, nil); c.File != other || c.Listen != ":7001" {
		t.Errorf("--config ignored: %+v", c)
	}
	// BROKER_CONFIG names the file when --config does not (a container
	// image sets it for the broker and its health check alike), and is
	// no unknown variable.
	third := writeFile(t, "third.yaml", "listen: \":7002\"\n")
	c, warnings, err := Load(nil, []string{"BROKER_CONFIG=" + other})
	if err != nil || c.File != other || c.Listen != ":7001" || len(warnings) != 0 {
		t.Errorf("BROKER_CONFIG: %+v, %q, %v", c, warnings, err)
	}
	if c := mustLoad(t, []string{"--config", third}, []string{"BROKER_CONFIG=" + other}); c.File != third || c.Listen != ":7002" {
		t.Errorf("--config does not win over BROKER_CONFIG: %+v", c)
	}
	if _, _, err := Load(nil, []string{"BROKER_CONFIG=missing.yaml"}); err == nil || !strings.Contains(err.Error(), `BROKER_CONFIG: "missing.yaml" does not exist`) {
		t.Errorf("a BROKER_CONFIG that does not exist: %v", err)
	}
	if err := os.WriteFile(DefaultConfigFile, []byte("listn: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(nil, nil); err == nil || !strings.Contains(err.Error(), `unknown key "listn" in configs/broker.yaml:1`) {
		t.Errorf("error = %v", err)
	}
}

// TestShippedConfigs loads the files in configs/ and checks that the
// development file lists every key with its default.
func TestShippedConfigs(t *testing.T) {
	t.Parallel()
	dev := filepath.Join("..", "..", "configs", "broker.yaml")
	c := mustLoad(t, []string{"--config", dev}, nil)
	want := Default()
	want.File = dev
	if !reflect.DeepEqual(c, want) {
		t.Errorf("broker.yaml differs from the defaults:\n got %+v\nwant %+v", c, want)
	}
	data, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := prefix+n.Content[i].Value, n.Content[i+1]
			if v.Kind == yaml.MappingNode {
				walk(k+".", v)
				continue
			}
			keys[k] = true
			if n.Content[i].HeadComment == "" && v.LineComment == "" {
				t.Errorf("broker.yaml: %s has no comment", k)
			}
		}
	}
	walk("", root.Content[0])
	for _, f := range Fields() {
		if !keys[f.Key] {
			t.Errorf("broker.yaml lacks %s", f.Key)
		}
	}

	prod := filepath.Join("..", "..", "configs", "production.yaml")
	p, warnings, err := Load([]string{"--config", prod}, nil)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("production.yaml: %v %q", err, warnings)
	}
	if p.Demo.Enabled || p.Log.Format != "json" {
		t.Errorf("production.yaml: demo %v, log format %q", p.Demo.Enabled, p.Log.Format)
	}
}

// The README and docs/security.md tell operators to serve other hosts by
// pointing a compose file's BROKER_CONFIG at production.yaml. The rest of
// that environment must not undo it: variables win over the file, and a
// BROKER_DEMO_ENABLED: "true" there had kept the demo on.
func TestComposeEnvironmentKeepsProductionSettings(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"docker-compose.yml", "docker-compose.single.yml"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", file))
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		envs := brokerEnvironments(doc)
		if len(envs) == 0 {
			t.Fatalf("%s: no environment with BROKER_CONFIG", file)
		}
		for _, env := range envs {
			environ := []string{"BROKER_CONFIG=" + filepath.Join("..", "..", "configs", "production.yaml")}
			for k, v := range env {
				if k != "BROKER_CONFIG" {
					environ = append(environ, fmt.Sprintf("%s=%v", k, v))
				}
			}
			c, _, err := Load(nil, environ)
			if err != nil {
				t.Fatalf("%s with production.yaml: %v", file, err)
			}
			if c.Demo.Enabled || c.Admin.Enabled {
				t.Errorf("%s with production.yaml: demo %v, admin %v; want both off", file, c.Demo.Enabled, c.Admin.Enabled)
			}
		}
	}
}

// brokerEnvironments finds every environment mapping in a decoded compose
// file that names BROKER_CONFIG (aliases are already resolved).
func brokerEnvironments(node any) []map[string]any {
	var found []map[string]any
	switch n := node.(type) {
	case map[string]any:
		if env, ok := n["environment"].(map[string]any); ok {
			if _, ok := env["BROKER_CONFIG"]; ok {
				found = append(found, env)
			}
		}
		for _, v := range n {
			found = append(found, brokerEnvironments(v)...)
		}
	case []any:
		for _, v := range n {
			found = append(found, brokerEnvironments(v)...)
		}
	}
	return found
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Auth.JWT.Secret = "s3cret-s3cret-s3cret-s3cret-s3cret"
	c.Store = "redis://user:hunter2@cache:6379/1"
	c.CORS.AllowedOrigins = []string{"https://a.example"}
	r := c.Redacted()
	if r.Auth.JWT.Secret != "REDACTED" {
		t.Errorf("secret = %q", r.Auth.JWT.Secret)
	}
	if strings.Contains(r.Store, "hunter2") || !strings.Contains(r.Store, "cache:6379/1") {
		t.Errorf("store = %q", r.Store)
	}
	if !strings.HasPrefix(c.Auth.JWT.Secret, "s3cret") || !strings.Contains(c.Store, "hunter2") {
		t.Error("Redacted changed the original")
	}
	r.CORS.AllowedOrigins[0] = "changed"
	if c.CORS.AllowedOrigins[0] != "https://a.example" {
		t.Error("Redacted shares the origins slice")
	}
	if !r.AuthEnabled() {
		t.Error("redacted config lost auth")
	}
	if d := Default().Redacted(); d.Auth.JWT.Secret != "" || d.Store != DefaultStore {
		t.Errorf("redacting defaults changed them: %+v", d)
	}
}

func TestAuthEnabled(t *testing.T) {
	t.Parallel()
	c := Default()
	if c.AuthEnabled() {
		t.Error("default has auth")
	}
	c.Auth.JWT.Secret = "x"
	if !c.AuthEnabled() {
		t.Error("secret does not enable auth")
	}
	c = Default()
	c.Auth.JWT.PublicKeyFile = "k.pem"
	if !c.AuthEnabled() {
		t.Error("key file does not enable auth")
	}
}

func TestEffectiveLogFormat(t *testing.T) {
	t.Parallel()
	cases := []struct {
		format string
		tty    bool
		want   string
	}{
		{"", true, "console"}, {"", false, "json"},
		{"json", true, "json"}, {"console", false, "console"},
	}
	for _, tc := range cases {
		c := Default()
		c.Log.Format = tc.format
		if got := c.EffectiveLogFormat(tc.tty); got != tc.want {
			t.Errorf("format %q tty %v: %q, want %q", tc.format, tc.tty, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		mutate  func(c *Config)
		wantErr string
	}{
		{"default", func(*Config) {}, ""},
		{"zero queue", func(c *Config) { c.Subscribers.Queue = 0 }, "config: subscribers.queue: 0 must be greater than 0"},
		{"zero retry", func(c *Config) { c.SSE.Retry = 0 }, "config: sse.retry: 0s must be greater than 0"},
		{"upper-case level", func(c *Config) { c.Log.Level = "INFO" }, `config: log.level: "INFO" is not one of`},
		{"bad store", func(c *Config) { c.Store = "" }, `config: store: "" is not a store`},
		{"half tls", func(c *Config) { c.TLS.KeyFile = "k" }, "config: tls.cert_file: empty while tls.key_file is set; set both or neither"},
		{"negative rate", func(c *Config) { c.Limits.PublishRate = -1 }, "config: limits.publish_rate: -1 must be"},
		{"bad origin", func(c *Config) { c.CORS.AllowedOrigins = []string{"a.example"} }, "config: cors.allowed_origins:"},
	}
	for _, tc := range cases {
		c := Default()
		tc.mutate(&c)
		err := c.Validate()
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want prefix %q", tc.name, err, tc.wantErr)
		}
	}
	if err := (Config{}).Validate(); err == nil {
		t.Error("zero Config is valid")
	}
}

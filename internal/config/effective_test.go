package config

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// Every key is listed once, in table order, with its value and the level it
// came from; the secret is masked and never appears.
func TestEffectiveSourcesAndMasking(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-s3cret-s3cret-s3cret-s3cret"
	path := writeFile(t, "b.yaml", "listen: 127.0.0.1:9000\nauth:\n  jwt:\n    secret: "+secret+"\ncors:\n  allowed_origins: [https://a.example, https://b.example]\nlog:\n  level: warn\n")
	cfg, settings, _, err := Effective(
		[]string{"--config", path, "--log-level", "debug"},
		[]string{"BROKER_STORE=redis://u:pw@127.0.0.1:6379/0", "BROKER_URL=ignored"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.JWT.Secret != secret || cfg.Log.Level != "debug" {
		t.Fatalf("the returned Config is not the loaded one: %+v", cfg)
	}
	if len(settings) != len(Fields()) {
		t.Fatalf("%d settings for %d keys", len(settings), len(Fields()))
	}
	got := map[string]Setting{}
	for i, s := range settings {
		if s.Key != Fields()[i].Key {
			t.Fatalf("setting %d is %s, want %s (table order)", i, s.Key, Fields()[i].Key)
		}
		got[s.Key] = s
	}
	want := map[string][2]string{ // key -> value, source
		"listen":               {"127.0.0.1:9000", path + ":1"},
		"auth.jwt.secret":      {redactedMark, path + ":4"},
		"cors.allowed_origins": {"https://a.example,https://b.example", path + ":6"},
		"store":                {"redis://u:xxxxx@127.0.0.1:6379/0", "BROKER_STORE"},
		"log.level":            {"debug", "--log-level"},
		"sse.retry":            {"3s", "default"},
		"auth.jwt.algorithm":   {"HS256", "default"},
	}
	for key, w := range want {
		if s := got[key]; s.Value != w[0] || s.Source != w[1] {
			t.Errorf("%s = %q from %q, want %q from %q", key, s.Value, s.Source, w[0], w[1])
		}
	}
	if !got["auth.jwt.secret"].Secret {
		t.Error("auth.jwt.secret is not marked secret")
	}
	var out bytes.Buffer
	if err := WriteSettings(&out, settings); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), secret) || strings.Contains(out.String(), "pw@") {
		t.Fatalf("a secret is printed in clear:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "auth.jwt.secret: "+redactedMark) {
		t.Fatalf("no masked secret line:\n%s", out.String())
	}
}

// An empty secret stays empty, so the output still shows that auth is off.
func TestEffectiveEmptySecretShowsAuthOff(t *testing.T) {
	t.Parallel()
	_, settings, _, err := Effective(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		if s.Key == "auth.jwt.secret" && (s.Value != "" || s.Source != "default") {
			t.Fatalf("%+v", s)
		}
	}
}

// What WriteSettings prints is a configuration file Load reads back to the
// same configuration (apart from the masked secret): the quoting is right
// for every type, including values YAML would otherwise misread.
func TestWriteSettingsRoundTrips(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "b.yaml", strings.Join([]string{
		`listen: ":9001"`,
		`store: "bolt:/tmp/x y.db"`,
		`cors.allowed_origins: ["*"]`,
		`log.format: json`,
		`publish.max_body: 2MiB`,
		`limits.publish_rate: 2.5`,
		`demo.enabled: false`,
		`history.max_age: 90m`,
	}, "\n")+"\n")
	cfg, settings, _, err := Effective([]string{"--config", path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteSettings(&out, settings); err != nil {
		t.Fatal(err)
	}
	again, _, err2 := Load([]string{"--config", writeFile(t, "again.yaml", out.String())}, nil)
	if err2 != nil {
		t.Fatalf("reading the output back: %v\n%s", err2, out.String())
	}
	again.File, cfg.File = "", ""
	if !reflect.DeepEqual(again, cfg) {
		t.Fatalf("round trip changed the configuration:\n%+v\n%+v\n%s", again, cfg, out.String())
	}
}

// A bad configuration gives Load's error, naming the key.
func TestEffectiveBadConfiguration(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "bad.yaml", "sse:\n  retry: soon\n")
	_, _, _, err := Effective([]string{"--config", path}, nil)
	if err == nil || !strings.Contains(err.Error(), "sse.retry") || !strings.Contains(err.Error(), path+":2") {
		t.Fatalf("err %v", err)
	}
}

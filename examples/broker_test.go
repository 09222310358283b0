package examples_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/brokerproc"
	"github.com/sse-broker/broker/pkg/auth"
)

// secret is the HS256 secret of the test brokers.
const secret = "examples-test-secret-0123456789abcdef"

// retry is the brokers' SSE retry: short, so that a reconnect (or its
// absence) shows quickly.
const retry = 300 * time.Millisecond

// brokerConfig is what a test broker differs in.
type brokerConfig struct {
	corsOrigins []string // cors.allowed_origins
	maxEvents   int      // history.max_events; 0: the default
}

// startBroker runs the real broker binary with auth on (HS256 with secret)
// and cfg, through a --config file. A file rather than BROKER_* variables:
// brokerproc passes the test's own environment to the child, and a file
// keeps these settings to this one broker.
func startBroker(t *testing.T, cfg brokerConfig) *brokerproc.Process {
	t.Helper()
	var yaml strings.Builder
	fmt.Fprintf(&yaml, "auth:\n  jwt:\n    secret: %q\n", secret)
	fmt.Fprintf(&yaml, "sse:\n  retry: %s\n", retry)
	yaml.WriteString("demo:\n  enabled: false\n")
	if cfg.maxEvents > 0 {
		fmt.Fprintf(&yaml, "history:\n  max_events: %d\n", cfg.maxEvents)
	}
	if len(cfg.corsOrigins) > 0 {
		origins, err := json.Marshal(cfg.corsOrigins) // a JSON list is a YAML list
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&yaml, "cors:\n  allowed_origins: %s\n", origins)
	}
	file := filepath.Join(t.TempDir(), "broker.yaml")
	if err := os.WriteFile(file, []byte(yaml.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return brokerproc.Start(t, "--config", file)
}

// mintToken signs a token valid for ten minutes with the given stream
// patterns, as a service that grants access would.
func mintToken(t *testing.T, publish, subscribe []string) string {
	t.Helper()
	signer, err := auth.NewSigner(auth.HS256, []byte(secret), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := signer.Mint(auth.Claims{
		Subject:   "examples-test",
		ExpiresAt: now.Add(10 * time.Minute),
		Publish:   publish,
		Subscribe: subscribe,
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// historyEvent is one event of GET /v1/streams/{id}/messages.
type historyEvent struct {
	ID    string `json:"id"`
	Event string `json:"event"`
	Data  string `json:"data"`
}

// history reads every retained event of stream, with token.
func history(t *testing.T, base, token, stream string) (events []historyEvent, gap bool) {
	t.Helper()
	var answer struct {
		Stream string         `json:"stream"`
		Events []historyEvent `json:"events"`
		Gap    bool           `json:"gap"`
	}
	getJSON(t, base, token, "/v1/streams/"+url.PathEscape(stream)+"/messages?after=0&limit=1000", &answer)
	if answer.Stream != stream {
		t.Fatalf("history of %q answered for stream %q", stream, answer.Stream)
	}
	return answer.Events, answer.Gap
}

// streamInfo is GET /v1/streams/{id}.
type streamInfo struct {
	Stream   string  `json:"stream"`
	LastID   *string `json:"last_id"`
	Retained int     `json:"retained"`
	Closed   bool    `json:"closed"`
}

func info(t *testing.T, base, token, stream string) streamInfo {
	t.Helper()
	var answer streamInfo
	getJSON(t, base, token, "/v1/streams/"+url.PathEscape(stream), &answer)
	return answer
}

func getJSON(t *testing.T, base, token, path string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %s", path, res.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: body %s: %v", path, body, err)
	}
}

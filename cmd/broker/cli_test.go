package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/brokerproc"
)

// The CLI tests run the built binary as a user would: separate processes,
// real pipes, a real broker.

// cliTimeout bounds every command a test runs; none should come near it.
const cliTimeout = 30 * time.Second

type cliResult struct {
	stdout, stderr string
	code           int
}

// runBinary runs the broker binary with args, env added to this process's
// environment (BROKER_URL and BROKER_TOKEN removed, so the developer's own
// settings cannot leak in) and stdin, and waits for it to exit.
func runBinary(t *testing.T, env []string, stdin io.Reader, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, brokerproc.Binary(t), args...)
	cmd.Env = append(configEnviron(os.Environ()), env...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		res.code = exit.ExitCode()
	default:
		t.Fatalf("broker %s: %v\nstderr: %s", strings.Join(args, " "), err, res.stderr)
	}
	return res
}

// mustRun is runBinary that wants exit code 0.
func mustRun(t *testing.T, env []string, stdin io.Reader, args ...string) cliResult {
	t.Helper()
	res := runBinary(t, env, stdin, args...)
	if res.code != 0 {
		t.Fatalf("broker %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	}
	return res
}

// startBinary starts a long-running command (tail) with its stdout piped
// to the test, line by line.
func startBinary(t *testing.T, env []string, args ...string) (*exec.Cmd, *bufio.Scanner, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(brokerproc.Binary(t), args...)
	cmd.Env = append(configEnviron(os.Environ()), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, bufio.NewScanner(out), &stderr
}

// waitExit waits for cmd and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(cliTimeout):
		_ = cmd.Process.Kill()
		t.Fatalf("%s did not exit", cmd)
		return -1
	}
}

// nextLine reads one line of a running command's stdout, failing the test
// after a bound.
func nextLine(t *testing.T, sc *bufio.Scanner) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if sc.Scan() {
			got <- sc.Text()
		}
		close(got)
	}()
	select {
	case line, ok := <-got:
		if !ok {
			t.Fatalf("the output ended (%v)", sc.Err())
		}
		return line
	case <-time.After(cliTimeout):
		t.Fatal("no line")
		return ""
	}
}

var idLine = regexp.MustCompile(`^[0-9]{1,20}$`)

// after reports whether id b comes after id a (ids are decimal uint64s).
func after(b, a string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && errB == nil && y > x
}

// ids checks publish's stdout: one id per line, increasing.
func ids(t *testing.T, stdout string, n int) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("publish printed %q, want %d ids", stdout, n)
	}
	for i, l := range lines {
		if !idLine.MatchString(l) || (i > 0 && !after(l, lines[i-1])) {
			t.Fatalf("publish printed %q: not increasing ids", stdout)
		}
	}
	return lines
}

// The example: lines piped into publish in one process arrive in
// order, exactly, in a tail running in another, which exits 0 at the close.
func TestPublishFromPipeIntoTail(t *testing.T) {
	p := brokerproc.Start(t)
	tail, out, tailErr := startBinary(t, nil, "tail", "chat-1", "--url", p.URL)

	sh := exec.Command("sh", "-c", `printf 'a\nb\nc\n' | "$BIN" publish chat-1 --url "$URL" --close`)
	sh.Env = append(os.Environ(), "BIN="+brokerproc.Binary(t), "URL="+p.URL)
	pubOut, err := sh.Output()
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	ids(t, string(pubOut), 3)

	rest, err := io.ReadAll(readerOf(out))
	if err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, tail); code != 0 || string(rest) != "a\nb\nc\n" {
		t.Fatalf("tail printed %q and exited %d; want a, b, c and 0\nstderr: %s", rest, code, tailErr)
	}
}

// readerOf turns the scanner's remaining lines back into a reader.
func readerOf(sc *bufio.Scanner) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for sc.Scan() {
			pw.Write(append(sc.Bytes(), '\n'))
		}
		pw.CloseWithError(sc.Err())
	}()
	return pr
}

// Lines are published as they arrive, not at the end of the input: the
// tail prints each one while publish still waits for the next.
func TestPublishStreamsLinesAsTheyArrive(t *testing.T) {
	p := brokerproc.Start(t)
	tail, out, tailErr := startBinary(t, nil, "tail", "tokens", "--url", p.URL)

	pub := exec.Command(brokerproc.Binary(t), "publish", "tokens", "--url", p.URL, "--close", "--event", "token")
	pub.Env = configEnviron(os.Environ())
	in, err := pub.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var pubOut, pubErr bytes.Buffer
	pub.Stdout, pub.Stderr = &pubOut, &pubErr
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"Hel", "lo, ", "", "world ünïcode"} {
		if _, err := io.WriteString(in, tok+"\n"); err != nil {
			t.Fatal(err)
		}
		if got := nextLine(t, out); got != tok {
			t.Fatalf("tail printed %q, want %q", got, tok)
		}
	}
	// A last line without a newline is an event too.
	io.WriteString(in, "end")
	in.Close()
	if code := waitExit(t, pub); code != 0 {
		t.Fatalf("publish exited %d: %s", code, pubErr.String())
	}
	ids(t, pubOut.String(), 5)
	if got := nextLine(t, out); got != "end" {
		t.Fatalf("tail printed %q, want end", got)
	}
	if code := waitExit(t, tail); code != 0 {
		t.Fatalf("tail exited %d: %s", code, tailErr)
	}
}

// Many lines at once are batched but none is lost, reordered or doubled.
func TestPublishManyLines(t *testing.T) {
	p := brokerproc.Start(t, "--config", writeConfig(t, "history:\n  max_events: 5000\n"))
	var in strings.Builder
	const n = 3000
	for i := range n {
		in.WriteString(strings.Repeat("x", i%50) + "\n")
	}
	res := mustRun(t, nil, strings.NewReader(in.String()), "publish", "many", "--url", p.URL, "--close")
	ids(t, res.stdout, n)
	if res.stderr != "" { // no progress line in a pipe
		t.Fatalf("publish wrote to a non-terminal stderr: %q", res.stderr)
	}
	tail := mustRun(t, nil, nil, "tail", "many", "--url", p.URL)
	if tail.stdout != in.String() {
		t.Fatalf("tail printed %d bytes, want the %d published", len(tail.stdout), in.Len())
	}
}

// Lines that each fit the broker's body limit are never batched past it,
// counting the JSON escapes: '<' is sent as \u003c, six bytes for one.
func TestPublishBatchesFitTheBodyLimit(t *testing.T) {
	p := brokerproc.Start(t)
	line := strings.Repeat("<", 170<<10) // 1,044,480 bytes escaped: fits 1 MiB alone
	in := strings.Repeat(line+"\n", 4)
	res := mustRun(t, nil, strings.NewReader(in), "publish", "big", "--url", p.URL, "--close")
	ids(t, res.stdout, 4)
	if tail := mustRun(t, nil, nil, "tail", "big", "--url", p.URL); tail.stdout != in {
		t.Fatalf("tail printed %d bytes, want the %d published", len(tail.stdout), len(in))
	}
}

// A 429 may answer the retry of an attempt that was stored but whose
// answer was lost (the broker checks the rate before the key): waited
// out, the batch is retried with the same Idempotency-Key, so it is stored
// once. A fake broker: the first attempt is stored and its connection
// cut, the next four are rate limited.
func TestPublishKeepsItsKeyThroughRateLimits(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	stored := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		key := r.Header.Get("Idempotency-Key")
		keys = append(keys, key)
		w.Header().Set("Content-Type", "application/json")
		switch n := len(keys); {
		case n == 1:
			stored[key] = true
			conn, _, _ := w.(http.Hijacker).Hijack()
			_ = conn.Close()
		case n <= 5:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error":"rate_limited","message":"slow down"}`)
		default:
			stored[key] = true
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"stream":"s","ids":["500186631307788288"]}`)
		}
	}))
	defer srv.Close()
	mustRun(t, nil, nil, "publish", "s", "hello", "--url", srv.URL)
	mu.Lock()
	defer mu.Unlock()
	if len(stored) != 1 {
		t.Fatalf("stored under %d keys (attempts' keys %q): published %d times", len(stored), keys, len(stored))
	}
}

// A 429's Retry-After is waited out up to a cap, as pkg/client caps its
// own waits: a huge one must not park a pipe for centuries.
func TestRateLimitPause(t *testing.T) {
	for _, tc := range []struct{ retryAfter, want time.Duration }{
		{0, rateLimitWait},
		{2 * time.Second, 2 * time.Second},
		{time.Hour, maxRateLimitWait},
		{math.MaxInt64, maxRateLimitWait},
	} {
		if got := rateLimitPause(tc.retryAfter); got != tc.want {
			t.Errorf("Retry-After %v: pause %v, want %v", tc.retryAfter, got, tc.want)
		}
	}
}

// --from prints only later events; json and sse formats carry ids and
// names; a tail at or after stop (204) exits 0 at once.
func TestTailFromAndFormats(t *testing.T) {
	p := brokerproc.Start(t)
	env := []string{"BROKER_URL=" + p.URL} // the environment instead of --url
	var got []string
	for _, words := range [][]string{{"one"}, {"two", "words"}, {"three"}} {
		res := mustRun(t, env, nil, append([]string{"publish", "s"}, words...)...)
		got = append(got, ids(t, res.stdout, 1)...)
	}
	mustRun(t, env, nil, "publish", "s", "--event", "greet", "--close", "hi")

	if res := mustRun(t, env, nil, "tail", "s", "--from", got[0]); res.stdout != "two words\nthree\nhi\n" {
		t.Fatalf("tail --from %s printed %q", got[0], res.stdout)
	}
	res := mustRun(t, env, nil, "tail", "s", "--from", got[2], "--format", "json")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("json: %q", res.stdout)
	}
	var greet, stop struct{ ID, Event, Data string }
	if err := json.Unmarshal([]byte(lines[0]), &greet); err != nil || greet.Event != "greet" || greet.Data != "hi" || !after(greet.ID, got[2]) {
		t.Fatalf("json line %q: %v", lines[0], err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &stop); err != nil || stop.Event != "stop" || stop.Data != "" || !after(stop.ID, greet.ID) {
		t.Fatalf("json line %q: %v", lines[1], err)
	}
	res = mustRun(t, env, nil, "tail", "s", "--from", got[2], "--format", "sse")
	if want := "id: " + greet.ID + "\nevent: greet\ndata: hi\n\nid: " + stop.ID + "\nevent: stop\ndata: \n\n"; res.stdout != want {
		t.Fatalf("sse: %q, want %q", res.stdout, want)
	}
	stopID := stop.ID
	if res := mustRun(t, env, nil, "tail", "s", "--from", stopID); res.stdout != "" {
		t.Fatalf("tail after stop printed %q", res.stdout)
	}
	if res := runBinary(t, env, nil, "tail", "s", "--from", "x1"); res.code != 1 || !strings.Contains(res.stderr, "invalid_last_event_id") {
		t.Fatalf("bad --from: exit %d, %q", res.code, res.stderr)
	}
}

// A gap is reported on stderr and, in json, as an object.
func TestTailReportsGap(t *testing.T) {
	p := brokerproc.Start(t, "--config", writeConfig(t, "history:\n  max_events: 2\n"))
	env := []string{"BROKER_URL=" + p.URL}
	first := ids(t, mustRun(t, env, nil, "publish", "g", "1").stdout, 1)[0]
	mustRun(t, env, strings.NewReader("2\n3\n4\n"), "publish", "g", "--close") // stop is retained too
	res := mustRun(t, env, nil, "tail", "g", "--from", first, "--format", "json")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	var gap struct {
		Event, After string
		First        *string
	}
	if err := json.Unmarshal([]byte(lines[0]), &gap); err != nil || gap.Event != "gap" || gap.After != first || gap.First == nil {
		t.Fatalf("first json line %q: %v", lines[0], err)
	}
	if !strings.Contains(res.stderr, "events after "+first+" were lost") {
		t.Fatalf("no warning on stderr: %q", res.stderr)
	}
	if data := mustRun(t, env, nil, "tail", "g", "--from", first); data.stdout != "4\n" {
		t.Fatalf("data format after a gap printed %q", data.stdout)
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "broker.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// publishWith posts one event with token and returns the status.
func publishWith(t *testing.T, base, stream, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/streams/"+stream+"/messages", strings.NewReader("hi"))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// A token from `broker token` is accepted by a broker started with the same
// BROKER_AUTH_JWT_SECRET, for its patterns only; publish and tail use it.
func TestTokenAcceptedByBrokerWithAuth(t *testing.T) {
	secret := "cli-test-secret-cli-test-secret-0123456789"
	t.Setenv("BROKER_AUTH_JWT_SECRET", secret) // the broker and every command inherit it
	p := brokerproc.Start(t)

	tok := strings.TrimSpace(mustRun(t, nil, nil, "token", "--publish", "chat-*", "--subscribe", "chat-*", "--ttl", "10m", "--sub", "ops").stdout)
	if strings.Count(tok, ".") != 2 || strings.Contains(tok, "\n") {
		t.Fatalf("token output %q", tok)
	}
	// --ttl and --sub are what the token says.
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Sub      string
		Iat, Exp int64
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Sub != "ops" || claims.Exp-claims.Iat != 600 {
		t.Fatalf("claims %s (%v): want sub ops and exp 10m after iat", payload, err)
	}
	other := strings.TrimSpace(mustRun(t, nil, nil, "token", "--publish", "news-*").stdout)

	if code := publishWith(t, p.URL, "chat-1", tok); code != http.StatusCreated {
		t.Fatalf("publish with the minted token: %d", code)
	}
	if code := publishWith(t, p.URL, "chat-1", other); code != http.StatusForbidden {
		t.Fatalf("publish with a token for news-*: %d, want 403", code)
	}
	if code := publishWith(t, p.URL, "chat-1", ""); code != http.StatusUnauthorized {
		t.Fatalf("publish without a token: %d, want 401", code)
	}

	env := []string{"BROKER_URL=" + p.URL, "BROKER_TOKEN=" + tok}
	mustRun(t, env, nil, "publish", "chat-2", "--close", "with", "token")
	if res := mustRun(t, env, nil, "tail", "chat-2"); res.stdout != "with token\n" {
		t.Fatalf("tail with the token printed %q", res.stdout)
	}
	if res := runBinary(t, nil, nil, "publish", "chat-2", "x", "--url", p.URL, "--token", other); res.code != 1 || !strings.Contains(res.stderr, "403") {
		t.Fatalf("publish without the right: exit %d, %q", res.code, res.stderr)
	}
	if res := runBinary(t, nil, nil, "tail", "chat-2", "--url", p.URL, "--token", other); res.code != 1 || !strings.Contains(res.stderr, "403") {
		t.Fatalf("tail without the right: exit %d, %q", res.code, res.stderr)
	}
	// An expired token (the shortest ttl is 1s) is not tested here:
	// pkg/auth tests expiry.
}

// With an asymmetric algorithm the configuration holds only the public
// key: token needs --private-key, and refuses a key that is not the pair.
func TestTokenWithPrivateKey(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	otherDER, _ := x509.MarshalPKCS8PrivateKey(otherPriv)
	writePEM(t, filepath.Join(dir, "pub.pem"), "PUBLIC KEY", pubDER)
	writePEM(t, filepath.Join(dir, "priv.pem"), "PRIVATE KEY", privDER)
	writePEM(t, filepath.Join(dir, "other.pem"), "PRIVATE KEY", otherDER)
	cfg := writeConfig(t, "auth:\n  jwt:\n    algorithm: EdDSA\n    public_key_file: "+filepath.Join(dir, "pub.pem")+"\n")
	p := brokerproc.Start(t, "--config", cfg)

	if res := runBinary(t, nil, nil, "token", "--config", cfg, "--publish", "*"); res.code != 2 || !strings.Contains(res.stderr, "--private-key") {
		t.Fatalf("without --private-key: exit %d, %q", res.code, res.stderr)
	}
	if res := runBinary(t, nil, nil, "token", "--config", cfg, "--publish", "*", "--private-key", filepath.Join(dir, "other.pem")); res.code != 1 || res.stdout != "" {
		t.Fatalf("with a key that is not the pair: exit %d, stdout %q", res.code, res.stdout)
	}
	tok := strings.TrimSpace(mustRun(t, nil, nil, "token", "--config", cfg, "--publish", "*", "--private-key", filepath.Join(dir, "priv.pem")).stdout)
	if code := publishWith(t, p.URL, "any", tok); code != http.StatusCreated {
		t.Fatalf("publish with the EdDSA token: %d", code)
	}
}

// token refuses what would mint a useless token.
func TestTokenRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"auth off", nil, []string{"--publish", "x"}, "auth is off"},
		{"no patterns", []string{"BROKER_AUTH_JWT_SECRET=s"}, nil, "--publish and/or --subscribe"},
		{"zero ttl", []string{"BROKER_AUTH_JWT_SECRET=s"}, []string{"--publish", "x", "--ttl", "0s"}, "--ttl"},
		{"ttl under a second", []string{"BROKER_AUTH_JWT_SECRET=s"}, []string{"--publish", "x", "--ttl", "500ms"}, "at least 1s"},
		{"bad config", []string{"BROKER_SSE_RETRY=soon"}, []string{"--publish", "x"}, "sse.retry"},
		{"an argument", []string{"BROKER_AUTH_JWT_SECRET=s"}, []string{"--publish", "x", "chat-*"}, "unexpected argument"},
		{"empty pattern", []string{"BROKER_AUTH_JWT_SECRET=s"}, []string{"--publish", "a,,b"}, "empty pattern"},
		{"private key with HS256", []string{"BROKER_AUTH_JWT_SECRET=s"}, []string{"--publish", "x", "--private-key", "key.pem"}, "--private-key is for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := dispatch(append([]string{"token"}, tc.args...), cli{environ: tc.env, stdout: &stdout, stderr: &stderr})
			if code != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and %q", code, stdout.String(), stderr.String(), tc.want)
			}
		})
	}
}

// config check: a good file prints every key with its source and the
// secret masked; a bad one exits 2 naming the key.
func TestConfigCheck(t *testing.T) {
	const secret = "do-not-print-me-do-not-print-me-0123"
	good := writeConfig(t, "listen: 127.0.0.1:9999\nauth:\n  jwt:\n    secret: "+secret+"\n")
	res := mustRun(t, []string{"BROKER_SSE_HEARTBEAT=5s"}, nil, "config", "check", "--config", good)
	for _, want := range []string{
		"# configuration OK; file: " + good + "; auth: on, HS256",
		"auth.jwt.secret: REDACTED",
		"# " + good + ":4",
		"listen: 127.0.0.1:9999",
		"sse.heartbeat: 5s",
		"# BROKER_SSE_HEARTBEAT",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("config check output lacks %q:\n%s", want, res.stdout)
		}
	}
	if strings.Contains(res.stdout+res.stderr, secret) {
		t.Fatalf("the secret is printed in clear:\n%s%s", res.stdout, res.stderr)
	}
	// The configuration's warnings go to stderr; the check still passes.
	res = mustRun(t, []string{"BROKER_HISTORY_MAX_EVENT=5"}, nil, "config", "check")
	if !strings.Contains(res.stderr, "warning: ") || !strings.Contains(res.stderr, "BROKER_HISTORY_MAX_EVENT") {
		t.Fatalf("no warning about an unknown variable: %q", res.stderr)
	}

	bad := writeConfig(t, "history:\n  max_events: -3\n")
	res = runBinary(t, nil, nil, "config", "check", "--config", bad)
	if res.code != 2 || res.stdout != "" || !strings.Contains(res.stderr, "history.max_events") || !strings.Contains(res.stderr, bad+":2") {
		t.Fatalf("bad file: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	// A key file that exists but is not a key: config.Load only checks it
	// can be read, config check parses it as serve would.
	notKey := writeConfig(t, "not a key")
	res = runBinary(t, []string{"BROKER_AUTH_JWT_ALGORITHM=ES256", "BROKER_AUTH_JWT_PUBLIC_KEY_FILE=" + notKey}, nil, "config", "check")
	if res.code != 2 || !strings.Contains(res.stderr, "auth.jwt.public_key_file") {
		t.Fatalf("bad key file: exit %d, %q", res.code, res.stderr)
	}
}

// bench is the load tool; a tiny run against a real broker loses nothing.
func TestBench(t *testing.T) {
	p := brokerproc.Start(t)
	res := mustRun(t, nil, nil, "bench", "-url", p.URL, "-scenario", "tokens", "-streams", "2", "-subscribers", "2", "-count", "20")
	for _, want := range []string{"broker/tokens: 2 subscribers (0 connect errors)", "delivered 20", "lost 0"} {
		if !strings.Contains(res.stdout, want) {
			t.Fatalf("bench output lacks %q:\n%s", want, res.stdout)
		}
	}
}

// Dispatch: the default command is serve with today's flags, `serve`
// names it, help lists every command, and an unknown one is an error.
func TestDispatch(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"help"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, cmd := range commands() {
		if !strings.Contains(stdout.String(), "\n  "+cmd.name+" ") {
			t.Errorf("help does not list %s:\n%s", cmd.name, stdout.String())
		}
	}
	if !strings.Contains(stdout.String(), "--listen") {
		t.Errorf("help does not show serve's flags")
	}
	// Every spelling of help lists the commands, not only serve's flags.
	for _, help := range []string{"-h", "-help", "--help"} {
		stdout.Reset()
		if code := run([]string{help}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "\n  tail ") {
			t.Fatalf("%s: exit %d, %q", help, code, stdout.String())
		}
	}
	stdout.Reset()
	if code := run([]string{"help", "publish"}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "--close") {
		t.Fatalf("help publish: exit %d, %q", code, stdout.String())
	}
	stderr.Reset()
	if code := run([]string{"frobnicate"}, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "frobnicate") {
		t.Fatalf("unknown command: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"publish"}, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "name the stream") {
		t.Fatalf("publish without a stream: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"tail", "s", "--format", "xml"}, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "xml") {
		t.Fatalf("tail --format xml: exit %d, %q", code, stderr.String())
	}
	// A wrong command line is exit code 2 and a line naming the mistake,
	// whichever check finds it. (A broker that refuses everything: a
	// command line taken as good fails fast with 1, not by following.)
	refuser := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"forbidden","message":"no"}`, http.StatusForbidden)
	}))
	defer refuser.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"publish", "s", "x", "--nope", "--url", refuser.URL}, "-nope"},
		{[]string{"tail", "s", "t", "--url", refuser.URL}, "name one stream"},
		{[]string{"config"}, "the only subcommand is check"},
		{[]string{"config", "show"}, "the only subcommand is check"},
	} {
		stderr.Reset()
		if code := run(tc.args, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Fatalf("%q: exit %d, %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}

	// `broker serve --listen ...` serves like `broker --listen ...`
	// (which brokerproc.Start and every other test use).
	cmd := exec.Command(brokerproc.Binary(t), "serve", "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "BROKER_LOG_FORMAT=json")
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(logs)
	for {
		line := nextLine(t, sc)
		var entry struct{ Message, Addr string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Message == "broker listening" {
			if code := run([]string{"healthcheck", "http://" + entry.Addr + "/readyz"}, nil, io.Discard, io.Discard); code != 0 {
				t.Fatalf("broker serve is not ready: %d", code)
			}
			break
		}
	}
}

// The client variables are not configuration keys: serve does not warn
// about them, so one shell can run both the broker and the CLI.
func TestClientVariablesAreNotConfiguration(t *testing.T) {
	env := configEnviron([]string{"BROKER_URL=http://x", "BROKER_TOKEN=t", "BROKER_LISTEN=:1", "PATH=/bin"})
	if strings.Join(env, " ") != "BROKER_LISTEN=:1 PATH=/bin" {
		t.Fatalf("%q", env)
	}
	res := mustRun(t, []string{"BROKER_URL=http://x", "BROKER_TOKEN=t"}, nil, "config", "check")
	if strings.Contains(res.stderr, "BROKER_URL") || strings.Contains(res.stderr, "BROKER_TOKEN") {
		t.Fatalf("warned about the client's variables: %q", res.stderr)
	}
}

// Flags may come before, between or after the positional arguments, and
// "--" ends them.
func TestInterspersedFlags(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		pos   string
		event string
		close bool
	}{
		{[]string{"s", "a", "b"}, "s a b", "", false},
		{[]string{"--event", "e", "s", "a"}, "s a", "e", false},
		{[]string{"s", "a", "--close", "b", "--event=e"}, "s a b", "e", true},
		{[]string{"s", "--", "--close", "-x"}, "s --close -x", "", false},
	} {
		fs := newFlagSet("publish", "", "")
		event := fs.String("event", "", "")
		closeAtEnd := fs.Bool("close", false, "")
		pos, _, ok := fs.parse(cli{stdout: io.Discard, stderr: io.Discard}, tc.args)
		if !ok || strings.Join(pos, " ") != tc.pos || *event != tc.event || *closeAtEnd != tc.close {
			t.Errorf("%q: %q event %q close %v", tc.args, pos, *event, *closeAtEnd)
		}
	}
}

// tail resumes after the broker goes away: the broker is killed with -9
// and started again on the same address and file while the tail runs; the
// tail prints every event once and ends at the close.
func TestTailResumesAfterDrop(t *testing.T) {
	cfg := writeConfig(t, "store: bolt:"+filepath.Join(t.TempDir(), "b.db")+"\nsse:\n  retry: 100ms\n")
	p := brokerproc.Start(t, "--config", cfg)
	env := []string{"BROKER_URL=" + p.URL}
	tail, out, tailErr := startBinary(t, env, "tail", "r")
	mustRun(t, env, nil, "publish", "r", "before")
	if got := nextLine(t, out); got != "before" {
		t.Fatalf("tail printed %q", got)
	}
	p.Kill()
	brokerproc.Start(t, "--config", cfg, "--listen", p.Addr) // the same address: tail resumes there
	mustRun(t, env, strings.NewReader("after 1\nafter 2\n"), "publish", "r", "--close")
	for _, want := range []string{"after 1", "after 2"} {
		if got := nextLine(t, out); got != want {
			t.Fatalf("tail printed %q, want %q\nstderr: %s", got, want, tailErr)
		}
	}
	if code := waitExit(t, tail); code != 0 {
		t.Fatalf("tail exited %d: %s", code, tailErr)
	}
	// stderr is not a terminal: no reconnect notices in a pipe.
	if tailErr.Len() != 0 {
		t.Fatalf("tail wrote to a non-terminal stderr: %q", tailErr)
	}
}

// Ctrl-C ends a tail with exit code 0: it is the usual way to stop
// following a stream.
func TestTailInterrupt(t *testing.T) {
	p := brokerproc.Start(t)
	tail, out, tailErr := startBinary(t, []string{"BROKER_URL=" + p.URL}, "tail", "i")
	mustRun(t, []string{"BROKER_URL=" + p.URL}, nil, "publish", "i", "x")
	if got := nextLine(t, out); got != "x" {
		t.Fatalf("tail printed %q", got)
	}
	if err := tail.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, tail); code != 0 {
		t.Fatalf("tail exited %d after SIGINT: %s", code, tailErr)
	}
}

// --url and --token win over BROKER_URL and BROKER_TOKEN: the variables
// are the shell's defaults, a flag is this one command's choice.
func TestFlagsWinOverClientVariables(t *testing.T) {
	secret := "flags-test-secret-flags-test-secret-0123"
	cfg := writeConfig(t, "auth:\n  jwt:\n    secret: "+secret+"\n")
	byEnv, byFlag := brokerproc.Start(t, "--config", cfg), brokerproc.Start(t, "--config", cfg)
	good := strings.TrimSpace(mustRun(t, nil, nil, "token", "--config", cfg, "--publish", "*", "--subscribe", "*").stdout)
	other := strings.TrimSpace(mustRun(t, nil, nil, "token", "--config", cfg, "--publish", "news-*").stdout)

	env := []string{"BROKER_URL=" + byEnv.URL, "BROKER_TOKEN=" + other}
	mustRun(t, env, nil, "publish", "chat-1", "hello", "--url", byFlag.URL, "--token", good)
	for _, b := range []struct {
		p    *brokerproc.Process
		want int
	}{{byFlag, http.StatusOK}, {byEnv, http.StatusNotFound}} {
		req, _ := http.NewRequest(http.MethodGet, b.p.URL+"/v1/streams/chat-1", nil)
		req.Header.Set("Authorization", "Bearer "+good)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != b.want {
			t.Fatalf("stream info on %s: %d, want %d (the event went to --url, not $BROKER_URL)", b.p.URL, res.StatusCode, b.want)
		}
	}
}

// A line ending in CRLF (a file from Windows, a tool that writes \r\n) is
// the line without the \r.
func TestPublishStripsCRLF(t *testing.T) {
	p := brokerproc.Start(t)
	mustRun(t, nil, strings.NewReader("one\r\ntwo\r\nthree"), "publish", "crlf", "--url", p.URL, "--close")
	if tail := mustRun(t, nil, nil, "tail", "crlf", "--url", p.URL); tail.stdout != "one\ntwo\nthree\n" {
		t.Fatalf("tail printed %q", tail.stdout)
	}
}

// A standard input that cannot be read is an error, exit code 1, not the
// end of the input.
func TestPublishStdinReadError(t *testing.T) {
	p := brokerproc.Start(t)
	dir, err := os.Open(t.TempDir()) // read(2) on a directory fails: EISDIR
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	res := runBinary(t, nil, dir, "publish", "s", "--url", p.URL)
	if res.code != 1 || !strings.Contains(res.stderr, "reading stdin") {
		t.Fatalf("publish from a directory: exit %d, %q; want 1 and the read error", res.code, res.stderr)
	}
}

// Ctrl-C ends a publish with exit code 130, as a shell reports an
// interrupted command, and says how many events went out.
func TestPublishInterrupt(t *testing.T) {
	p := brokerproc.Start(t)
	pub := exec.Command(brokerproc.Binary(t), "publish", "i", "--url", p.URL)
	pub.Env = configEnviron(os.Environ())
	in, err := pub.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := pub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var pubErr bytes.Buffer
	pub.Stderr = &pubErr
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = pub.Process.Kill() })
	io.WriteString(in, "one\n")
	if id := nextLine(t, bufio.NewScanner(out)); !idLine.MatchString(id) {
		t.Fatalf("publish printed %q", id)
	}
	if err := pub.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, pub); code != 130 || !strings.Contains(pubErr.String(), "interrupted after 1 events") {
		t.Fatalf("publish exited %d after SIGINT, stderr %q; want 130", code, pubErr.String())
	}
}

// --close closes the stream only after everything was published: a failed
// publish leaves it open, and the exit code is the failure's.
func TestPublishFailureDoesNotClose(t *testing.T) {
	p := brokerproc.Start(t, "--config", writeConfig(t, "publish:\n  max_body: 1KiB\n"))
	mustRun(t, nil, nil, "publish", "s", "first", "--url", p.URL)
	res := runBinary(t, nil, nil, "publish", "s", strings.Repeat("x", 2000), "--url", p.URL, "--close")
	if res.code != 1 || !strings.Contains(res.stderr, "413") {
		t.Fatalf("publish over max_body: exit %d, %q; want 1 and the 413", res.code, res.stderr)
	}
	info, err := http.Get(p.URL + "/v1/streams/s")
	if err != nil {
		t.Fatal(err)
	}
	defer info.Body.Close()
	var st struct{ Closed bool }
	if err := json.NewDecoder(info.Body).Decode(&st); err != nil || st.Closed {
		t.Fatalf("stream after a failed publish --close: closed %v (%v)", st.Closed, err)
	}
}

// On a terminal, publish draws its progress line on stderr (in a pipe it
// does not: TestPublishManyLines), and its last state at the end: three
// lines too large to share a batch are three publishes, quicker than the
// redraw interval, so only the final redraw says 3.
func TestPublishProgressOnATerminal(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script (util-linux) is not installed: no terminal to run publish on")
	}
	p := brokerproc.Start(t)
	in := filepath.Join(t.TempDir(), "in")
	line := strings.Repeat("x", maxBatchBytes/2+1) + "\n"
	if err := os.WriteFile(in, []byte(strings.Repeat(line, 3)), 0o600); err != nil {
		t.Fatal(err)
	}
	// script gives the command a terminal; stdin stays the file.
	sh := exec.Command("script", "-qec", `"$BIN" publish tty --url "$URL" < "$IN"`, "/dev/null")
	sh.Env = append(configEnviron(os.Environ()), "BIN="+brokerproc.Binary(t), "URL="+p.URL, "IN="+in)
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("publish on a terminal: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "published 3 events") {
		t.Fatalf("no progress line saying 3 events on the terminal:\n%q", out)
	}
}

// --idle-timeout: a connection that delivers nothing, not even a
// heartbeat, for that long is given up and the tail resumes on a new one.
// A fake broker answers every subscription's head, then nothing.
func TestTailIdleTimeout(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "retry: 10\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	tail, _, tailErr := startBinary(t, nil, "tail", "quiet", "--url", srv.URL, "--idle-timeout", "200ms")
	defer func() { _ = tail.Process.Kill(); _ = tail.Wait() }()
	for deadline := time.Now().Add(5 * time.Second); requests.Load() < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("one connection in 5s with --idle-timeout 200ms: the silent one was kept\nstderr: %s", tailErr)
		}
	}
}

// An output that cannot be written (a full disk) ends the tail with exit
// code 1 rather than following a stream into nowhere.
func TestTailWriteError(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	p := brokerproc.Start(t)
	mustRun(t, nil, nil, "publish", "w", "x", "--url", p.URL, "--close")
	tail := exec.Command(brokerproc.Binary(t), "tail", "w", "--url", p.URL)
	tail.Env = configEnviron(os.Environ())
	var stderr bytes.Buffer
	tail.Stdout, tail.Stderr = full, &stderr
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, tail); code != 1 || !strings.Contains(stderr.String(), "writing") {
		t.Fatalf("tail to /dev/full: exit %d, %q; want 1 and the write error", code, stderr.String())
	}
}

// bench -procs runs its workers as `broker bench` processes of this
// binary; a tiny split run loses nothing.
func TestBenchProcs(t *testing.T) {
	p := brokerproc.Start(t)
	res := mustRun(t, nil, nil, "bench", "-url", p.URL, "-scenario", "tokens", "-streams", "2", "-subscribers", "2", "-count", "20", "-procs", "2")
	for _, want := range []string{"delivered 20", "lost 0"} {
		if !strings.Contains(res.stdout, want) {
			t.Fatalf("bench -procs 2 output lacks %q:\n%s", want, res.stdout)
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/brokerproc"
	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/pkg/sse"
)

// A bad configuration stops the broker at start with one line naming the
// key, and exit code 2.
func TestBadConfigurationStopsAtStart(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("history:\n  max_event: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("junk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     []string
		wantKey string
	}{
		{"unknown key in file", []string{"--config", unknown}, nil, "history.max_event"},
		{"bad env value", nil, []string{"BROKER_SSE_RETRY=soon"}, "sse.retry"},
		{"bad flag value", []string{"--log-level", "loud"}, nil, "log.level"},
		{"missing config file", []string{"--config", filepath.Join(dir, "nope.yaml")}, nil, "nope.yaml"},
		{"bad store", []string{"--store", "etcd://x"}, nil, "store"},
		// The mask `broker config check` prints is not a secret: its output
		// saved as a file must not run with a JWT key anyone can read.
		{"masked JWT secret", nil, []string{"BROKER_AUTH_JWT_SECRET=REDACTED"}, "auth.jwt.secret"},
		// Key files are configuration: checked before anything starts.
		{"bad TLS key pair", nil, []string{"BROKER_TLS_CERT_FILE=" + junk, "BROKER_TLS_KEY_FILE=" + junk}, "tls.cert_file"},
		{"bad JWT public key", nil, []string{"BROKER_AUTH_JWT_PUBLIC_KEY_FILE=" + junk, "BROKER_AUTH_JWT_ALGORITHM=ES256"}, "auth.jwt.public_key_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, tc.env, &stdout, &stderr)
			out := strings.TrimSpace(stderr.String())
			if code != 2 || !strings.Contains(out, tc.wantKey) || strings.Count(out, "\n") != 0 {
				t.Fatalf("exit %d, stderr %q; want 2 and one line naming %s", code, out, tc.wantKey)
			}
		})
	}
	var stdout bytes.Buffer
	if code := run([]string{"--help"}, nil, &stdout, io.Discard); code != 0 || !strings.Contains(stdout.String(), "--listen") {
		t.Fatalf("--help: exit %d, %q", code, stdout.String())
	}
}

// A listen address in use stops the broker before it opens its store: no
// bolt file is created or locked for a broker that cannot serve.
func TestAddressInUseStopsBeforeTheStore(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	db := filepath.Join(t.TempDir(), "broker.db")
	var stderr bytes.Buffer
	code := run([]string{"--listen", taken.Addr().String(), "--store", "bolt:" + db}, []string{"BROKER_LOG_FORMAT=json"}, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "address already in use") {
		t.Fatalf("exit %d, log %s", code, stderr.String())
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the bolt file was created: %v", err)
	}
}

// The start-up line names the store without its password.
func TestStartLogHidesTheRedisPassword(t *testing.T) {
	p := brokerproc.Start(t, "--store", "redis://user:s3cretpw@127.0.0.1:1/0") // no Redis there: it starts anyway, not ready
	logs := p.Logs()
	if strings.Contains(logs, "s3cretpw") || !strings.Contains(logs, "redis://user:xxxxx@127.0.0.1:1/0") {
		t.Fatalf("start-up log:\n%s", logs)
	}
}

// SIGTERM drains: readiness goes down, subscriber responses end cleanly,
// an in-flight publish is finished and acknowledged, and the process exits
// 0 within the shutdown bound.
func TestGracefulShutdown(t *testing.T) {
	p := brokerproc.Start(t)

	if code := run([]string{"healthcheck", p.URL + "/readyz"}, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("healthcheck of a running broker: exit %d", code)
	}
	res, err := http.Get(p.URL + "/v1/streams/s/events")
	if err != nil {
		t.Fatal(err)
	}
	dec := sse.NewDecoder(res.Body)

	// An in-flight publish: headers and half the body sent before SIGTERM.
	conn := startHalfPublish(t, p)

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The subscriber's response ends cleanly (a complete chunked body).
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := dec.Next(); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case err := <-ended:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("subscriber response ended with %v, want a clean end", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("subscriber response did not end on SIGTERM")
	}

	// The rest of the in-flight publish arrives and is acknowledged.
	fmt.Fprintf(conn, "world")
	ack, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight publish: %v\n%s", err, p.Logs())
	}
	if ack.StatusCode != http.StatusCreated {
		t.Fatalf("in-flight publish answered %d", ack.StatusCode)
	}

	select {
	case <-p.Done():
		if err := p.Err(); err != nil {
			t.Fatalf("broker exited with %v\n%s", err, p.Logs())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("broker did not exit\n%s", p.Logs())
	}
	if code := run([]string{"healthcheck", p.URL + "/readyz"}, nil, io.Discard, io.Discard); code != 1 {
		t.Fatalf("healthcheck of a stopped broker: exit %d", code)
	}
	if !strings.Contains(p.Logs(), `"broker stopped"`) {
		t.Fatalf("no stop line in the log:\n%s", p.Logs())
	}
	// New connections are refused once it stopped.
	if _, err := http.Get(p.URL + "/healthz"); err == nil {
		t.Fatal("broker still answers after exit")
	}
}

// SIGHUP, which kills a Go process that does not catch it, is logged and
// ignored: the subscriber's response stays open and still gets what is
// published after it, and SIGTERM then drains as usual.
func TestHangupIsLoggedAndIgnored(t *testing.T) {
	p := brokerproc.Start(t)
	res, err := http.Get(p.URL + "/v1/streams/s/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	dec := sse.NewDecoder(res.Body)

	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Logs(), "SIGHUP ignored") {
		select {
		case <-p.Done():
			t.Fatalf("SIGHUP ended the broker: %v\n%s", p.Err(), p.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line for SIGHUP:\n%s", p.Logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	pub, err := http.Post(p.URL+"/v1/streams/s/messages", "application/json", strings.NewReader(`{"data":"after the hangup"}`))
	if err != nil {
		t.Fatal(err)
	}
	pub.Body.Close()
	if pub.StatusCode != http.StatusCreated {
		t.Fatalf("publish after SIGHUP answered %d", pub.StatusCode)
	}
	ev, err := dec.Next()
	if err != nil || ev.Data != "after the hangup" {
		t.Fatalf("subscriber after SIGHUP got %+v, %v\n%s", ev, err, p.Logs())
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
		if err := p.Err(); err != nil {
			t.Fatalf("broker exited with %v\n%s", err, p.Logs())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("broker did not exit on SIGTERM after SIGHUP\n%s", p.Logs())
	}
}

// startHalfPublish sends a publish's headers and half its 10-byte body
// ("hello"), and gives the server time to start its handler: a request in
// flight, which a drain waits for. The connection closes when the test ends.
func startHalfPublish(t *testing.T, p *brokerproc.Process) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /v1/streams/s/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
	time.Sleep(100 * time.Millisecond)
	return conn
}

// A second signal during the drain ends the process at once: an operator
// who presses Ctrl-C twice, or a supervisor that signals again, is not
// made to wait out a drain that a stuck client holds up (here a publish
// whose body never finishes, which the drain waits for up to its bound).
func TestSecondSignalStopsAtOnce(t *testing.T) {
	p := brokerproc.Start(t)
	startHalfPublish(t, p)

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Logs(), "shutting down") {
		if time.Now().After(deadline) {
			t.Fatalf("no drain after SIGTERM:\n%s", p.Logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The drain is under way and waits for the publish (up to 10 s).
	select {
	case <-p.Done():
		t.Fatalf("the broker exited before the publish finished: %v\n%s", p.Err(), p.Logs())
	case <-time.After(300 * time.Millisecond):
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
		var exit *exec.ExitError
		if !errors.As(p.Err(), &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
			t.Fatalf("exit %v, want death by SIGTERM\n%s", p.Err(), p.Logs())
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("a second SIGTERM did not stop the draining broker\n%s", p.Logs())
	}
}

// SIGINT (Ctrl-C where the broker runs in a terminal) drains as SIGTERM
// does and exits 0, rather than killing the process mid-answer.
func TestInterruptDrains(t *testing.T) {
	p := brokerproc.Start(t)
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
		if err := p.Err(); err != nil {
			t.Fatalf("broker exited with %v after SIGINT\n%s", err, p.Logs())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("broker did not exit on SIGINT\n%s", p.Logs())
	}
	if !strings.Contains(p.Logs(), "shutting down") || !strings.Contains(p.Logs(), `"broker stopped"`) {
		t.Fatalf("no drain in the log:\n%s", p.Logs())
	}
}

// A drain that its bound cuts short (here a publish whose body never
// finishes) ends with exit code 1 and an error line, not the 0 of a clean
// stop: a supervisor can tell that requests were abandoned. (About ten
// seconds: the bound.)
func TestDrainCutShortExits1(t *testing.T) {
	t.Parallel()
	p := brokerproc.Start(t)
	startHalfPublish(t, p)
	start := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(shutdownTimeout + 10*time.Second):
		t.Fatalf("broker did not exit after its drain bound\n%s", p.Logs())
	}
	if d := time.Since(start); d < shutdownTimeout-time.Second {
		t.Fatalf("broker exited after %v, before its drain bound of %v\n%s", d, shutdownTimeout, p.Logs())
	}
	var exit *exec.ExitError
	if !errors.As(p.Err(), &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want exit status 1\n%s", p.Err(), p.Logs())
	}
	if line := lineWith(p.Logs(), "shutdown: "); !strings.Contains(line, `"level":"error"`) {
		t.Fatalf("no error line for the cut-short drain:\n%s", p.Logs())
	}
}

// The start-up log carries the configuration's warnings (here an unknown
// BROKER_* variable, most likely a typo) and, with auth off, a warning
// that anyone may publish and subscribe; with auth on, no such warning.
func TestStartLogWarns(t *testing.T) {
	t.Setenv("BROKER_HISTORY_MAX_EVENT", "5") // max_events misspelt
	p := brokerproc.Start(t)
	for _, want := range []string{"BROKER_HISTORY_MAX_EVENT", "authentication is off"} {
		line := waitLogLine(t, p, want)
		if !strings.Contains(line, `"level":"warn"`) {
			t.Fatalf("no warning naming %q:\n%s", want, p.Logs())
		}
	}
	t.Setenv("BROKER_AUTH_JWT_SECRET", "start-log-test-secret-0123456789abcdef")
	withAuth := brokerproc.Start(t)
	waitLogLine(t, withAuth, "BROKER_HISTORY_MAX_EVENT")
	time.Sleep(200 * time.Millisecond) // the auth line would follow the start-up line at once
	if strings.Contains(withAuth.Logs(), "authentication is off") {
		t.Fatalf("auth on, yet the log says it is off:\n%s", withAuth.Logs())
	}
}

// waitLogLine waits up to 5 seconds for a log line that contains s (the
// log arrives through a pipe) and returns it.
func waitLogLine(t *testing.T, p *brokerproc.Process, s string) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if line := lineWith(p.Logs(), s); line != "" {
			return line
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q:\n%s", s, p.Logs())
		}
	}
}

// A store failure is the operator's to see and the client's only to know
// of: the 503 says store_unavailable without the cause (here a Redis
// address; elsewhere a file path), and the log has the cause at error level
// under the answer's request id.
func TestStoreFailureIsLoggedNotShown(t *testing.T) {
	p := brokerproc.Start(t, "--store", "redis://127.0.0.1:1/0") // nothing listens there
	res, err := http.Post(p.URL+"/v1/streams/s/messages", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	reqID := res.Header.Get("X-Request-Id")
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"store_unavailable"`) || reqID == "" {
		t.Fatalf("publish with Redis down: %d %s (request id %q)", res.StatusCode, body, reqID)
	}
	if strings.Contains(string(body), "127.0.0.1:1") || strings.Contains(string(body), "dial") {
		t.Fatalf("the answer shows the store's address: %s", body)
	}
	// The log arrives through a pipe: give it a moment.
	var line string
	for deadline := time.Now().Add(5 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		line = lineWith(p.Logs(), `"message":"store unavailable"`)
	}
	if !strings.Contains(line, `"level":"error"`) || !strings.Contains(line, "127.0.0.1:1") || !strings.Contains(line, reqID) {
		t.Fatalf("no error line with the cause and request id %s:\n%s", reqID, p.Logs())
	}
	// go-redis's own lines (one per failed dial) go through the broker's
	// logger too: every line is JSON, none is go-redis's plain text.
	for _, l := range strings.Split(strings.TrimSpace(p.Logs()), "\n") {
		if !json.Valid([]byte(l)) {
			t.Fatalf("a log line that is not JSON: %q\n%s", l, p.Logs())
		}
	}
}

// Without log.format the log is JSON when stderr is not a terminal (a
// container's, a collector's pipe) and the console format on a terminal.
// The broker here fails at once (its address is taken) with one line.
func TestLogFormatFollowsTheOutput(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	env := append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "BROKER_LOG_FORMAT=") }),
		"BIN="+brokerproc.Binary(t), "ADDR="+taken.Addr().String())

	pipe := exec.Command(brokerproc.Binary(t), "--listen", taken.Addr().String())
	pipe.Env = env
	out, _ := pipe.CombinedOutput()
	if line := lineWith(string(out), "broker stopped"); !json.Valid([]byte(line)) {
		t.Fatalf("log in a pipe is not JSON:\n%s", out)
	}

	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script (util-linux) is not installed: no terminal to run the broker on")
	}
	tty := exec.Command("script", "-qec", `"$BIN" --listen "$ADDR"`, "/dev/null")
	tty.Env = env
	out, _ = tty.CombinedOutput()
	if line := lineWith(string(out), "broker stopped"); line == "" || strings.Contains(line, `"level":`) {
		t.Fatalf("log on a terminal is not the console format:\n%s", out)
	}
}

// Log lines carry their time in UTC to the millisecond, in JSON and on a
// console, and so do the loggers derived from the process logger: a drop,
// a reconnect and its replay happen within one second.
func TestLogTimesHaveMilliseconds(t *testing.T) {
	cfg := config.Default()
	for _, tc := range []struct {
		format string
		want   *regexp.Regexp
	}{
		{"json", regexp.MustCompile(`"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`)},
		{"console", regexp.MustCompile(`^(\x1b\[\d+m)?\d\d:\d\d:\d\d\.\d{3}\b`)},
	} {
		cfg.Log.Format = tc.format
		var out bytes.Buffer
		log := newLogger(cfg, &out)
		log.Info().Msg("process")
		derived := log.With().Str("component", "http").Logger()
		derived.Info().Msg("derived")
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 2 {
			t.Fatalf("%s: %d lines, want 2:\n%s", tc.format, len(lines), out.String())
		}
		for _, line := range lines {
			if !tc.want.MatchString(line) {
				t.Errorf("%s: %q has no time to the millisecond", tc.format, line)
			}
		}
	}
}

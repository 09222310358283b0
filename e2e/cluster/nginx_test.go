package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// startNginx runs the shipped deploy/nginx.conf through a real nginx,
// with only the two upstream addresses and the listen port replaced, and
// returns its base URL.
func startNginx(t *testing.T, upstream1, upstream2 string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/nginx"); statErr == nil {
			bin, err = "/usr/sbin/nginx", nil
		}
	}
	if err != nil {
		if os.Getenv("SSEB_REQUIRE_NGINX") != "" {
			t.Fatal("nginx is not installed and SSEB_REQUIRE_NGINX is set")
		}
		t.Skip("nginx is not installed (set SSEB_REQUIRE_NGINX to make this a failure)")
	}
	shipped, err := os.ReadFile(filepath.Join("..", "..", "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := string(shipped)
	for _, r := range []struct {
		old, new string
		times    int
	}{
		{"server broker1:8080 ", "server " + upstream1 + " ", 2}, // publishes, event streams
		{"server broker2:8080 ", "server " + upstream2 + " ", 2},
		{"listen 8080;", fmt.Sprintf("listen 127.0.0.1:%d;", port), 1},
	} {
		if strings.Count(conf, r.old) != r.times {
			t.Fatalf("deploy/nginx.conf changed shape: %q is expected %d times", r.old, r.times)
		}
		conf = strings.ReplaceAll(conf, r.old, r.new)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path, "-e", "stderr",
		"-g", fmt.Sprintf("daemon off; master_process on; pid %s/nginx.pid; error_log stderr warn;", dir))
	// Logs go to a file, not a pipe: nginx's workers inherit the output, and
	// a pipe would keep Wait waiting for them.
	logFile, err := os.Create(filepath.Join(dir, "nginx.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGTERM: the master stops its workers and exits.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	logs := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(url + "/nginx-health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not start: %v\n%s", err, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// With no node reachable, the shipped nginx answers an event stream with
// an empty 200 event stream that asks for a reconnect (EventSource gives up
// for good on a 502), while a publish still gets nginx's 502 for its
// client to retry with the same Idempotency-Key.
func TestNginxWithNoNodeAsksEventStreamsToComeBack(t *testing.T) {
	down1 := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens on these
	down2 := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	proxy := startNginx(t, down1, down2)

	req, err := http.NewRequest(http.MethodGet, proxy+"/v1/streams/s/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Last-Event-ID", "1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" || string(body) != "retry: 3000\n\n" {
		t.Fatalf("event stream with no node: %d %q %q", res.StatusCode, res.Header.Get("Content-Type"), body)
	}

	res, err = http.Post(proxy+"/v1/streams/s/messages", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("publish with no node: %d, want 502", res.StatusCode)
	}
}

// nginx's own errors (no node, a body or header over its limits) answer
// as the broker's do: JSON {"error", "message"} with the SPEC's codes
// where it has one, not nginx's HTML pages.
func TestNginxOwnErrorsAreJSON(t *testing.T) {
	down1 := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	down2 := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	proxy := startNginx(t, down1, down2)
	host := strings.TrimPrefix(proxy, "http://")

	// raw sends a request as written and returns nginx's answer.
	raw := func(request string) *http.Response {
		t.Helper()
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := io.WriteString(conn, request); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	publish := func(path string) *http.Response {
		res, err := http.Post(proxy+path, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	info := func() *http.Response {
		res, err := http.Get(proxy + "/v1/streams/s")
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	cases := []struct {
		name   string
		answer func() *http.Response
		status int
		code   string
	}{
		{"publish, no node", func() *http.Response { return publish("/v1/streams/s/messages") }, 502, "bad_gateway"},
		{"stream info, no node", info, 502, "bad_gateway"},
		{"body over client_max_body_size", func() *http.Response {
			return raw("POST /v1/streams/s/messages HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 17000000\r\n\r\n")
		}, 413, "body_too_large"},
		{"header over large_client_header_buffers", func() *http.Response {
			return raw("GET /v1/streams/s HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 9000) + "\r\n\r\n")
		}, 400, "invalid_request"},
		{"request line too long", func() *http.Response {
			return raw("GET /v1/streams/" + strings.Repeat("a", 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n")
		}, 414, "invalid_request"},
		{"malformed header", func() *http.Response { return raw("GET /v1/streams/s HTTP/1.1\r\nHost x\r\n\r\n") }, 400, "invalid_request"},
		{"malformed request line", func() *http.Response { return raw("GET /v1/streams/s HTTP/1.1 x\r\nHost: x\r\n\r\n") }, 400, "invalid_request"},
		{"events: body over client_max_body_size", func() *http.Response {
			return raw("POST /v1/streams/s/events HTTP/1.1\r\nHost: x\r\nContent-Length: 17000000\r\n\r\n")
		}, 413, "body_too_large"},
		{"the error pages from outside", func() *http.Response { return raw("GET /_proxy_error/502 HTTP/1.1\r\nHost: x\r\n\r\n") }, 404, "not_found"},
		{"unknown Transfer-Encoding", func() *http.Response {
			return raw("POST /v1/streams/s/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
		}, 501, "invalid_request"},
		{"HTTP version nginx does not speak", func() *http.Response { return raw("GET /v1/streams/s HTTP/2.0\r\nHost: x\r\n\r\n") }, 505, "invalid_request"},
		{"TRACE", func() *http.Response { return raw("TRACE /v1/streams/s HTTP/1.1\r\nHost: x\r\n\r\n") }, 405, "method_not_allowed"},
		{"events: TRACE", func() *http.Response { return raw("TRACE /v1/streams/s/events HTTP/1.1\r\nHost: x\r\n\r\n") }, 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := c.answer()
			defer res.Body.Close()
			var body struct{ Error, Message string }
			err := json.NewDecoder(res.Body).Decode(&body)
			if res.StatusCode != c.status || res.Header.Get("Content-Type") != "application/json" || err != nil || body.Error != c.code || body.Message == "" {
				t.Fatalf("got %d %q %+v (%v), want %d application/json with error %q and a message", res.StatusCode, res.Header.Get("Content-Type"), body, err, c.status, c.code)
			}
		})
	}
}

// A node that answers an event stream 503 (full, or cut off from Redis)
// is passed over for the other: EventSource would give up for good on the
// 503. Publishes are not sent twice.
func TestNginxEventStreamsPassOverANodeThatAnswers503(t *testing.T) {
	var refusedStreams, refusedPublishes atomic.Int32
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") {
			refusedStreams.Add(1)
		} else {
			refusedPublishes.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"too_many_subscribers","message":"full"}`)
	}))
	defer refusing.Close()
	serving := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/events") {
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "retry: 1000\n\ndata: served\n\n")
	}))
	defer serving.Close()
	proxy := startNginx(t, strings.TrimPrefix(refusing.URL, "http://"), strings.TrimPrefix(serving.URL, "http://"))

	for i := range 4 {
		res, err := http.Get(proxy + "/v1/streams/s/events")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "data: served") {
			t.Fatalf("event stream %d: %d %q", i+1, res.StatusCode, body)
		}
	}
	if refusedStreams.Load() == 0 {
		t.Fatal("the refusing node was never asked: the test proves nothing")
	}
	// A publish that the refusing node answers 503 is not sent again.
	for range 4 {
		res, err := http.Post(proxy+"/v1/streams/s/messages", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	if n := refusedPublishes.Load(); n == 0 || n > 4 {
		t.Fatalf("the refusing node saw %d of 4 publishes", n)
	}
}

// An HTTP/1.0 request may come without Host. nginx's $host is then empty,
// and nginx leaves an empty header out: the node, asked over HTTP/1.1
// without Host, refused it with Go's text/plain 400, where the node
// itself (asked directly) answers it. The proxy must send some Host.
func TestNginxPassesHTTP10RequestsWithoutHost(t *testing.T) {
	var hosts atomic.Value
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"stream":"s"}`)
	}))
	defer node.Close()
	addr := strings.TrimPrefix(node.URL, "http://")
	proxy := startNginx(t, addr, addr)
	for _, path := range []string{"/v1/streams/s", "/v1/streams/s/events"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(proxy, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.0\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || string(body) != `{"stream":"s"}` {
			t.Fatalf("GET %s HTTP/1.0 without Host: %d %q %q, want the node's 200", path, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	}
	if h, _ := hosts.Load().(string); h == "" {
		t.Fatal("the node saw no Host")
	}
}

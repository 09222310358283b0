package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/brokerproc"
	"github.com/sse-broker/broker/internal/config"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "broker test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startWithConfig runs the real binary with yaml as its --config file.
func startWithConfig(t *testing.T, yaml string) *brokerproc.Process {
	t.Helper()
	return brokerproc.Start(t, "--config", writeConfig(t, yaml))
}

// sseStream is an open subscription.
type sseStream struct {
	res   *http.Response
	lines *bufio.Reader
	conn  string // the client's local address of the connection it used
	reuse bool   // the connection was already open
}

// openStream subscribes with client and waits for the answer's head.
func openStream(t *testing.T, ctx context.Context, client *http.Client, url string) *sseStream {
	t.Helper()
	s := &sseStream{}
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		s.conn, s.reuse = info.Conn.LocalAddr().String(), info.Reused
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { _ = res.Body.Close() })
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: %s %q", url, res.Status, res.Header.Get("Content-Type"))
	}
	s.res, s.lines = res, bufio.NewReader(res.Body)
	return s
}

// waitFor reads lines until one equals want.
func (s *sseStream) waitFor(t *testing.T, want string) {
	t.Helper()
	for {
		line, err := s.lines.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream until %q: %v", want, err)
		}
		if strings.TrimRight(line, "\n") == want {
			return
		}
	}
}

// With tls.cert_file and tls.key_file the broker serves HTTPS, negotiates
// HTTP/2, and a client holds several event streams over one connection.
func TestTLSServesHTTP2(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	p := startWithConfig(t, fmt.Sprintf("tls:\n  cert_file: %q\n  key_file: %q\n", certFile, keyFile))
	if !strings.Contains(p.Logs(), `"protocols":"HTTP/1.1, HTTP/2 (TLS)"`) {
		t.Errorf("the start-up line does not name the protocols:\n%s", p.Logs())
	}
	base := "https://" + p.Addr
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The first stream opens the connection; two more, opened while it
	// streams, share it.
	var streams []*sseStream
	for i := range 3 {
		s := openStream(t, ctx, client, fmt.Sprintf("%s/v1/streams/tls-%d/events", base, i))
		if s.res.ProtoMajor != 2 || s.res.TLS == nil || s.res.TLS.NegotiatedProtocol != "h2" {
			t.Fatalf("stream %d: %s over TLS %v, want HTTP/2 negotiated as h2", i, s.res.Proto, s.res.TLS != nil)
		}
		s.waitFor(t, "retry: 3000")
		streams = append(streams, s)
	}
	for i, s := range streams {
		if s.conn != streams[0].conn || (i > 0 && !s.reuse) {
			t.Fatalf("stream %d used connection %s (reused %v), stream 0 used %s: want one shared connection", i, s.conn, s.reuse, streams[0].conn)
		}
	}
	// All three stream at once over that connection.
	for i := range streams {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/v1/streams/tls-%d/messages", base, i), strings.NewReader(fmt.Sprintf("hello %d", i)))
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusCreated || res.ProtoMajor != 2 {
			t.Fatalf("publish %d: %s %s", i, res.Proto, res.Status)
		}
	}
	for i, s := range streams {
		s.waitFor(t, fmt.Sprintf("data: hello %d", i))
	}

	// HTTP/1.1 clients are still served.
	h1 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	h1.Protocols = new(http.Protocols)
	h1.Protocols.SetHTTP1(true)
	defer h1.CloseIdleConnections()
	res, err := (&http.Client{Transport: h1}).Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 1 {
		t.Fatalf("HTTP/1.1 over TLS: %s %s", res.Proto, res.Status)
	}
}

// With http.h2c the broker speaks HTTP/2 without TLS (prior knowledge, as
// a proxy does) and HTTP/1.1 on the same port; without it, HTTP/1.1 only.
func TestH2C(t *testing.T) {
	t.Parallel()
	h2cOnly := &http.Transport{}
	h2cOnly.Protocols = new(http.Protocols)
	h2cOnly.Protocols.SetUnencryptedHTTP2(true)
	defer h2cOnly.CloseIdleConnections()
	h2cClient := &http.Client{Transport: h2cOnly, Timeout: 5 * time.Second}

	p := startWithConfig(t, "http:\n  h2c: true\n")
	if !strings.Contains(p.Logs(), `"protocols":"HTTP/1.1, HTTP/2 (h2c, no TLS)"`) {
		t.Errorf("the start-up line does not name the protocols:\n%s", p.Logs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var streams []*sseStream
	for i := range 2 {
		s := openStream(t, ctx, h2cClient, fmt.Sprintf("%s/v1/streams/h2c-%d/events", p.URL, i))
		if s.res.ProtoMajor != 2 {
			t.Fatalf("h2c subscribe: %s, want HTTP/2", s.res.Proto)
		}
		s.waitFor(t, "retry: 3000")
		streams = append(streams, s)
	}
	if streams[1].conn != streams[0].conn {
		t.Errorf("two h2c streams used connections %s and %s, want one", streams[0].conn, streams[1].conn)
	}
	res, err := http.Get(p.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.ProtoMajor != 1 || res.StatusCode != http.StatusOK {
		t.Fatalf("HTTP/1.1 beside h2c: %s %s", res.Proto, res.Status)
	}

	// Off by default: an h2c client gets no HTTP/2.
	plain := brokerproc.Start(t)
	if res, err := h2cClient.Get(plain.URL + "/healthz"); err == nil {
		_ = res.Body.Close()
		t.Fatalf("h2c without http.h2c: %s %s, want the connection refused", res.Proto, res.Status)
	}
}

// serverProtocols follows the configuration: TLS wins over h2c.
func TestServerProtocols(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tls, h2c          bool
		h1, h2, h2c2, log string
	}{
		{false, false, "true", "false", "false", "HTTP/1.1"},
		{false, true, "true", "false", "true", "HTTP/1.1, HTTP/2 (h2c, no TLS)"},
		{true, false, "true", "true", "false", "HTTP/1.1, HTTP/2 (TLS)"},
		{true, true, "true", "true", "false", "HTTP/1.1, HTTP/2 (TLS)"},
	} {
		cfg := config.Default()
		if tc.tls {
			cfg.TLS.CertFile, cfg.TLS.KeyFile = "c", "k"
		}
		cfg.HTTP.H2C = tc.h2c
		p := serverProtocols(cfg)
		got := fmt.Sprint(p.HTTP1(), p.HTTP2(), p.UnencryptedHTTP2())
		if want := strings.Join([]string{tc.h1, tc.h2, tc.h2c2}, " "); got != want {
			t.Errorf("tls %v h2c %v: HTTP1 HTTP2 h2c = %s, want %s", tc.tls, tc.h2c, got, want)
		}
		if got := protocolNames(cfg); got != tc.log {
			t.Errorf("tls %v h2c %v: logged %q, want %q", tc.tls, tc.h2c, got, tc.log)
		}
	}
}

// net/http's own error lines go through the log with a level: a failed
// TLS handshake (a plain-HTTP request to the TLS port, a scanner) is a
// debug line, so the default level keeps it out; at debug it is there,
// with its level.
func TestHandshakeErrorsAreDebugLines(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := selfSigned(t, t.TempDir())
	for _, level := range []string{"info", "debug"} {
		p := startWithConfig(t, fmt.Sprintf("log:\n  level: %s\n  format: json\ntls:\n  cert_file: %q\n  key_file: %q\n", level, certFile, keyFile))
		res, err := http.Get("http://" + p.Addr + "/healthz") // plain HTTP to the TLS port
		if err == nil {
			res.Body.Close()
		}
		var line string
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if line = lineWith(p.Logs(), "TLS handshake error"); line != "" || level == "info" {
				break
			}
		}
		if level == "info" {
			time.Sleep(200 * time.Millisecond) // the line would have been written by now
			if line = lineWith(p.Logs(), "TLS handshake error"); line != "" {
				t.Fatalf("a handshake error at log level info: %s", line)
			}
			continue
		}
		if !strings.Contains(line, `"level":"debug"`) || !strings.Contains(line, `"component":"http"`) {
			t.Fatalf("handshake error line at debug: %q\n%s", line, p.Logs())
		}
	}
}

// lineWith returns the last line of logs that contains s, or "".
func lineWith(logs, s string) string {
	var found string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, s) {
			found = l
		}
	}
	return found
}

// stallableConn is a client connection whose reads block while stalled is
// set: a client that stopped reading its socket altogether.
type stallableConn struct {
	net.Conn
	stalled *atomic.Bool
}

func (c stallableConn) Read(p []byte) (int, error) {
	for c.stalled.Load() {
		time.Sleep(20 * time.Millisecond)
	}
	return c.Conn.Read(p)
}

// An HTTP/2 client that stops reading its connection is let go: once
// nothing could be written to it for the subscriber write timeout, the
// connection is closed and its subscription handlers end, so a drain
// after that is quick and exits 0. Before, a stream's write deadline
// could not end a write the connection itself was blocked on (its
// RST_STREAM waits behind it), so the handlers stayed forever and every
// drain ran out its 10 s and exited 1.
func TestHTTP2ClientThatStopsReadingIsLetGo(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the write timeout")
	}
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	p := startWithConfig(t, fmt.Sprintf("tls:\n  cert_file: %q\n  key_file: %q\n", certFile, keyFile))
	base := "https://" + p.Addr
	var stalled atomic.Bool
	stalling := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return stallableConn{c, &stalled}, nil
		}}
	defer stalling.CloseIdleConnections()
	defer stalled.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 3 {
		s := openStream(t, ctx, &http.Client{Transport: stalling}, base+"/v1/streams/stall/events")
		if s.res.ProtoMajor != 2 {
			t.Fatalf("stream %d: %s, want HTTP/2", i, s.res.Proto)
		}
		s.waitFor(t, "retry: 3000")
	}
	stalled.Store(true)
	publisher := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	data := strings.Repeat("x", 64<<10)
	for i := range 300 {
		res, err := publisher.Post(base+"/v1/streams/stall/messages", "text/plain", strings.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("publish %d: %s", i, res.Status)
		}
	}
	time.Sleep(12 * time.Second) // past the write timeout of the stalled writes
	start := time.Now()
	if err := p.Terminate(8 * time.Second); err != nil {
		t.Fatalf("SIGTERM with a stalled HTTP/2 client: %v after %s (want exit 0 at once)\n%s", err, time.Since(start).Round(time.Millisecond), p.Logs())
	}
}

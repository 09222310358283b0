package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/brokerproc"
)

func TestReadyzURL(t *testing.T) {
	tests := []struct {
		listen string
		tls    bool
		want   string
	}{
		{":8080", false, "http://127.0.0.1:8080/readyz"},
		{"0.0.0.0:9000", false, "http://127.0.0.1:9000/readyz"},
		{"[::]:9000", true, "https://127.0.0.1:9000/readyz"},
		{"127.0.0.2:18808", false, "http://127.0.0.2:18808/readyz"},
		{"localhost:443", true, "https://localhost:443/readyz"},
		{"[::1]:8080", false, "http://[::1]:8080/readyz"},
	}
	for _, tc := range tests {
		if got := readyzURL(tc.listen, tc.tls); got != tc.want {
			t.Errorf("readyzURL(%q, %v) = %q, want %q", tc.listen, tc.tls, got, tc.want)
		}
	}
}

// Without a URL, healthcheck asks the address the configuration names, as
// a container's health check does: it follows BROKER_LISTEN, --listen and
// the TLS settings of the --config file.
func TestHealthcheckFollowsTheConfiguration(t *testing.T) {
	t.Parallel()
	plain := brokerproc.Start(t)
	certFile, keyFile, _ := selfSigned(t, t.TempDir())
	tlsConfig := writeConfig(t, fmt.Sprintf("tls:\n  cert_file: %q\n  key_file: %q\n", certFile, keyFile))
	secure := brokerproc.Start(t, "--config", tlsConfig)

	tests := []struct {
		name string
		args []string
		env  []string
		want int
	}{
		{"BROKER_LISTEN", nil, []string{"BROKER_LISTEN=" + plain.Addr}, 0},
		{"--listen", []string{"--listen", plain.Addr}, nil, 0},
		{"a URL", []string{plain.URL + "/readyz"}, nil, 0},
		{"TLS from the file", []string{"--config", tlsConfig, "--listen", secure.Addr}, nil, 0},
		// The image names its file in BROKER_CONFIG, for the broker and
		// this check alike.
		{"TLS from the file BROKER_CONFIG names", nil, []string{"BROKER_CONFIG=" + tlsConfig, "BROKER_LISTEN=" + secure.Addr}, 0},
		{"plain HTTP to the TLS port", []string{"http://" + secure.Addr + "/readyz"}, nil, 1},
		{"nothing listening", []string{"--listen", "127.0.0.1:1"}, nil, 1},
		{"bad configuration", []string{"--listen", "127.0.0.1:1", "--log-level", "loud"}, nil, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(append([]string{"healthcheck"}, tc.args...), tc.env, io.Discard, &stderr); code != tc.want {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.want, stderr.String())
			}
		})
	}
}

// A base URL (BROKER_URL's form) asks /readyz, not the root: with the demo
// on, the root is a page that answers 200 whatever the store's state. A
// URL with a path is asked as given.
func TestHealthcheckBaseURLAsksReadyz(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path)
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	tests := []struct {
		arg  string
		want int
		path string
	}{
		{srv.URL, 0, "/readyz"},
		{srv.URL + "/", 0, "/readyz"},
		{srv.URL + "/readyz", 0, "/readyz"},
		{srv.URL + "/healthz", 1, "/healthz"},
	}
	for _, tc := range tests {
		asked = nil
		var stderr bytes.Buffer
		if code := run([]string{"healthcheck", tc.arg}, nil, io.Discard, &stderr); code != tc.want || len(asked) != 1 || asked[0] != tc.path {
			t.Errorf("healthcheck %s: exit %d, asked %q; want exit %d, asked [%s]; stderr %q", tc.arg, code, asked, tc.want, tc.path, stderr.String())
		}
	}
	for _, bad := range []string{"http://", "http://%zz"} {
		if code := run([]string{"healthcheck", bad}, nil, io.Discard, io.Discard); code != 2 {
			t.Errorf("healthcheck %s: exit %d, want 2 (not a URL with a host)", bad, code)
		}
	}
}

func TestHealthcheckHelp(t *testing.T) {
	for _, args := range [][]string{{"healthcheck", "-h"}, {"healthcheck", "--help"}, {"help", "healthcheck"}} {
		var stdout bytes.Buffer
		if code := run(args, nil, &stdout, io.Discard); code != 0 || !strings.HasPrefix(stdout.String(), "Usage: broker healthcheck") {
			t.Errorf("%v: exit %d, %q", args, code, stdout.String())
		}
	}
}

// A broker that accepts the connection but never answers (hung, or its
// accept queue is all the kernel's) fails the check within a few seconds:
// a container's health check must not hang with it.
func TestHealthcheckTimesOut(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var conns []net.Conn // held open, never answered
		for {
			c, err := ln.Accept()
			if err != nil { // the listener closed: the test is over
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"healthcheck", "http://" + ln.Addr().String() + "/readyz"}, nil, io.Discard, io.Discard)
	}()
	select {
	case code := <-done:
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("healthcheck still waits after 10s for a broker that never answers")
	}
}

package main

import (
	"crypto/tls"
	"net"
	"net/http"

	"github.com/sse-broker/broker/internal/config"
)

// serveHTTP serves srv on ln with the protocols the configuration asks for,
// until the server is shut down:
//
//   - tls.cert_file and tls.key_file set: HTTPS, with HTTP/2 negotiated by
//     ALPN ("h2", falling back to "http/1.1"). Over HTTP/2 a browser holds
//     many EventSource streams on one connection instead of at most six per
//     host over HTTP/1.1.
//   - else http.h2c: HTTP/1.1 and HTTP/2 without TLS (h2c with prior
//     knowledge, as a proxy such as nginx's grpc_pass, Envoy or Caddy
//     speaks it to an upstream) on the same port. Browsers never speak h2c;
//     this is for the hop from a proxy that terminates TLS.
//   - else plain HTTP/1.1.
//
// The certificate files are read once, at start: a renewed certificate
// takes a restart.
func serveHTTP(srv *http.Server, ln net.Listener, cfg config.Config) error {
	srv.Protocols = serverProtocols(cfg)
	// A subscriber's write deadline cannot end a write that its HTTP/2
	// connection is blocked on (a client that stopped reading its socket):
	// the stream's reset waits behind that write, so its handler would
	// wait as long as the connection lives, and every drain would run out.
	// The connection is closed instead once nothing could be written to it
	// for as long as a subscriber write may take.
	srv.HTTP2 = &http.HTTP2Config{WriteByteTimeout: h2WriteByteTimeout}
	if cfg.TLS.CertFile != "" {
		if srv.TLSConfig == nil {
			srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		return srv.ServeTLS(ln, cfg.TLS.CertFile, cfg.TLS.KeyFile)
	}
	return srv.Serve(ln)
}

// serverProtocols is the set of protocols serveHTTP serves for cfg.
func serverProtocols(cfg config.Config) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	switch {
	case cfg.TLS.CertFile != "":
		p.SetHTTP2(true)
	case cfg.HTTP.H2C:
		p.SetUnencryptedHTTP2(true)
	}
	return p
}

// protocolNames says, for the start-up log line, what serveHTTP serves.
func protocolNames(cfg config.Config) string {
	switch {
	case cfg.TLS.CertFile != "":
		return "HTTP/1.1, HTTP/2 (TLS)"
	case cfg.HTTP.H2C:
		return "HTTP/1.1, HTTP/2 (h2c, no TLS)"
	}
	return "HTTP/1.1"
}

package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sse-broker/broker/internal/config"
)

const healthcheckUsage = `Usage: broker healthcheck [URL | serve flags]

Exits 0 when a broker's /readyz answers 200, 1 when it answers otherwise
or not at all, 2 for a bad command line or configuration. It exists for
container health checks: the image has no shell, curl or wget.

With a URL (http://... or https://...), that URL is asked; a URL with no
path (http://broker:8080 or .../) asks its /readyz, since the root is the
demo page, which answers 200 whatever the store's state. Without one, the
address is the one the broker itself would listen on, read the way serve
reads it (built-in default < --config file < BROKER_* environment < flags),
so the check follows BROKER_LISTEN and the port in the file. With tls.*
set it asks over HTTPS and does not verify the certificate: it checks that
the process on this host is ready, not who it is.`

// healthcheck asks a running broker's /readyz and exits 0 when it is
// ready.
func healthcheck(args, environ []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && isHelpFlag(args[0]) {
		fmt.Fprintln(stdout, healthcheckUsage)
		return 0
	}
	client := &http.Client{Timeout: 3 * time.Second}
	var target string
	if len(args) == 1 && (strings.HasPrefix(args[0], "http://") || strings.HasPrefix(args[0], "https://")) {
		var err error
		if target, err = healthcheckURL(args[0]); err != nil {
			fmt.Fprintln(stderr, "healthcheck:", err)
			return 2
		}
	} else {
		cfg, _, err := config.Load(args, environ)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, healthcheckUsage)
			return 0
		}
		if err != nil {
			fmt.Fprintln(stderr, "healthcheck:", err)
			return 2
		}
		tlsOn := cfg.TLS.CertFile != ""
		target = readyzURL(cfg.Listen, tlsOn)
		if tlsOn {
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // see healthcheckUsage
		}
	}
	res, err := client.Get(target)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "healthcheck:", target, "answered", res.Status)
		return 1
	}
	return 0
}

// healthcheckURL is the URL healthcheck asks when given raw: raw itself,
// or its /readyz when it names no path (a base URL such as BROKER_URL).
func healthcheckURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a URL with a host", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/readyz"
	}
	return u.String(), nil
}

// readyzURL is the /readyz URL of a broker listening on listen, asked from
// the same host: an unspecified or empty host (":8080", "0.0.0.0:8080",
// "[::]:8080") is reached on the loopback address.
func readyzURL(listen string, tlsOn bool) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil { // config.Load validated it; keep the text as given
		host, port = listen, ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	if tlsOn {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/readyz"
}

package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// parseDuration is time.ParseDuration with an error that shows the expected
// syntax, because the most common mistake is a bare number ("30") whose unit
// the reader of the file cannot know.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (Go syntax, e.g. 1500ms, 30s, 1h)", s)
	}
	return d, nil
}

// formatDuration writes the shortest exact form ("1h", "24h", "1500ms")
// instead of time.Duration.String's "1h0m0s", so defaults read the way a
// person writes them in YAML.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return d.String()
}

// sizeUnit returns the bytes in a unit (case-insensitive). Binary units
// (KiB) are what people mean for buffers; decimal ones (KB) are accepted with
// their SI meaning rather than guessed at.
func sizeUnit(u string) (int64, bool) {
	switch strings.ToLower(u) {
	case "", "b":
		return 1, true
	case "kib":
		return 1 << 10, true
	case "mib":
		return 1 << 20, true
	case "gib":
		return 1 << 30, true
	case "tib":
		return 1 << 40, true
	case "kb":
		return 1e3, true
	case "mb":
		return 1e6, true
	case "gb":
		return 1e9, true
	case "tb":
		return 1e12, true
	}
	return 0, false
}

// parseSize reads "512", "64KiB", "1 MiB" or "500KB". Only whole numbers
// are accepted so that the byte count is exact.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	mult, ok := sizeUnit(strings.TrimSpace(t[i:]))
	if i == 0 || !ok {
		return 0, fmt.Errorf("%q is not a size (bytes, or a whole number with a unit: 512, 64KiB, 1MiB, 1GiB, 500KB)", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// formatSize uses the largest binary unit that divides n exactly, so the
// default reads "1MiB" rather than "1048576".
func formatSize(n int64) string {
	for _, u := range []struct {
		n    int64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n != 0 && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// checkListen rejects an address net.Listen would refuse, at load rather
// than after the store has been opened. Port 0 is allowed (a random port,
// for tests). Named ports ("http") are not, as they depend on the host's
// services database.
func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. :8080 or 127.0.0.1:8080)", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", s)
	}
	return nil
}

// Store kinds, as returned in StoreSpec.Kind.
const (
	StoreMemory = "memory"
	StoreBolt   = "bolt"
	StoreRedis  = "redis"
)

// StoreSpec is a parsed store setting, checked with the rest of the
// configuration so that a bad one stops the broker at start (exit 2). A
// redis URL is parsed again by go-redis when the store opens;
// redisstore's TestURLs keeps the two parsers in agreement, which is what
// Username and Password are kept for.
type StoreSpec struct {
	Kind string // StoreMemory, StoreBolt or StoreRedis
	Path string // bolt: the database file
	Addr string // redis: host:port (port 6379 when the URL has none)
	DB   int    // redis: database number, 0 when the URL has none
	// Username and Password are the redis URL's user information, if any.
	Username, Password string
}

// ParseStore parses a store setting: "memory", "bolt:PATH" or
// "redis://[USER:PASSWORD@]HOST[:PORT][/DB]". Errors never contain the
// password.
func ParseStore(s string) (StoreSpec, error) {
	switch {
	case s == StoreMemory:
		return StoreSpec{Kind: StoreMemory}, nil
	case strings.HasPrefix(s, "bolt:"):
		path := strings.TrimPrefix(s, "bolt:")
		if strings.TrimSpace(path) == "" {
			return StoreSpec{}, fmt.Errorf("%q: bolt needs a file path, e.g. bolt:data/broker.db", s)
		}
		return StoreSpec{Kind: StoreBolt, Path: path}, nil
	case strings.HasPrefix(s, "redis:"):
		return parseRedis(s)
	}
	return StoreSpec{}, fmt.Errorf("%q is not a store (memory, bolt:PATH or redis://HOST:PORT/DB)", maskUserinfo(s))
}

func parseRedis(s string) (StoreSpec, error) {
	shown := maskUserinfo(s)
	bad := func(why string) (StoreSpec, error) {
		return StoreSpec{}, fmt.Errorf("%q is not a redis URL (redis://HOST:PORT/DB): %s", shown, why)
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad("cannot parse it")
	}
	switch {
	case u.Opaque != "":
		return bad("missing //")
	case u.Hostname() == "":
		return bad("no host")
	case u.RawQuery != "" || u.ForceQuery:
		return bad("query parameters are not supported")
	case u.Fragment != "":
		return bad("fragments are not supported")
	}
	spec := StoreSpec{Kind: StoreRedis}
	port := u.Port()
	if port == "" {
		port = "6379"
	} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return bad("port must be a number from 1 to 65535")
	}
	spec.Addr = net.JoinHostPort(u.Hostname(), port)
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return bad("the database must be a number >= 0")
		}
		spec.DB = n
	}
	if u.User != nil {
		spec.Username = u.User.Username()
		spec.Password, _ = u.User.Password()
	}
	return spec, nil
}

func checkStore(s string) error {
	_, err := ParseStore(s)
	return err
}

// maskUserinfo hides everything between "://" and the last "@", for error
// messages about a URL that may not even parse but may carry a password.
func maskUserinfo(s string) string {
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	return s[:len(s)-len(rest)] + "xxxxx" + rest[at:]
}

// checkOrigins accepts "*" alone or exact origins. It is strict because an
// origin that can never match (a trailing slash, a path, a wildcard
// subdomain) would fail silently in every browser instead of at start-up.
func checkOrigins(origins []string) error {
	for _, o := range origins {
		if o == "*" {
			if len(origins) > 1 {
				return errors.New(`"*" allows every origin; use it alone`)
			}
			continue
		}
		u, err := url.Parse(o)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.Opaque != "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
			return fmt.Errorf("%q is not an origin (scheme://host[:port], no path or trailing slash)", o)
		case strings.Contains(u.Host, "*"):
			return fmt.Errorf("%q: wildcards are not supported; list each origin, or use \"*\" alone", o)
		}
	}
	return nil
}

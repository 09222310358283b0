package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog/hlog"

	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/broker"
)

// Errors of authentication (401) and authorization (403); errors.go maps
// them.
var (
	errUnauthorized = errors.New("unauthorized")
	errForbidden    = errors.New("forbidden")
)

// authenticate answers 401 to a /v1 or /admin request without a valid
// token when auth is on (403 to a cookie-authenticated write from another
// origin: checkCookieWriteOrigin), and puts the token's claims in the
// request context.
//
// The token itself is never logged: not here, and not by the access log,
// which logs the path without the query.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.opts.Auth == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The verification runs in its own function: this frame stays
		// under every subscription's handler for its whole life, and
		// verifying needs much stack (see subscribe).
		if r = s.verifyRequest(w, r); r != nil {
			next.ServeHTTP(w, r)
		}
	})
}

// verifyRequest returns r with the token's claims in its context, or nil
// once it has answered 401 (no valid token) or 403 (a cookie write from
// another origin).
//
//go:noinline
func (s *Server) verifyRequest(w http.ResponseWriter, r *http.Request) *http.Request {
	token, source := auth.ExtractToken(r)
	var (
		claims auth.Claims
		err    error
	)
	switch {
	case token == "" && source == auth.SourceHeader:
		err = fmt.Errorf("%w: the Authorization header must be one \"Bearer <token>\"", auth.ErrNoToken)
	case token == "":
		err = fmt.Errorf("%w: send it as \"Authorization: Bearer <token>\", the access_token query parameter or the access_token cookie", auth.ErrNoToken)
	default:
		claims, err = s.opts.Auth.Verify(token)
	}
	if err != nil {
		hlog.FromRequest(r).Debug().Str("token_source", source).Str("reason", err.Error()).Msg("request not authenticated")
		w.Header().Set("WWW-Authenticate", `Bearer realm="sse-broker"`)
		s.writeError(w, r, fmt.Errorf("%w: %v", errUnauthorized, err))
		return nil
	}
	if source == auth.SourceCookie && !safeMethod(r.Method) {
		if err := s.checkCookieWriteOrigin(r); err != nil {
			hlog.FromRequest(r).Debug().Str("reason", err.Error()).Msg("cookie write from another origin refused")
			s.writeError(w, r, err)
			return nil
		}
	}
	return r.WithContext(auth.NewContext(r.Context(), claims))
}

// sameOrigin reports whether origin is the broker's own (its pages, the
// demo), directly or through a proxy that passes Host on: the same host
// name; https when the request came over TLS (a page served over plain
// HTTP, which anyone on the network can alter, does not vouch for an HTTPS
// broker); and the same port when Host names one. nginx's $host drops the
// port, and behind a proxy that ends TLS the scheme is the proxy's, so
// there the origin must be on its scheme's default port (as a Host
// without a port means): a page on another port of the same name is
// another origin, and the cookie, which is per name, goes with its
// writes too. A broker reached on another port through such a proxy
// lists its public origin in cors.allowed_origins.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	if r.TLS != nil && u.Scheme != "https" {
		return false
	}
	defaultPort := map[string]string{"http": "80", "https": "443"}[u.Scheme]
	originPort := u.Port()
	if originPort == "" {
		originPort = defaultPort
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil { // no port
		return strings.EqualFold(u.Hostname(), strings.Trim(r.Host, "[]")) && originPort == defaultPort
	}
	return strings.EqualFold(u.Hostname(), host) && originPort == port
}

// safeMethod: a request that changes nothing (RFC 9110 §9.2.1).
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// checkCookieWriteOrigin refuses (403) a write authenticated by the
// access_token cookie unless it comes from the broker's own origin or one
// of cors.allowed_origins. A browser attaches the cookie to a form that
// any other site posts here (a text/plain form needs no CORS preflight),
// and CORS only keeps that site from reading the answer, not the write
// from happening (cross-site request forgery). Browsers send Origin with
// every POST and DELETE they make from a page; Referer stands in where an
// older one does not. A client with neither (curl -b) sends its token in
// the Authorization header instead, as services should.
func (s *Server) checkCookieWriteOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		if ref, err := url.Parse(r.Header.Get("Referer")); err == nil && ref.Host != "" {
			origin = ref.Scheme + "://" + ref.Host
		}
	}
	if origin == "" || origin == "null" {
		return fmt.Errorf("%w: a write authenticated by the access_token cookie must come from a page (Origin header); send the token as \"Authorization: Bearer <token>\" instead", errForbidden)
	}
	if sameOrigin(origin, r) {
		return nil
	}
	for _, allowed := range s.opts.CORSOrigins {
		// "*" lets any site read, never with credentials: it does not
		// vouch for a write made with the cookie.
		if allowed != "*" && strings.EqualFold(allowed, origin) {
			return nil
		}
	}
	return fmt.Errorf("%w: a write authenticated by the access_token cookie from origin %q, which is neither this server's nor in cors.allowed_origins", errForbidden, origin)
}

// authorize answers whether the request's token has right on stream
// (nil when auth is off); its error maps to 403.
func (s *Server) authorize(r *http.Request, right auth.Right, stream string) error {
	if s.opts.Auth == nil {
		return nil
	}
	claims, ok := auth.FromContext(r.Context())
	if !ok {
		// Unreachable behind authenticate; refuse rather than allow.
		return fmt.Errorf("%w: the request was not authenticated", errUnauthorized)
	}
	if !claims.Allows(right, stream) {
		return fmt.Errorf("%w: the token has no %s right on stream %q", errForbidden, right, stream)
	}
	return nil
}

// tokenExpiry is signalled when the request's token expires (nil: never),
// so a subscription ends and the client reconnects with a fresh token.
//
// The timer is stopped when the request's context ends, which net/http
// does when the handler returns, so nothing outlives the subscription.
func (s *Server) tokenExpiry(r *http.Request) <-chan time.Time {
	end, ok := s.sessionEnd(r)
	if !ok {
		return nil
	}
	timer := time.NewTimer(time.Until(end))
	context.AfterFunc(r.Context(), func() { timer.Stop() })
	return timer.C
}

// sessionEnd is when r's token stops being valid, if it does.
func (s *Server) sessionEnd(r *http.Request) (time.Time, bool) {
	if s.opts.Auth == nil {
		return time.Time{}, false
	}
	claims, ok := auth.FromContext(r.Context())
	if !ok {
		return time.Time{}, false
	}
	// A subscription ends when its token expires (no "exp": never).
	return claims.ExpiresAt, !claims.ExpiresAt.IsZero()
}

// maxStreamPrefix bounds the prefix of POST /v1/streams, leaving room for
// the random part within the 128 characters of a stream id.
const maxStreamPrefix = 100

// streamPrefix reads the optional body {"prefix": "chat-"} of POST
// /v1/streams and, with auth on, checks that the token may publish to
// every id the prefix can lead to (403 otherwise). With auth off the
// prefix is honoured too: it only names the stream.
func (s *Server) streamPrefix(w http.ResponseWriter, r *http.Request) (string, error) {
	body, err := s.readBody(w, r)
	if err != nil {
		return "", err
	}
	var prefix string
	if len(bytes.TrimSpace(body)) > 0 {
		if err := checkJSONBody(body, `an empty body or {"prefix": "..."}`); err != nil {
			return "", err
		}
		var req struct {
			Prefix *string `json:"prefix"`
		}
		if err := decodeStrict(body, &req); err != nil {
			return "", fmt.Errorf(`%w: %v; want {"prefix": "..."}`, broker.ErrInvalidRequest, err)
		}
		if req.Prefix != nil {
			prefix = *req.Prefix
		}
		if len(prefix) > maxStreamPrefix || !validIDChars(prefix) {
			return "", fmt.Errorf("%w: prefix must be at most %d characters of A-Z a-z 0-9 . _ ~ -", broker.ErrInvalidRequest, maxStreamPrefix)
		}
	}
	if s.opts.Auth == nil {
		return prefix, nil
	}
	claims, ok := auth.FromContext(r.Context())
	if !ok {
		return "", fmt.Errorf("%w: the request was not authenticated", errUnauthorized)
	}
	if !claims.AllowsPrefix(auth.Publish, prefix) {
		return "", fmt.Errorf("%w: the token's publish patterns do not cover every stream starting with %q (want a pattern such as %q)", errForbidden, prefix, prefix+"*")
	}
	return prefix, nil
}

// validIDChars reports whether s has only stream-id characters.
func validIDChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '~' || c == '-') {
			return false
		}
	}
	return true
}

// streamWithRight reads the {stream} parameter and checks the token's
// right on it. When either fails it answers the request itself and
// reports false.
func (s *Server) streamWithRight(w http.ResponseWriter, r *http.Request, right auth.Right) (string, bool) {
	stream, err := streamID(r)
	if err == nil {
		err = s.authorize(r, right, stream)
	}
	if err != nil {
		s.writeError(w, r, err)
		return "", false
	}
	return stream, true
}

// Package auth verifies the broker's JWTs and decides what a token may do
// with a stream (SPEC.md, "Security").
//
// A token is a JWT signed with the one algorithm the configuration pins
// (HS256 with a secret; RS256, ES256 or EdDSA with a public key); the
// algorithm named in the token's header is never trusted, and "none" is
// always refused. Its claim "streams" says what it may do:
//
//	{"sub": "svc-a", "exp": 1767225600,
//	 "streams": {"publish": ["chat-*"], "subscribe": ["chat-42"]}}
//
// Claim semantics, decided here:
//
//   - "exp" and "nbf" are checked when present, to the second, with no
//     clock skew allowed: SPEC.md refuses an expired or not-yet-valid
//     token outright. Issuers keep their clocks in sync (NTP) and leave
//     "nbf" out or a little in the past. A token without "exp" never
//     expires.
//   - A token without "streams" (or with "streams": null, or without one of
//     its lists) is valid but grants nothing for what is missing: 403.
//   - A "streams" claim of the wrong shape ("streams": "x", "publish":
//     "chat-*" instead of a list, a number in a list, ...) makes the token
//     invalid: 401. So does a malformed registered claim ("exp": "soon").
//     Unknown members of "streams" and unknown claims are ignored; a
//     known one in another case or given twice makes the token invalid
//     (checkRawClaims).
//   - A pattern matches a stream id when it equals it, with each `*`
//     matching any run of characters, the empty run included. No other
//     character is special. Matching is case-sensitive.
//
// "publish" covers publish, close, delete, creating a stream and the demo
// chat; "subscribe" covers subscribe, stream info and history.
package auth

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Right is what a token may do with a stream: publish covers publish,
// close and delete; subscribe covers subscribe, stream info and history.
type Right int

const (
	Publish Right = iota
	Subscribe
)

func (r Right) String() string {
	switch r {
	case Publish:
		return "publish"
	case Subscribe:
		return "subscribe"
	}
	return "unknown"
}

// Sentinel errors of authentication; both mean 401.
var (
	// ErrNoToken: the request carries no token, or an Authorization header
	// that is not "Bearer <token>".
	ErrNoToken = errors.New("no access token")
	// ErrInvalidToken: the token is malformed, wrongly signed, signed with
	// another algorithm, expired or not valid yet. The error's text says
	// which, and never contains the token.
	ErrInvalidToken = errors.New("invalid access token")
)

// Claims are what the broker uses of a verified token.
type Claims struct {
	Subject   string
	ExpiresAt time.Time // zero: no exp claim
	Publish   []string  // stream patterns; * matches any run of characters
	Subscribe []string
}

// Allows reports whether the claims grant right on stream.
func (c Claims) Allows(right Right, stream string) bool {
	for _, p := range c.patterns(right) {
		if Match(p, stream) {
			return true
		}
	}
	return false
}

type ctxKey struct{}

// NewContext returns a copy of ctx that carries the claims of the
// request's verified token.
func NewContext(ctx context.Context, c Claims) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the claims NewContext stored, if any.
func FromContext(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(ctxKey{}).(Claims)
	return c, ok
}

// AllowsPrefix reports whether the claims grant right on every stream id
// that starts with prefix, whatever follows it: the check for a stream the
// server names (prefix plus a random part not known in advance). It holds
// when a pattern ends with `*` and matches prefix: "chat-*", "ch*" and "*"
// cover the prefix "chat-"; "chat-x*" or an exact id do not.
func (c Claims) AllowsPrefix(right Right, prefix string) bool {
	for _, p := range c.patterns(right) {
		if strings.HasSuffix(p, "*") && Match(p, prefix) {
			return true
		}
	}
	return false
}

func (c Claims) patterns(right Right) []string {
	switch right {
	case Publish:
		return c.Publish
	case Subscribe:
		return c.Subscribe
	}
	return nil
}

package auth

import (
	"net/http"
	"strings"
)

// Where ExtractToken found the token.
const (
	SourceHeader = "header" // Authorization: Bearer
	SourceQuery  = "query"  // ?access_token=
	SourceCookie = "cookie" // Cookie: access_token=
)

// ExtractToken finds the request's token (SPEC.md, "Security"): the
// Authorization: Bearer header, else the access_token query parameter,
// else the access_token cookie. EventSource cannot set headers, hence the
// other two.
//
// An Authorization header of another scheme is not ours and is passed
// over: a browser sends its HTTP Basic credentials with every request to
// a site behind Basic auth, EventSource's included. A Bearer header that
// is not exactly one "Bearer <token>" ("Bearer" without a token, two
// tokens, two Bearer headers) yields ("", SourceHeader): the request is
// refused rather than authenticated by another source behind the header
// the client meant to use. Nothing found yields ("", ""). Empty query or
// cookie values count as absent.
func ExtractToken(r *http.Request) (token string, source string) {
	bearers := 0
	for _, h := range r.Header.Values("Authorization") {
		h = strings.TrimSpace(h)
		// RFC 9110 separates scheme and token by spaces or tabs.
		scheme, tok := h, ""
		if i := strings.IndexAny(h, " \t"); i >= 0 {
			scheme, tok = h[:i], h[i+1:]
		}
		if !strings.EqualFold(scheme, "Bearer") {
			continue
		}
		bearers++
		token = strings.TrimSpace(tok)
	}
	switch {
	case bearers > 1, bearers == 1 && (token == "" || strings.ContainsAny(token, " \t")):
		return "", SourceHeader
	case bearers == 1:
		return token, SourceHeader
	}
	if tok := r.URL.Query().Get("access_token"); tok != "" {
		return tok, SourceQuery
	}
	if c, err := r.Cookie("access_token"); err == nil && c.Value != "" {
		return c.Value, SourceCookie
	}
	return "", ""
}

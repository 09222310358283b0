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
// Authorization header, else the access_token query parameter, else the
// access_token cookie. EventSource cannot set headers, hence the other two.
//
// An Authorization header that is present but not exactly one
// "Bearer <token>" (another scheme, "Bearer" without a token, two headers)
// yields ("", SourceHeader): the request is refused rather than
// authenticated by a weaker source behind a header the client meant to
// use. Nothing found yields ("", ""). Empty query or cookie values count
// as absent.
func ExtractToken(r *http.Request) (token string, source string) {
	if hs := r.Header.Values("Authorization"); len(hs) > 0 {
		if len(hs) != 1 {
			return "", SourceHeader
		}
		scheme, tok, ok := strings.Cut(strings.TrimSpace(hs[0]), " ")
		tok = strings.TrimSpace(tok)
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
			return "", SourceHeader
		}
		return tok, SourceHeader
	}
	if tok := r.URL.Query().Get("access_token"); tok != "" {
		return tok, SourceQuery
	}
	if c, err := r.Cookie("access_token"); err == nil && c.Value != "" {
		return c.Value, SourceCookie
	}
	return "", ""
}

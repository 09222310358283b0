package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// queryValue is r.URL.Query().Get(name) and Has(name), except that a pair
// for name that does not decode is an error rather than no value.
//
// r.URL.Query() drops such a pair without a word: a bad %-escape, or a
// ';' (which Go no longer takes as a separator). Dropped that way, a
// resume point (?lastEventId=, ?after=) would replay events the client
// already has, and ?event= would publish under the default name. A pair
// for another parameter stays the business of whoever reads that one
// (auth's access_token: an undecodable one is no token, 401).
func queryValue(r *http.Request, name string) (value string, present bool, err error) {
	raw := r.URL.RawQuery
	if raw == "" {
		return "", false, nil
	}
	q, parseErr := url.ParseQuery(raw)
	if parseErr != nil {
		if bad, ok := undecodablePair(raw, name); ok {
			return "", true, fmt.Errorf("the query parameter %s does not decode (%q): escape '%%' as %%25 and ';' as %%3B", name, truncate(bad, 64))
		}
	}
	return q.Get(name), q.Has(name), nil
}

// undecodablePair finds a pair of the raw query that names name and that
// url.ParseQuery refuses. A pair that holds a ';' is looked into as the
// pairs a client that meant ';' as a separator would have sent.
func undecodablePair(raw, name string) (string, bool) {
	for pair := range strings.SplitSeq(raw, "&") {
		if _, err := url.ParseQuery(pair); err == nil {
			continue
		}
		for part := range strings.SplitSeq(pair, ";") {
			key, _, _ := strings.Cut(part, "=")
			if k, err := url.QueryUnescape(key); err == nil {
				key = k
			}
			if key == name {
				return pair, true
			}
		}
	}
	return "", false
}

// truncate shortens s, a client's input quoted in an error, to n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

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
// ';' (which Go no longer takes as a separator); and past 10,000 pairs it
// drops them all. Dropped that way, a resume point (?lastEventId=,
// ?after=) would replay events the client already has, and ?event= would
// publish under the default name. So the pairs are read here, one by one,
// with url.QueryUnescape. A pair for another parameter stays the business
// of whoever reads that one (auth's access_token: an undecodable one is no
// token, 401).
func queryValue(r *http.Request, name string) (value string, present bool, err error) {
	if r.URL.RawQuery == "" { // most publishes
		return "", false, nil
	}
	for pair := range strings.SplitSeq(r.URL.RawQuery, "&") {
		if strings.Contains(pair, ";") {
			// Go drops the whole pair. A client that meant ';' as a
			// separator may have put name in it.
			for part := range strings.SplitSeq(pair, ";") {
				if queryKey(part) == name {
					return "", true, undecodable(name, pair)
				}
			}
			continue
		}
		if queryKey(pair) != name {
			continue
		}
		_, v, _ := strings.Cut(pair, "=")
		decoded, err := url.QueryUnescape(v)
		if err != nil {
			return "", true, undecodable(name, pair)
		}
		if !present { // the first, as url.Values.Get; a later bad one still fails
			value, present = decoded, true
		}
	}
	return value, present, nil
}

// queryKey is the decoded key of a query pair, or its raw key when that
// does not decode.
func queryKey(pair string) string {
	key, _, _ := strings.Cut(pair, "=")
	if k, err := url.QueryUnescape(key); err == nil {
		return k
	}
	return key
}

func undecodable(name, pair string) error {
	return fmt.Errorf("the query parameter %s does not decode (%q): escape '%%' as %%25 and ';' as %%3B", name, truncate(pair, 64))
}

// truncate shortens s, a client's input quoted in an error, to n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

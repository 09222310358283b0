package auth_test

// Fuzz target of token extraction. The seeds (f.Add and
// testdata/fuzz/FuzzExtractToken/) run in every `go test` as regression
// cases; scripts/fuzz.sh explores beyond them for a bounded time.

import (
	"bufio"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sse-broker/broker/pkg/auth"
)

// b64token is RFC 6750's token syntax, which every JWT satisfies; such a
// token must come back exactly as it was sent, from any of the sources.
var b64token = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)

// Which parts the fuzzed request carries (bits of the last argument).
const (
	withHeader      = 1 << iota // Authorization: Bearer <bearer>
	withQuery                   // ?access_token=<query>
	withCookie                  // Cookie: access_token=<cookie>
	twoHeaders                  // a second Authorization header
	lowerCaseScheme             // "bearer" instead of "Bearer"
	otherCookies                // access_token among other cookies
)

// FuzzExtractToken builds a request as the server reads it off the wire
// and checks the SPEC's order (Authorization: Bearer, else the
// access_token query parameter, else the access_token cookie), that a
// present Authorization header is never bypassed by a weaker source, and
// that the token returned is exactly the one sent.
func FuzzExtractToken(f *testing.F) {
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"
	for _, s := range []struct {
		bearer, query, cookie string
		parts                 uint8
	}{
		{"", "", "", 0},
		{jwt, "", "", withHeader},
		{jwt, "q.q.q", "c.c.c", withHeader | withQuery | withCookie},
		{jwt, "", "", withHeader | lowerCaseScheme},
		{jwt, "q.q.q", "", withHeader | twoHeaders | withQuery},
		{"", "q.q.q", "c.c.c", withHeader | withQuery | withCookie},
		{"a b", "q.q.q", "", withHeader | withQuery},
		{"  padded  ", "", "", withHeader},
		{"\t", "", "", withHeader},
		{"tok==", "", "", withHeader},
		{"", jwt, "c.c.c", withQuery | withCookie},
		{"", "", "c.c.c", withQuery | withCookie},
		{"", "a&access_token=b", "", withQuery},
		{"", "a b+c%2F=", "", withQuery},
		{"", "\xff\x00", "", withQuery},
		{"", "", jwt, withCookie},
		{"", "", jwt, withCookie | otherCookies},
		{"", "", `"quoted"`, withCookie},
		{"", "", "a;access_token=b", withCookie},
		{"", "", "a b", withCookie},
		{"", "", "a,b", withCookie},
		{"", "", "", withCookie},
		{"x.y.z", "", "", withHeader | withCookie | otherCookies},
		{"é", "", "", withHeader},
	} {
		f.Add(s.bearer, s.query, s.cookie, s.parts)
	}
	f.Fuzz(func(t *testing.T, bearer, query, cookie string, parts uint8) {
		if hasControl(bearer) || hasControl(cookie) {
			t.Skip("the server refuses header values with control characters")
		}
		target := "/v1/streams/s/events"
		if parts&withQuery != 0 {
			target += "?x=1&access_token=" + url.QueryEscape(query)
		}
		var raw strings.Builder
		raw.WriteString("GET " + target + " HTTP/1.1\r\nHost: broker\r\n")
		scheme := "Bearer"
		if parts&lowerCaseScheme != 0 {
			scheme = "bearer"
		}
		if parts&withHeader != 0 {
			raw.WriteString("Authorization: " + scheme + " " + bearer + "\r\n")
			if parts&twoHeaders != 0 {
				raw.WriteString("Authorization: Bearer other\r\n")
			}
		}
		if parts&withCookie != 0 {
			if parts&otherCookies != 0 {
				raw.WriteString("Cookie: a=1; access_token=" + cookie + "; b=2\r\n")
			} else {
				raw.WriteString("Cookie: access_token=" + cookie + "\r\n")
			}
		}
		raw.WriteString("\r\n")
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw.String())))
		if err != nil {
			t.Skipf("not a request the server reads: %v", err)
		}

		tok, from := auth.ExtractToken(r)
		switch {
		case parts&withHeader != 0:
			if from != auth.SourceHeader {
				t.Fatalf("an Authorization header is present, the token came from %q (%q)", from, tok)
			}
			switch {
			case parts&twoHeaders != 0:
				if tok != "" {
					t.Fatalf("two Authorization headers yield token %q", tok)
				}
			case b64token.MatchString(bearer):
				if tok != bearer {
					t.Fatalf("Bearer %q extracted as %q", bearer, tok)
				}
			case tok != "" && (strings.ContainsAny(tok, " \t") || !strings.Contains(bearer, tok)):
				t.Fatalf("Bearer %q extracted as %q", bearer, tok)
			}
		case parts&withQuery != 0 && query != "":
			if tok != query || from != auth.SourceQuery {
				t.Fatalf("access_token=%q extracted as (%q, %q)", query, tok, from)
			}
		case parts&withCookie != 0 && b64token.MatchString(cookie):
			if tok != cookie || from != auth.SourceCookie {
				t.Fatalf("cookie access_token=%q extracted as (%q, %q)", cookie, tok, from)
			}
		case parts&withCookie != 0:
			// Not a token's syntax: the cookie parser may refuse or cut it;
			// what comes back is still part of what was sent.
			if (from != auth.SourceCookie && from != "") || (from == "") != (tok == "") || !strings.Contains(cookie, tok) {
				t.Fatalf("cookie access_token=%q extracted as (%q, %q)", cookie, tok, from)
			}
		default:
			if tok != "" || from != "" {
				t.Fatalf("no token sent, extracted (%q, %q)", tok, from)
			}
		}
	})
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7F {
			return true
		}
	}
	return false
}

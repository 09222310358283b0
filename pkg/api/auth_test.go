package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/sse"
)

var authSecret = []byte("test-secret-test-secret-test-secret!")

func authSign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// authHS signs claims with the test secret, HS256.
func authHS(t testing.TB, claims jwt.MapClaims) string {
	return authSign(t, jwt.SigningMethodHS256, authSecret, claims)
}

// rights builds the claims of a token valid for an hour.
func rights(publish, subscribe []string) jwt.MapClaims {
	streams := map[string]any{}
	if publish != nil {
		streams["publish"] = publish
	}
	if subscribe != nil {
		streams["subscribe"] = subscribe
	}
	return jwt.MapClaims{"sub": "tester", "exp": time.Now().Add(time.Hour).Unix(), "streams": streams}
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

func hsVerifier(t testing.TB) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier("HS256", authSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func pubPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// authEndpoint is one /v1 endpoint of the matrix: how to prepare a stream
// for it, how to call it, the right it needs and the status it answers
// when allowed.
type authEndpoint struct {
	name    string
	right   auth.Right
	prepare func(t *testing.T, b *testbroker.Broker, admin http.Header, s string)
	call    func(s string) (method, path string, header http.Header, body string)
	grant   func(s string) string // the pattern that grants the right for s
	ok      int
	// mutates: a refused call must leave the prepared stream as it was
	// (one event, open).
	mutates bool
}

func publishOne(t *testing.T, b *testbroker.Broker, admin http.Header, s string) {
	t.Helper()
	status, _, body := b.Do(t, "POST", "/v1/streams/"+s+"/messages", admin, "first")
	if status != http.StatusCreated {
		t.Fatalf("prepare %s: %d %s", s, status, body)
	}
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

var authEndpoints = []authEndpoint{
	{
		name: "create", right: auth.Publish, ok: http.StatusCreated,
		prepare: func(*testing.T, *testbroker.Broker, http.Header, string) {},
		call: func(s string) (string, string, http.Header, string) {
			return "POST", "/v1/streams", jsonHeader, `{"prefix":"` + s + `-"}`
		},
		grant: func(s string) string { return s + "-*" },
	},
	{
		name: "publish", right: auth.Publish, ok: http.StatusCreated, mutates: true, prepare: publishOne,
		call: func(s string) (string, string, http.Header, string) {
			return "POST", "/v1/streams/" + s + "/messages", nil, "hello"
		},
	},
	{
		name: "close", right: auth.Publish, ok: http.StatusOK, mutates: true, prepare: publishOne,
		call: func(s string) (string, string, http.Header, string) {
			return "POST", "/v1/streams/" + s + "/close", nil, ""
		},
	},
	{
		name: "delete", right: auth.Publish, ok: http.StatusNoContent, mutates: true, prepare: publishOne,
		call: func(s string) (string, string, http.Header, string) {
			return "DELETE", "/v1/streams/" + s, nil, ""
		},
	},
	{
		name: "subscribe", right: auth.Subscribe, ok: http.StatusOK,
		prepare: func(t *testing.T, b *testbroker.Broker, admin http.Header, s string) {
			publishOne(t, b, admin, s)
			// Closed, so that an allowed subscription ends after the backlog.
			if status, _, body := b.Do(t, "POST", "/v1/streams/"+s+"/close", admin, ""); status != http.StatusOK {
				t.Fatalf("prepare %s: close %d %s", s, status, body)
			}
		},
		call: func(s string) (string, string, http.Header, string) {
			return "GET", "/v1/streams/" + s + "/events", nil, ""
		},
	},
	{
		name: "info", right: auth.Subscribe, ok: http.StatusOK, prepare: publishOne,
		call: func(s string) (string, string, http.Header, string) {
			return "GET", "/v1/streams/" + s, nil, ""
		},
	},
	{
		name: "history", right: auth.Subscribe, ok: http.StatusOK, prepare: publishOne,
		call: func(s string) (string, string, http.Header, string) {
			return "GET", "/v1/streams/" + s + "/messages?after=0&limit=10", nil, ""
		},
	},
	{
		name: "demo chat", right: auth.Publish, ok: http.StatusAccepted, mutates: true, prepare: publishOne,
		call: func(s string) (string, string, http.Header, string) {
			return "POST", "/v1/demo/chat", jsonHeader, `{"stream":"` + s + `","message":"hi"}`
		},
	},
}

func (ep authEndpoint) pattern(s string) string {
	if ep.grant != nil {
		return ep.grant(s)
	}
	return s
}

// tokenKind is a way of (not) authenticating, and what it must answer.
type tokenKind struct {
	name string
	// authz is the Authorization header for an endpoint and stream ("":
	// none).
	authz func(ep authEndpoint, s string) string
	want  int // 0: the endpoint's success status
}

// claimsFor grants ep's right on s (with extra claims merged in).
func claimsFor(ep authEndpoint, s string, extra jwt.MapClaims) jwt.MapClaims {
	var c jwt.MapClaims
	if ep.right == auth.Publish {
		c = rights([]string{ep.pattern(s)}, nil)
	} else {
		c = rights(nil, []string{ep.pattern(s)})
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func rightName(r auth.Right) string {
	if r == auth.Publish {
		return "publish"
	}
	return "subscribe"
}

func hsKinds(t *testing.T) []tokenKind {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	bear := func(f func(ep authEndpoint, s string) string) func(authEndpoint, string) string {
		return func(ep authEndpoint, s string) string { return "Bearer " + f(ep, s) }
	}
	now := time.Now()
	return []tokenKind{
		{"no token", func(authEndpoint, string) string { return "" }, 401},
		{"valid with the right", bear(func(ep authEndpoint, s string) string { return authHS(t, claimsFor(ep, s, nil)) }), 0},
		{"bearer scheme in lower case", func(ep authEndpoint, s string) string { return "bearer " + authHS(t, claimsFor(ep, s, nil)) }, 0},
		{"no exp", bear(func(ep authEndpoint, s string) string {
			c := claimsFor(ep, s, nil)
			delete(c, "exp")
			return authHS(t, c)
		}), 0},
		{"only the other right", bear(func(ep authEndpoint, s string) string {
			other := rightName(auth.Subscribe)
			if ep.right == auth.Subscribe {
				other = rightName(auth.Publish)
			}
			return authHS(t, jwt.MapClaims{"exp": now.Add(time.Hour).Unix(), "streams": map[string]any{other: []string{ep.pattern(s), "*"}}})
		}), 403},
		{"pattern mismatch", bear(func(ep authEndpoint, s string) string {
			return authHS(t, jwt.MapClaims{"streams": map[string]any{rightName(ep.right): []string{ep.pattern(s) + "x", "zz*", strings.ToUpper(ep.pattern(s))}}})
		}), 403},
		{"missing streams claim", bear(func(authEndpoint, string) string {
			return authHS(t, jwt.MapClaims{"sub": "x", "exp": now.Add(time.Hour).Unix()})
		}), 403},
		{"empty streams claim", bear(func(authEndpoint, string) string {
			return authHS(t, jwt.MapClaims{"streams": map[string]any{}})
		}), 403},
		{"expired", bear(func(ep authEndpoint, s string) string {
			return authHS(t, claimsFor(ep, s, jwt.MapClaims{"exp": now.Add(-2 * time.Minute).Unix()}))
		}), 401},
		{"not yet valid", bear(func(ep authEndpoint, s string) string {
			return authHS(t, claimsFor(ep, s, jwt.MapClaims{"nbf": now.Add(2 * time.Minute).Unix()}))
		}), 401},
		{"wrong signature", bear(func(ep authEndpoint, s string) string {
			return authSign(t, jwt.SigningMethodHS256, []byte("not-the-secret-not-the-secret-!!"), claimsFor(ep, s, nil))
		}), 401},
		{"wrong algorithm HS384", bear(func(ep authEndpoint, s string) string {
			return authSign(t, jwt.SigningMethodHS384, authSecret, claimsFor(ep, s, nil))
		}), 401},
		{"wrong algorithm RS256", bear(func(ep authEndpoint, s string) string {
			return authSign(t, jwt.SigningMethodRS256, rsaKey, claimsFor(ep, s, nil))
		}), 401},
		{"alg none", bear(func(ep authEndpoint, s string) string {
			return authSign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsFor(ep, s, nil))
		}), 401},
		{"malformed streams claim", bear(func(ep authEndpoint, s string) string {
			return authHS(t, jwt.MapClaims{"streams": map[string]any{rightName(ep.right): ep.pattern(s)}})
		}), 401},
		{"malformed exp claim", bear(func(ep authEndpoint, s string) string {
			return authHS(t, claimsFor(ep, s, jwt.MapClaims{"exp": "tomorrow"}))
		}), 401},
		{"garbage token", func(authEndpoint, string) string { return "Bearer not-a-jwt" }, 401},
		{"Basic scheme", func(authEndpoint, string) string { return "Basic dXNlcjpwYXNz" }, 401},
		{"Bearer without token", func(authEndpoint, string) string { return "Bearer" }, 401},
	}
}

// runAuthMatrix calls every endpoint with every kind of token on fresh
// streams, and checks the status, the error body, and that a refused call
// changed nothing.
func runAuthMatrix(t *testing.T, b *testbroker.Broker, admin http.Header, kinds []tokenKind) {
	n := 0
	for _, kind := range kinds {
		for _, ep := range authEndpoints {
			n++
			s := fmt.Sprintf("m%d", n)
			t.Run(kind.name+"/"+ep.name, func(t *testing.T) {
				ep.prepare(t, b, admin, s)
				method, path, header, body := ep.call(s)
				h := http.Header{}
				for k, v := range header {
					h[k] = v
				}
				if a := kind.authz(ep, s); a != "" {
					h.Set("Authorization", a)
				}
				want := kind.want
				if want == 0 {
					want = ep.ok
				}
				status, resHeader, resBody := b.Do(t, method, path, h, body)
				if status != want {
					t.Fatalf("%s %s: status %d, want %d; body %s", method, path, status, want, resBody)
				}
				switch want {
				case 401, 403:
					var e struct{ Error, Message string }
					if err := json.Unmarshal([]byte(resBody), &e); err != nil || resHeader.Get("Content-Type") != "application/json" {
						t.Fatalf("error answer %q (%s): %v", resBody, resHeader.Get("Content-Type"), err)
					}
					wantCode := map[int]string{401: "unauthorized", 403: "forbidden"}[want]
					if e.Error != wantCode || e.Message == "" {
						t.Fatalf("error body %q, want code %q and a message", resBody, wantCode)
					}
					if got := resHeader.Get("WWW-Authenticate"); (want == 401) != (got != "") {
						t.Fatalf("WWW-Authenticate %q on a %d", got, want)
					}
					if want == 401 && !strings.HasPrefix(resHeader.Get("WWW-Authenticate"), "Bearer ") {
						t.Fatalf("WWW-Authenticate %q", resHeader.Get("WWW-Authenticate"))
					}
					if ep.mutates {
						expectUntouched(t, b, admin, s)
					}
				case http.StatusCreated:
					if ep.name == "create" {
						var ans struct{ Stream string }
						mustJSON(t, resBody, &ans)
						if !strings.HasPrefix(ans.Stream, s+"-") || len(ans.Stream) < len(s)+20 {
							t.Fatalf("created stream %q, want %s- and a random part", ans.Stream, s)
						}
					}
				}
			})
		}
	}
}

// expectUntouched checks that stream s still holds its one prepared event
// and is open.
func expectUntouched(t *testing.T, b *testbroker.Broker, admin http.Header, s string) {
	t.Helper()
	status, _, body := b.Do(t, "GET", "/v1/streams/"+s, admin, "")
	var in struct {
		Retained int  `json:"retained"`
		Closed   bool `json:"closed"`
	}
	if status == http.StatusOK {
		mustJSON(t, body, &in)
	}
	if status != http.StatusOK || in.Retained != 1 || in.Closed {
		t.Fatalf("a refused request changed stream %s: info %d %s", s, status, body)
	}
}

func TestAuthMatrixHS256(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Auth: hsVerifier(t), DemoTokenDelay: time.Millisecond})
	admin := bearer(authHS(t, rights([]string{"*"}, []string{"*"})))
	runAuthMatrix(t, b, admin, hsKinds(t))
}

// With RS256 pinned, an HS256 token whose secret is the public key (the
// classic algorithm confusion) is refused, as are other keys and none.
func TestAuthMatrixRS256(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub := pubPEM(t, &key.PublicKey)
	v, err := auth.NewVerifier("RS256", nil, pub)
	if err != nil {
		t.Fatal(err)
	}
	b := testbroker.Start(t, testbroker.Options{Auth: v, DemoTokenDelay: time.Millisecond})
	admin := bearer(authSign(t, jwt.SigningMethodRS256, key, rights([]string{"*"}, []string{"*"})))
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	kinds := []tokenKind{
		{"valid RS256", func(ep authEndpoint, s string) string {
			return "Bearer " + authSign(t, jwt.SigningMethodRS256, key, claimsFor(ep, s, nil))
		}, 0},
		{"algorithm confusion with the PEM", func(ep authEndpoint, s string) string {
			return "Bearer " + authSign(t, jwt.SigningMethodHS256, pub, claimsFor(ep, s, nil))
		}, 401},
		{"algorithm confusion with the DER", func(ep authEndpoint, s string) string {
			return "Bearer " + authSign(t, jwt.SigningMethodHS256, der, claimsFor(ep, s, nil))
		}, 401},
		{"other RSA key", func(ep authEndpoint, s string) string {
			return "Bearer " + authSign(t, jwt.SigningMethodRS256, other, claimsFor(ep, s, nil))
		}, 401},
		{"PS256 with the right key", func(ep authEndpoint, s string) string {
			return "Bearer " + authSign(t, jwt.SigningMethodPS256, key, claimsFor(ep, s, nil))
		}, 401},
		{"alg none", func(ep authEndpoint, s string) string {
			return "Bearer " + authSign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsFor(ep, s, nil))
		}, 401},
	}
	runAuthMatrix(t, b, admin, kinds)
}

// ES256 and EdDSA keys generated here verify through the whole broker.
func TestAuthAsymmetricAlgorithms(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecOther, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edOther, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		alg        string
		pub        []byte
		method     jwt.SigningMethod
		key, other any
	}{
		{"RS256", pubPEM(t, &rsaKey.PublicKey), jwt.SigningMethodRS256, rsaKey, ecOther},
		{"ES256", pubPEM(t, &ecKey.PublicKey), jwt.SigningMethodES256, ecKey, ecOther},
		{"EdDSA", pubPEM(t, edPub), jwt.SigningMethodEdDSA, edKey, edOther},
	} {
		t.Run(tt.alg, func(t *testing.T) {
			v, err := auth.NewVerifier(tt.alg, nil, tt.pub)
			if err != nil {
				t.Fatal(err)
			}
			b := testbroker.Start(t, testbroker.Options{Auth: v})
			good := authSign(t, tt.method, tt.key, rights([]string{"a-*"}, []string{"a-*"}))
			if status, _, body := b.Do(t, "POST", "/v1/streams/a-1/messages", bearer(good), "x"); status != http.StatusCreated {
				t.Fatalf("valid %s token: %d %s", tt.alg, status, body)
			}
			if status, _, body := b.Do(t, "GET", "/v1/streams/a-1/messages", bearer(good), ""); status != http.StatusOK || !strings.Contains(body, `"data":"x"`) {
				t.Fatalf("history with a valid %s token: %d %s", tt.alg, status, body)
			}
			otherMethod := tt.method
			if tt.alg == "RS256" {
				otherMethod = jwt.SigningMethodES256
			}
			bad := authSign(t, otherMethod, tt.other, rights([]string{"a-*"}, nil))
			if status, _, body := b.Do(t, "POST", "/v1/streams/a-1/messages", bearer(bad), "x"); status != http.StatusUnauthorized {
				t.Fatalf("token of another key: %d %s", status, body)
			}
			confused := authSign(t, jwt.SigningMethodHS256, tt.pub, rights([]string{"a-*"}, nil))
			if status, _, body := b.Do(t, "POST", "/v1/streams/a-1/messages", bearer(confused), "x"); status != http.StatusUnauthorized {
				t.Fatalf("HS256 token signed with the public key: %d %s", status, body)
			}
		})
	}
}

// Routes outside /v1 need no token.
func TestAuthOperationsOpen(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Auth: hsVerifier(t)})
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/"} {
		if status, _, body := b.Do(t, "GET", path, nil, ""); status != http.StatusOK {
			t.Errorf("GET %s without a token: %d %s", path, status, body)
		}
	}
}

// authSubscribe opens an SSE request with header; it fails the test
// unless the answer is 200.
func authSubscribe(t *testing.T, b *testbroker.Broker, path string, header http.Header) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("subscribe %s: %v", path, err)
	}
	s := &stream{res: res, dec: sse.NewDecoder(res.Body), cancel: cancel}
	t.Cleanup(s.close)
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("subscribe %s: %d %s", path, res.StatusCode, body)
	}
	return s
}

// nextData reads events until one with data arrives.
func nextData(t *testing.T, s *stream) string {
	t.Helper()
	for {
		ev := s.next(t)
		if ev.Data != "" || ev.ID != "" {
			return ev.Data
		}
	}
}

func TestAuthTokenSources(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Auth: hsVerifier(t)})
	admin := bearer(authHS(t, rights([]string{"*"}, []string{"*"})))
	sub := authHS(t, rights(nil, []string{"src-*"}))
	otherStream := authHS(t, rights(nil, []string{"elsewhere"}))
	bad := authSign(t, jwt.SigningMethodHS256, []byte("wrong-secret-wrong-secret-wrong!"), rights(nil, []string{"*"}))

	const st = "src-1"
	if status, _, body := b.Do(t, "POST", "/v1/streams/"+st+"/messages", admin, "one"); status != http.StatusCreated {
		t.Fatalf("publish: %d %s", status, body)
	}

	t.Run("query", func(t *testing.T) {
		s := authSubscribe(t, b, "/v1/streams/"+st+"/events?access_token="+sub, nil)
		if d := nextData(t, s); d != "one" {
			t.Fatalf("data %q", d)
		}
	})
	t.Run("cookie", func(t *testing.T) {
		s := authSubscribe(t, b, "/v1/streams/"+st+"/events", http.Header{"Cookie": {"access_token=" + sub}})
		if d := nextData(t, s); d != "one" {
			t.Fatalf("data %q", d)
		}
	})
	t.Run("cookie among others", func(t *testing.T) {
		s := authSubscribe(t, b, "/v1/streams/"+st+"/events", http.Header{"Cookie": {"theme=dark; access_token=" + sub + "; lang=en"}})
		if d := nextData(t, s); d != "one" {
			t.Fatalf("data %q", d)
		}
	})
	t.Run("bearer wins over query and cookie", func(t *testing.T) {
		h := bearer(sub)
		h.Set("Cookie", "access_token="+bad)
		s := authSubscribe(t, b, "/v1/streams/"+st+"/events?access_token="+bad, h)
		if d := nextData(t, s); d != "one" {
			t.Fatalf("data %q", d)
		}
		// And a bad Bearer is not rescued by a good query or cookie.
		h = bearer(bad)
		h.Set("Cookie", "access_token="+sub)
		if status, _, body := b.Do(t, "GET", "/v1/streams/"+st+"/events?access_token="+sub, h, ""); status != http.StatusUnauthorized {
			t.Fatalf("bad bearer with a good query: %d %s", status, body)
		}
		// Nor a malformed Bearer header.
		h = http.Header{"Authorization": {"Bearer"}}
		if status, _, body := b.Do(t, "GET", "/v1/streams/"+st+"/events?access_token="+sub, h, ""); status != http.StatusUnauthorized {
			t.Fatalf("Bearer without a token, with a good query: %d %s", status, body)
		}
		// A header of another scheme is not ours (a page behind HTTP Basic
		// auth sends it with its EventSource): the query is used.
		h = http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}
		s = authSubscribe(t, b, "/v1/streams/"+st+"/events?access_token="+sub, h)
		if d := nextData(t, s); d != "one" {
			t.Fatalf("Basic header with a good query: data %q", d)
		}
	})
	t.Run("query wins over cookie", func(t *testing.T) {
		s := authSubscribe(t, b, "/v1/streams/"+st+"/events?access_token="+sub, http.Header{"Cookie": {"access_token=" + bad}})
		if d := nextData(t, s); d != "one" {
			t.Fatalf("data %q", d)
		}
		if status, _, body := b.Do(t, "GET", "/v1/streams/"+st+"/events?access_token="+bad, http.Header{"Cookie": {"access_token=" + sub}}, ""); status != http.StatusUnauthorized {
			t.Fatalf("bad query with a good cookie: %d %s", status, body)
		}
	})
	for name, get := range map[string]func(tok string) (int, string){
		"query": func(tok string) (int, string) {
			status, _, body := b.Do(t, "GET", "/v1/streams/"+st+"/events?access_token="+tok, nil, "")
			return status, body
		},
		"cookie": func(tok string) (int, string) {
			status, _, body := b.Do(t, "GET", "/v1/streams/"+st+"/events", http.Header{"Cookie": {"access_token=" + tok}}, "")
			return status, body
		},
	} {
		t.Run(name+" refusals", func(t *testing.T) {
			if status, body := get(bad); status != http.StatusUnauthorized {
				t.Errorf("bad token: %d %s", status, body)
			}
			if status, body := get(otherStream); status != http.StatusForbidden {
				t.Errorf("token for another stream: %d %s", status, body)
			}
		})
	}
	// Query and cookie tokens work for the other endpoints too.
	pub := authHS(t, rights([]string{"src-*"}, nil))
	if status, _, body := b.Do(t, "POST", "/v1/streams/"+st+"/messages?access_token="+pub, nil, "two"); status != http.StatusCreated {
		t.Fatalf("publish with a query token: %d %s", status, body)
	}
	if status, _, body := b.Do(t, "GET", "/v1/streams/"+st, http.Header{"Cookie": {"access_token=" + sub}}, ""); status != http.StatusOK {
		t.Fatalf("info with a cookie token: %d %s", status, body)
	}
}

// A write authenticated by the access_token cookie is refused (403) unless
// it comes from the broker's own origin or one of cors.allowed_origins: a
// form on any other site can post text/plain here without a preflight, and
// the browser attaches the cookie (cross-site request forgery). Reads with
// the cookie, and writes with the token in a header (which another site
// cannot set without a preflight), are not affected.
func TestAuthCookieWritesOnlyFromTrustedOrigins(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Auth: hsVerifier(t), CORSOrigins: []string{"https://app.example"}, DemoTokenDelay: time.Millisecond})
	tok := authHS(t, rights([]string{"csrf-*"}, []string{"csrf-*"}))
	const st = "csrf-1"
	cookie := func(kv ...string) http.Header {
		h := http.Header{"Cookie": {"access_token=" + tok}, "Content-Type": {"text/plain"}}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	published := 0
	for _, tc := range []struct {
		name   string
		header http.Header
		want   int
	}{
		{"foreign Origin", cookie("Origin", "https://evil.example"), http.StatusForbidden},
		{"Origin null", cookie("Origin", "null"), http.StatusForbidden},
		{"no Origin, foreign Referer", cookie("Referer", "https://evil.example/page"), http.StatusForbidden},
		{"neither Origin nor Referer", cookie(), http.StatusForbidden},
		{"an allowed origin in another case", cookie("Origin", "https://APP.example"), http.StatusCreated},
		{"the broker's own origin", cookie("Origin", b.URL), http.StatusCreated},
		{"another port of the broker's host", cookie("Origin", "http://127.0.0.1:1"), http.StatusForbidden},
		{"another scheme on the broker's host and port", cookie("Origin", strings.Replace(b.URL, "http:", "ws:", 1)), http.StatusForbidden},
		{"another host on the broker's port", cookie("Origin", strings.Replace(b.URL, "127.0.0.1", "127.0.0.2", 1)), http.StatusForbidden},
		{"behind a proxy that passes the host name alone ($host)", cookie("Origin", "https://chat.example", "Host", "chat.example"), http.StatusCreated},
		{"behind a proxy, another host name", cookie("Origin", "https://evil.example", "Host", "chat.example"), http.StatusForbidden},
		{"behind a proxy, plain http on the host name", cookie("Origin", "http://chat.example", "Host", "chat.example"), http.StatusCreated},
		{"behind a proxy, another port of the host name", cookie("Origin", "http://chat.example:9999", "Host", "chat.example"), http.StatusForbidden},
		{"behind a proxy, https on another port", cookie("Origin", "https://chat.example:8443", "Host", "chat.example"), http.StatusForbidden},
		// A proxy that passes $host:$server_port names the default port,
		// which an origin leaves out.
		{"behind a proxy that passes port 443, https", cookie("Origin", "https://chat.example", "Host", "chat.example:443"), http.StatusCreated},
		{"behind a proxy that passes port 80, plain http", cookie("Origin", "http://chat.example", "Host", "chat.example:80"), http.StatusCreated},
		{"behind a proxy that passes port 443, plain http", cookie("Origin", "http://chat.example", "Host", "chat.example:443"), http.StatusForbidden},
		{"no Origin, the broker's own Referer", cookie("Referer", b.URL+"/"), http.StatusCreated},
		{"header token from a foreign Origin", http.Header{"Authorization": {"Bearer " + tok}, "Origin": {"https://evil.example"}}, http.StatusCreated},
	} {
		status, _, body := b.Do(t, "POST", "/v1/streams/"+st+"/messages", tc.header, "x")
		if status != tc.want {
			t.Errorf("publish, %s: %d %s; want %d", tc.name, status, body, tc.want)
		}
		if status == http.StatusForbidden && !strings.Contains(body, `"error":"forbidden"`) {
			t.Errorf("publish, %s: body %s; want the forbidden error", tc.name, body)
		}
		if status == http.StatusCreated {
			published++
		}
	}
	// Every other write with the cookie from a foreign origin is refused
	// alike, and changes nothing.
	evil := cookie("Origin", "https://evil.example")
	for _, call := range []struct{ method, path, body string }{
		{"POST", "/v1/streams/" + st + "/close", ""},
		{"DELETE", "/v1/streams/" + st, ""},
		{"POST", "/v1/streams", `{"prefix":"csrf-"}`},
		{"POST", "/v1/demo/chat", `{"stream":"` + st + `","message":"hi"}`},
	} {
		if status, _, body := b.Do(t, call.method, call.path, evil, call.body); status != http.StatusForbidden {
			t.Errorf("%s %s with the cookie from a foreign origin: %d %s; want 403", call.method, call.path, status, body)
		}
	}
	// Reading with the cookie from anywhere is CORS's business, not refused.
	status, _, body := b.Do(t, "GET", "/v1/streams/"+st, evil, "")
	if status != http.StatusOK {
		t.Fatalf("info with the cookie from a foreign origin: %d %s", status, body)
	}
	var info struct {
		Closed   bool `json:"closed"`
		Retained int  `json:"retained"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatal(err)
	}
	if info.Closed || info.Retained != published {
		t.Fatalf("after the refused writes the stream has %d events (closed %v); want the %d accepted ones, open", info.Retained, info.Closed, published)
	}
}

// A subscription ends, cleanly, when its token expires; the client then
// reconnects with a fresh token.
func TestAuthSubscriptionEndsAtExpiry(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Auth: hsVerifier(t), Heartbeat: 200 * time.Millisecond})
	admin := bearer(authHS(t, rights([]string{"*"}, []string{"*"})))
	const st = "exp-1"
	claims := rights(nil, []string{st})
	claims["exp"] = time.Now().Add(2 * time.Second).Unix() // 1 to 2 s ahead: exp has whole seconds
	tok := authHS(t, claims)

	start := time.Now()
	s := authSubscribe(t, b, "/v1/streams/"+st+"/events", bearer(tok))
	if status, _, body := b.Do(t, "POST", "/v1/streams/"+st+"/messages", admin, "live"); status != http.StatusCreated {
		t.Fatalf("publish: %d %s", status, body)
	}
	if d := nextData(t, s); d != "live" {
		t.Fatalf("data %q", d)
	}
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := s.dec.Next(); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("the response ended with %v, want a clean end", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the subscription outlived its token by more than 13 s")
	}
	elapsed := time.Since(start)
	t.Logf("subscription ended %v after it started", elapsed.Round(time.Millisecond))
	if elapsed < 500*time.Millisecond {
		t.Fatalf("the subscription ended after %v, before its token expired", elapsed)
	}

	// A fresh token subscribes again.
	s2 := authSubscribe(t, b, "/v1/streams/"+st+"/events", bearer(authHS(t, rights(nil, []string{st}))))
	if d := nextData(t, s2); d != "live" {
		t.Fatalf("data after reconnect %q", d)
	}
}

func TestAuthCreateStreamPrefix(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Auth: hsVerifier(t)})
	chat := bearer(authHS(t, rights([]string{"chat-*"}, nil)))
	chat.Set("Content-Type", "application/json")
	all := bearer(authHS(t, rights([]string{"*"}, nil)))
	exact := bearer(authHS(t, rights([]string{"chat-"}, []string{"*"})))

	create := func(h http.Header, body string) (int, string, string) {
		status, _, resBody := b.Do(t, "POST", "/v1/streams", h, body)
		var ans struct {
			Stream    string `json:"stream"`
			EventsURL string `json:"events_url"`
			Error     string `json:"error"`
		}
		_ = json.Unmarshal([]byte(resBody), &ans)
		if status == http.StatusCreated {
			if ans.EventsURL != "/v1/streams/"+ans.Stream+"/events" {
				t.Fatalf("events_url %q for %q", ans.EventsURL, ans.Stream)
			}
			return status, ans.Stream, ""
		}
		return status, "", ans.Error
	}

	status, id, _ := create(chat, `{"prefix":"chat-"}`)
	if status != http.StatusCreated || !strings.HasPrefix(id, "chat-") || len(id) < len("chat-")+20 {
		t.Fatalf("create with prefix chat-: %d %q", status, id)
	}
	// The creator may publish to it.
	if status, _, body := b.Do(t, "POST", "/v1/streams/"+id+"/messages", chat, `{"data":"x"}`); status != http.StatusCreated {
		t.Fatalf("publish to the created stream: %d %s", status, body)
	}
	if status, id, _ := create(chat, `{"prefix":"chat-room-"}`); status != http.StatusCreated || !strings.HasPrefix(id, "chat-room-") {
		t.Fatalf("create with a longer prefix: %d %q", status, id)
	}
	if status, id, _ := create(all, ""); status != http.StatusCreated || id == "" {
		t.Fatalf("create without a body, token *: %d %q", status, id)
	}
	if status, id, _ := create(all, `{}`); status != http.StatusCreated || id == "" {
		t.Fatalf("create with {}: %d %q", status, id)
	}
	for _, tt := range []struct {
		name   string
		h      http.Header
		body   string
		status int
		code   string
	}{
		{"no prefix, token chat-*", chat, "", 403, "forbidden"},
		{"other prefix", chat, `{"prefix":"news-"}`, 403, "forbidden"},
		{"prefix shorter than the pattern", chat, `{"prefix":"chat"}`, 403, "forbidden"},
		{"exact pattern", exact, `{"prefix":"chat-"}`, 403, "forbidden"},
		{"invalid JSON", chat, `{"prefix":`, 400, "invalid_json"},
		{"prefix not a string", chat, `{"prefix":5}`, 400, "invalid_request"},
		{"unknown member", chat, `{"prefix":"chat-","x":1}`, 400, "invalid_request"},
		{"prefix with slash", chat, `{"prefix":"chat/"}`, 400, "invalid_request"},
		{"prefix with space", chat, `{"prefix":"chat "}`, 400, "invalid_request"},
		{"prefix too long", all, `{"prefix":"` + strings.Repeat("a", 101) + `"}`, 400, "invalid_request"},
		{"no token", nil, `{"prefix":"chat-"}`, 401, "unauthorized"},
	} {
		if status, _, code := create(tt.h, tt.body); status != tt.status || code != tt.code {
			t.Errorf("%s: %d %q, want %d %q", tt.name, status, code, tt.status, tt.code)
		}
	}
	if status, id, _ := create(all, `{"prefix":"`+strings.Repeat("a", 100)+`"}`); status != http.StatusCreated || len(id) > 128 {
		t.Fatalf("create with a 100-character prefix: %d %q", status, id)
	}
}

// With auth off, a prefix only names the stream.
func TestCreateStreamPrefixWithoutAuth(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	status, _, body := b.Do(t, "POST", "/v1/streams", jsonHeader, `{"prefix":"chat-"}`)
	var ans struct{ Stream string }
	mustJSON(t, body, &ans)
	if status != http.StatusCreated || !strings.HasPrefix(ans.Stream, "chat-") {
		t.Fatalf("create with prefix and auth off: %d %s", status, body)
	}
	if status, _, body := b.Do(t, "POST", "/v1/streams", jsonHeader, `{"prefix":"a b"}`); status != http.StatusBadRequest {
		t.Fatalf("bad prefix with auth off: %d %s", status, body)
	}
}

// With auth on the demo publishes only with a publish right on the stream.
func TestAuthDemoChatNeedsPublishRight(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Auth: hsVerifier(t), DemoTokenDelay: time.Millisecond})
	admin := bearer(authHS(t, rights([]string{"*"}, []string{"*"})))
	subOnly := bearer(authHS(t, rights(nil, []string{"*"})))
	pub := bearer(authHS(t, rights([]string{"demo-*"}, nil)))
	body := func(s string) string { return `{"stream":"` + s + `","message":"hello"}` }

	for name, h := range map[string]http.Header{"no token": nil, "subscribe only": subOnly, "publish elsewhere": pub} {
		s := "denied-" + strings.ReplaceAll(name, " ", "-")
		status, _, resBody := b.Do(t, "POST", "/v1/demo/chat", h, body(s))
		if want := map[bool]int{true: 401, false: 403}[h == nil]; status != want {
			t.Fatalf("%s: %d %s, want %d", name, status, resBody, want)
		}
		time.Sleep(50 * time.Millisecond)
		if status, _, resBody := b.Do(t, "GET", "/v1/streams/"+s, admin, ""); status != http.StatusNotFound {
			t.Fatalf("%s: the demo published anyway: %d %s", name, status, resBody)
		}
	}
	if status, _, resBody := b.Do(t, "POST", "/v1/demo/chat", pub, body("demo-1")); status != http.StatusAccepted {
		t.Fatalf("demo with a publish right: %d %s", status, resBody)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, info := b.Do(t, "GET", "/v1/streams/demo-1", admin, "")
		if strings.Contains(info, `"closed":true`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo answer did not finish: %s", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a log sink safe for the broker's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tokens never reach the log, at any level, whether the request succeeds
// or fails, and wherever the token came from.
func TestAuthTokensNeverLogged(t *testing.T) {
	var logs syncBuffer
	b := testbroker.Start(t, testbroker.Options{Auth: hsVerifier(t), Log: &logs})
	now := time.Now()
	tokens := map[string]string{
		"valid":     authHS(t, rights([]string{"log-*"}, []string{"log-*"})),
		"forbidden": authHS(t, rights([]string{"other"}, []string{"other"})),
		"expired":   authHS(t, jwt.MapClaims{"exp": now.Add(-time.Hour).Unix(), "streams": map[string]any{"publish": []string{"*"}}}),
		"future":    authHS(t, jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()}),
		"bad sig":   authSign(t, jwt.SigningMethodHS256, []byte("wrong-secret-wrong-secret-wrong!"), rights([]string{"*"}, nil)),
		"none":      authSign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, rights([]string{"*"}, nil)),
		"malformed": authHS(t, jwt.MapClaims{"streams": "log-*"}),
		"garbage":   "garbage-token-value-0123456789",
	}
	for name, tok := range tokens {
		for _, req := range []struct {
			method, path string
			header       http.Header
			body         string
		}{
			{"GET", "/v1/streams/log-1/events?lastEventId=0&access_token=" + tok, nil, ""},
			{"GET", "/v1/streams/log-1/events?access_token=" + tok + "&lastEventId=bad", nil, ""},
			{"GET", "/v1/streams/log-1/messages?access_token=" + tok + "&limit=-1", nil, ""},
			{"POST", "/v1/streams/log-1/messages?access_token=" + tok, nil, "x"},
			{"POST", "/v1/streams/log-1/messages?access_token=" + tok + "&event=stop", nil, "x"},
			{"GET", "/v1/streams/..?access_token=" + tok, nil, ""},
			{"GET", "/v1/streams/log-1", http.Header{"Cookie": {"access_token=" + tok}}, ""},
			{"DELETE", "/v1/streams/log-none", bearer(tok), ""},
			{"POST", "/v1/streams", bearer(tok), `{"prefix":"log-"}`},
			{"POST", "/v1/demo/chat?access_token=" + tok, nil, `{"stream":"log-2","message":"hi"}`},
			{"GET", "/v1/nowhere?access_token=" + tok, nil, ""},
			{"PUT", "/v1/streams/log-1?access_token=" + tok, nil, ""},
		} {
			method, path := req.method, req.path
			if strings.Contains(path, "/events") && name == "valid" && !strings.Contains(path, "=bad") {
				// A live subscription: answered 200, then the client goes.
				authSubscribe(t, b, path, nil).close()
				continue
			}
			status, _, _ := b.Do(t, method, path, req.header, req.body)
			if status == 0 {
				t.Fatalf("%s %s: no answer", method, path)
			}
		}
		_ = name
	}
	time.Sleep(200 * time.Millisecond) // let the access log lines of ended subscriptions land
	out := logs.String()
	if !strings.Contains(out, `"path":"/v1/streams/log-1/events"`) || !strings.Contains(out, "request not authenticated") {
		t.Fatalf("the log capture did not see the requests; log:\n%s", out)
	}
	for name, tok := range tokens {
		parts := strings.Split(tok, ".")
		for _, p := range append(parts, tok) {
			if len(p) < 16 {
				continue // a short header part like "eyJhbGciOiJub25lIn0" is still checked via the whole token
			}
			if strings.Contains(out, p) {
				t.Fatalf("the %s token (or a part of it) appears in the log:\n%s", name, out)
			}
		}
	}
	if strings.Contains(out, "access_token") {
		t.Fatalf("the log mentions access_token:\n%s", out)
	}
}

// With auth on, one token subject streams at most four demo answers at
// once, so it cannot take every place of the demo from the others; a place
// comes back when its answer ends. Without auth there is no such cap:
// behind a proxy every visitor has the proxy's address.
func TestDemoAnswersPerClient(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Auth: hsVerifier(t), DemoTokenDelay: 100 * time.Millisecond})
	claims := func(sub string) jwt.MapClaims {
		c := rights([]string{"*"}, []string{"*"})
		c["sub"] = sub
		return c
	}
	alice, bob := bearer(authHS(t, claims("alice"))), bearer(authHS(t, claims("bob")))
	ask := func(h http.Header, stream string) (int, string) {
		status, _, body := b.Do(t, "POST", "/v1/demo/chat", h, `{"stream":"`+stream+`","message":"hello"}`)
		return status, body
	}
	for i := range 4 {
		if status, body := ask(alice, fmt.Sprintf("alice-%d", i)); status != http.StatusAccepted {
			t.Fatalf("alice's answer %d: %d %s", i+1, status, body)
		}
	}
	if status, body := ask(alice, "alice-4"); status != http.StatusTooManyRequests || !strings.Contains(body, "4 of your demo answers are streaming") {
		t.Fatalf("alice's 5th answer at once: %d %s, want 429", status, body)
	}
	if status, body := ask(bob, "bob-0"); status != http.StatusAccepted {
		t.Fatalf("bob while alice has four: %d %s", status, body)
	}
	open := testbroker.Start(t, testbroker.Options{DemoTokenDelay: 100 * time.Millisecond})
	for i := range 6 { // all from 127.0.0.1, as visitors behind a proxy are
		status, _, body := open.Do(t, "POST", "/v1/demo/chat", nil, fmt.Sprintf(`{"stream":"visitor-%d","message":"hi"}`, i))
		if status != http.StatusAccepted {
			t.Fatalf("visitor %d without auth: %d %s", i+1, status, body)
		}
	}
	// Once alice's first answer has closed its stream, she has a place again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, _, info := b.Do(t, "GET", "/v1/streams/alice-0", alice, ""); strings.Contains(info, `"closed":true`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alice's first answer did not finish")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitFor := time.Now().Add(5 * time.Second)
	for {
		status, body := ask(alice, "alice-5")
		if status == http.StatusAccepted {
			break
		}
		if time.Now().After(waitFor) {
			t.Fatalf("alice after an answer ended: %d %s", status, body)
		}
		time.Sleep(20 * time.Millisecond) // the place is given back just after the close
	}
}

// On an HTTPS broker a page of plain http:// on the broker's host name
// (which anyone on the network can alter) or another port or scheme is
// not the broker's origin: a cookie write from it is refused.
func TestAuthCookieWriteOriginOverTLS(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Auth: hsVerifier(t)})
	ts := httptest.NewUnstartedServer(b.API)
	ts.StartTLS()
	defer ts.Close()
	tok := authHS(t, rights([]string{"*"}, []string{"*"}))
	for origin, want := range map[string]int{
		"http://127.0.0.1": http.StatusForbidden, "http://127.0.0.1:8081": http.StatusForbidden, "ws://127.0.0.1": http.StatusForbidden,
		strings.Replace(ts.URL, "https:", "http:", 1): http.StatusForbidden,
		ts.URL: http.StatusCreated,
	} {
		req, err := http.NewRequest("POST", ts.URL+"/v1/streams/o/messages", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Cookie", "access_token="+tok)
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Origin", origin)
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("HTTPS broker %s, cookie write from Origin %s: %d, want %d", ts.URL, origin, res.StatusCode, want)
		}
	}
}

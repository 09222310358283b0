package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sse-broker/broker/pkg/auth"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pemOf(t testing.TB, typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkix(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PUBLIC KEY", der)
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, stream string
		want            bool
	}{
		{"chat-42", "chat-42", true},
		{"chat-42", "chat-421", false},
		{"chat-42", "Chat-42", false},
		{"*", "anything", true},
		{"*", "", true},
		{"chat-*", "chat-", true},
		{"chat-*", "chat-42", true},
		{"chat-*", "chat", false},
		{"*-42", "chat-42", true},
		{"*-42", "chat-43", false},
		{"c*t-*2", "chat-42", true},
		{"c*t-*2", "chat-43", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "acb", false},
		{"ab*ba", "aba", false}, // prefix and suffix must not overlap
		{"ab*ba", "abba", true},
		{"**", "x", true},
		{"a**b", "ab", true},
		{"a*a*a", "aa", false},
		{"a*a*a", "aaa", true},
		{"", "", true},
		{"", "x", false},
		{"a.b", "aXb", false}, // no regexp metacharacters
		{"a?b", "aXb", false},
		{"[ab]", "a", false},
	}
	for _, tt := range tests {
		if got := auth.Match(tt.pattern, tt.stream); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.stream, got, tt.want)
		}
	}
}

// Adversarial patterns that make a backtracking matcher exponential stay
// fast.
func TestMatchAdversarial(t *testing.T) {
	stream := strings.Repeat("a", 100_000)
	pattern := strings.Repeat("a*", 500) + "b"
	start := time.Now()
	for range 10 {
		if auth.Match(pattern, stream) {
			t.Fatal("matched")
		}
		if auth.Match("a*a*a*a*a*a*a*a*a*b", stream) {
			t.Fatal("matched")
		}
		if !auth.Match(strings.Repeat("*a", 500)+"*", stream) {
			t.Fatal("did not match")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("adversarial matches took %v", d)
	}
}

func TestAllows(t *testing.T) {
	c := auth.Claims{Publish: []string{"chat-*", "news"}, Subscribe: []string{"chat-42"}}
	for _, tt := range []struct {
		right  auth.Right
		stream string
		want   bool
	}{
		{auth.Publish, "chat-1", true},
		{auth.Publish, "news", true},
		{auth.Publish, "news-2", false},
		{auth.Subscribe, "chat-42", true},
		{auth.Subscribe, "chat-1", false},
		{auth.Subscribe, "news", false},
		{auth.Right(9), "chat-1", false},
	} {
		if got := c.Allows(tt.right, tt.stream); got != tt.want {
			t.Errorf("Allows(%v, %q) = %v, want %v", tt.right, tt.stream, got, tt.want)
		}
	}
	if (auth.Claims{}).Allows(auth.Publish, "x") {
		t.Error("empty claims allow")
	}
	for _, tt := range []struct {
		patterns []string
		prefix   string
		want     bool
	}{
		{[]string{"chat-*"}, "chat-", true},
		{[]string{"chat-*"}, "chat-room-", true},
		{[]string{"ch*"}, "chat-", true},
		{[]string{"*"}, "", true},
		{[]string{"*-*"}, "chat-", true},
		{[]string{"chat-*"}, "", false},
		{[]string{"chat-*"}, "news-", false},
		{[]string{"chat-x*"}, "chat-", false}, // not every random part starts with x
		{[]string{"chat-*", "chat-"}, "chat", false},
		{[]string{"chat-"}, "chat-", false}, // an exact id never covers a random part
		{nil, "", false},
	} {
		c := auth.Claims{Publish: tt.patterns}
		if got := c.AllowsPrefix(auth.Publish, tt.prefix); got != tt.want {
			t.Errorf("AllowsPrefix(%q) with %q = %v, want %v", tt.prefix, tt.patterns, got, tt.want)
		}
	}
}

func TestVerifyHS256(t *testing.T) {
	v, err := auth.NewVerifier("HS256", secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	exp := now.Add(time.Hour).Truncate(time.Second)
	tok := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{
		"sub": "svc", "exp": exp.Unix(), "nbf": now.Add(-time.Minute).Unix(),
		"streams": map[string]any{"publish": []string{"chat-*"}, "subscribe": []string{"chat-42"}, "admin": true},
	})
	c, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "svc" || !c.ExpiresAt.Equal(exp) ||
		len(c.Publish) != 1 || c.Publish[0] != "chat-*" || len(c.Subscribe) != 1 || c.Subscribe[0] != "chat-42" {
		t.Fatalf("claims %+v", c)
	}

	// No exp: never expires. No streams: valid, no rights.
	c, err = v.Verify(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "x"}))
	if err != nil || !c.ExpiresAt.IsZero() || c.Publish != nil || c.Subscribe != nil {
		t.Fatalf("token without exp and streams: %+v, %v", c, err)
	}
	// Claims the broker does not read may come in any case, and twice.
	c, err = v.Verify(signRaw(t, `{"alg":"HS256"}`, `{"streams":{"subscribe":["own-1"],"Other":1,"other":2,"other":3},"Name":"a","name":"b"}`))
	if err != nil || !c.Allows(auth.Subscribe, "own-1") || c.Allows(auth.Subscribe, "x") {
		t.Fatalf("a token with unknown claims: %+v, %v", c, err)
	}
	for _, streams := range []any{nil, map[string]any{}, map[string]any{"publish": nil}} {
		c, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"streams": streams}))
		if err != nil || c.Allows(auth.Publish, "x") || c.Allows(auth.Subscribe, "x") {
			t.Fatalf("streams %v: %+v, %v", streams, c, err)
		}
	}

	// No clock skew (SPEC.md: an expired or not-yet-valid token is 401):
	// a token that expired two seconds ago, or is valid two seconds from
	// now, is refused.
	for name, claims := range map[string]jwt.MapClaims{
		"expired 2 s ago":    {"exp": now.Add(-2 * time.Second).Unix()},
		"valid in 2 s (nbf)": {"nbf": now.Add(2 * time.Second).Unix()},
	} {
		if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret, claims)); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("%s: %v, want ErrInvalidToken", name, err)
		}
	}

	bad := map[string]string{
		"empty":          "",
		"garbage":        "not.a.jwt",
		"two segments":   "eyJhbGciOiJIUzI1NiJ9.e30",
		"expired":        sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()}),
		"not yet valid":  sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"nbf": now.Add(time.Minute).Unix()}),
		"wrong secret":   sign(t, jwt.SigningMethodHS256, []byte("another secret, 32 bytes long!!!"), jwt.MapClaims{}),
		"HS384":          sign(t, jwt.SigningMethodHS384, secret, jwt.MapClaims{}),
		"HS512":          sign(t, jwt.SigningMethodHS512, secret, jwt.MapClaims{}),
		"alg none":       sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"streams": map[string]any{"publish": []string{"*"}}}),
		"alg none hand":  unsignedToken(`{"alg":"none","typ":"JWT"}`, `{"streams":{"publish":["*"]}}`),
		"alg NONE hand":  unsignedToken(`{"alg":"NONE"}`, `{}`),
		"streams string": sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"streams": "chat-*"}),
		"publish string": sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"streams": map[string]any{"publish": "chat-*"}}),
		"publish number": sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"streams": map[string]any{"publish": []any{1}}}),
		"exp string":     sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": "tomorrow"}),
		"sub number":     sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": 5}),
		"tampered":       tamper(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"streams": map[string]any{"publish": []string{"a"}}})),
		// Claims encoding/json would read other than as written: in
		// another case, or twice with the last winning.
		"STREAMS beside streams":     signRaw(t, `{"alg":"HS256"}`, `{"streams":{"subscribe":["own-1"]},"STREAMS":{"subscribe":["*"]}}`),
		"Subscribe beside subscribe": signRaw(t, `{"alg":"HS256"}`, `{"streams":{"subscribe":["own-1"],"Subscribe":["*"]}}`),
		"subscribe twice":            signRaw(t, `{"alg":"HS256"}`, `{"streams":{"subscribe":["own-1"],"subscribe":["*"]}}`),
		"sub twice":                  signRaw(t, `{"alg":"HS256"}`, `{"sub":"a","sub":"b"}`),
		"Exp":                        signRaw(t, `{"alg":"HS256"}`, `{"Exp":1}`),
		"Nbf":                        signRaw(t, `{"alg":"HS256"}`, `{"Nbf":1}`),
		"nbf twice, the last past":   signRaw(t, `{"alg":"HS256"}`, `{"nbf":4102444800,"nbf":1}`),
		"Iss":                        signRaw(t, `{"alg":"HS256"}`, `{"Iss":"x"}`),
		"Aud":                        signRaw(t, `{"alg":"HS256"}`, `{"Aud":"x"}`),
		"Iat":                        signRaw(t, `{"alg":"HS256"}`, `{"Iat":1}`),
		"Jti":                        signRaw(t, `{"alg":"HS256"}`, `{"Jti":"x"}`),
		"payload not UTF-8":          signRaw(t, `{"alg":"HS256"}`, "{\"sub\":\"a\xff\"}"), // decoded, "a\uFFFD"
		"data after the claims":      signRaw(t, `{"alg":"HS256"}`, `{"sub":"a"} {"sub":"b"}`),
		// RFC 7515 4.1.11: critical extensions the verifier does not know.
		"crit": signRaw(t, `{"alg":"HS256","crit":["b64"],"b64":false}`, `{}`),
	}
	for name, tok := range bad {
		_, err := v.Verify(tok)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		want := auth.ErrInvalidToken
		if tok == "" {
			want = auth.ErrNoToken
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: error %v is not %v", name, err, want)
		}
		if tok != "" && strings.Contains(err.Error(), tok) {
			t.Errorf("%s: the error contains the token", name)
		}
	}
	for name, want := range map[string]string{"expired": "expired", "not yet valid": "not valid yet", "HS384": "signature or algorithm", "alg none": "signature or algorithm", "wrong secret": "signature"} {
		if _, err := v.Verify(bad[name]); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to say %q", name, err, want)
		}
	}
}

// signRaw builds a token by hand from the JSON texts of its header and
// payload, signed with HS256 and secret.
func signRaw(t *testing.T, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(header)) + "." + enc([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, secret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc(sig)
}

// unsignedToken builds a token by hand, with an empty signature.
func unsignedToken(header, payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(payload)) + "."
}

// tamper widens the token's claims and keeps its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"streams":{"publish":["*"]}}`))
	return strings.Join(parts, ".")
}

func TestVerifyAsymmetric(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)

	claims := jwt.MapClaims{"sub": "k", "exp": time.Now().Add(time.Hour).Unix(), "streams": map[string]any{"publish": []string{"*"}}}
	rsaPEM := pkix(t, &rsaKey.PublicKey)
	tests := []struct {
		alg     string
		pub     []byte
		method  jwt.SigningMethod
		key     any
		other   any
		confuse []byte // the public key bytes an attacker uses as an HMAC secret
	}{
		{"RS256", rsaPEM, jwt.SigningMethodRS256, rsaKey, otherRSA, rsaPEM},
		{"RS256", pemOf(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)), jwt.SigningMethodRS256, rsaKey, otherRSA, rsaPEM},
		{"ES256", pkix(t, &ecKey.PublicKey), jwt.SigningMethodES256, ecKey, otherEC, pkix(t, &ecKey.PublicKey)},
		{"EdDSA", pkix(t, edPub), jwt.SigningMethodEdDSA, edKey, otherEd, pkix(t, edPub)},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			v, err := auth.NewVerifier(tt.alg, nil, tt.pub)
			if err != nil {
				t.Fatal(err)
			}
			if v.Algorithm() != tt.alg {
				t.Fatalf("Algorithm() = %q", v.Algorithm())
			}
			c, err := v.Verify(sign(t, tt.method, tt.key, claims))
			if err != nil || c.Subject != "k" || !c.Allows(auth.Publish, "x") {
				t.Fatalf("valid token: %+v, %v", c, err)
			}
			for name, tok := range map[string]string{
				"other key":           sign(t, tt.method, tt.other, claims),
				"algorithm confusion": sign(t, jwt.SigningMethodHS256, tt.confuse, claims),
				"HS256 with DER":      sign(t, jwt.SigningMethodHS256, []byte(strings.TrimSpace(string(tt.pub))), claims),
				"alg none":            sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims),
				"RS512 with the key":  signIf(t, tt.alg == "RS256", jwt.SigningMethodRS512, tt.key, claims),
				"PS256 with the key":  signIf(t, tt.alg == "RS256", jwt.SigningMethodPS256, tt.key, claims),
				"ES384":               sign(t, jwt.SigningMethodES384, mustEC(t, elliptic.P384()), claims),
			} {
				if tok == "" {
					continue
				}
				if _, err := v.Verify(tok); !errors.Is(err, auth.ErrInvalidToken) {
					t.Errorf("%s: error %v, want ErrInvalidToken", name, err)
				}
			}
		})
	}

	// A certificate's public key works too.
	tmpl := &x509.Certificate{SerialNumber: bigOne(), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey.PublicKey, ecKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier("ES256", nil, pemOf(t, "CERTIFICATE", der))
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	if _, err := v.Verify(sign(t, jwt.SigningMethodES256, ecKey, claims)); err != nil {
		t.Fatalf("certificate: %v", err)
	}
}

func signIf(t testing.TB, ok bool, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	if !ok {
		return ""
	}
	return sign(t, m, key, claims)
}

func mustEC(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewVerifierRefusesBadKeys(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	smallRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	ecKey := mustEC(t, elliptic.P256())
	p384 := mustEC(t, elliptic.P384())
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPrivDER, _ := x509.MarshalECPrivateKey(ecKey)

	tests := []struct {
		name   string
		alg    string
		secret []byte
		pub    []byte
		inMsg  string
	}{
		{"unknown algorithm", "HS384", secret, nil, "not supported"},
		{"none", "none", nil, nil, "not supported"},
		{"lowercase", "hs256", secret, nil, "not supported"},
		{"empty secret", "HS256", nil, nil, "non-empty secret"},
		{"HS256 with key", "HS256", secret, pkix(t, &rsaKey.PublicKey), "not a public key"},
		{"RS256 with secret", "RS256", secret, nil, "not a secret"},
		{"empty key file", "RS256", nil, []byte("\n"), "empty"},
		{"not PEM", "RS256", nil, []byte("hello"), "no PEM public key"},
		{"bad DER", "RS256", nil, pemOf(t, "PUBLIC KEY", []byte{1, 2, 3}), "parsing"},
		{"RSA key with ES256", "ES256", nil, pkix(t, &rsaKey.PublicKey), "RSA key"},
		{"RSA key with EdDSA", "EdDSA", nil, pkix(t, &rsaKey.PublicKey), "RSA key"},
		{"EC key with RS256", "RS256", nil, pkix(t, &ecKey.PublicKey), "ECDSA key"},
		{"P-384 key with ES256", "ES256", nil, pkix(t, &p384.PublicKey), "P-384"},
		{"Ed25519 key with ES256", "ES256", nil, pkix(t, edPub), "Ed25519"},
		{"small RSA key", "RS256", nil, pkix(t, &smallRSA.PublicKey), "1024 bits"},
		{"private key", "ES256", nil, pemOf(t, "EC PRIVATE KEY", ecPrivDER), "public key"},
		{"PKCS8 private key", "EdDSA", nil, pemOf(t, "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(edPriv))), "public key"},
	}
	for _, tt := range tests {
		v, err := auth.NewVerifier(tt.alg, tt.secret, tt.pub)
		if err == nil || v != nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.inMsg) {
			t.Errorf("%s: error %q does not say %q", tt.name, err, tt.inMsg)
		}
	}
	// A short HS256 secret is allowed (the configuration warns).
	if _, err := auth.NewVerifier("HS256", []byte("short"), nil); err != nil {
		t.Errorf("short secret: %v", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestExtractToken(t *testing.T) {
	tests := []struct {
		name       string
		header     []string
		query      string
		cookie     string
		want, from string
	}{
		{"nothing", nil, "", "", "", ""},
		{"bearer", []string{"Bearer h.h.h"}, "", "", "h.h.h", "header"},
		{"bearer lower case", []string{"bearer h.h.h"}, "", "", "h.h.h", "header"},
		{"bearer wins", []string{"Bearer h.h.h"}, "q.q.q", "c.c.c", "h.h.h", "header"},
		{"query", nil, "q.q.q", "c.c.c", "q.q.q", "query"},
		{"cookie", nil, "", "c.c.c", "c.c.c", "cookie"},
		{"empty query falls to cookie", nil, "", "c.c.c", "c.c.c", "cookie"},
		{"basic is passed over", []string{"Basic dXNlcjpwYXNz"}, "q.q.q", "", "q.q.q", "query"},
		{"basic and bearer", []string{"Basic dXNlcjpwYXNz", "Bearer h.h.h"}, "q.q.q", "", "h.h.h", "header"},
		{"basic alone", []string{"Basic dXNlcjpwYXNz"}, "", "", "", ""},
		{"bearer without token", []string{"Bearer"}, "q.q.q", "", "", "header"},
		{"bearer with blank", []string{"Bearer   "}, "q.q.q", "", "", "header"},
		{"two tokens", []string{"Bearer a b"}, "", "", "", "header"},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", "", "", "header"},
		// RFC 9110 lets a tab separate the scheme: still the header's
		// token, never passed over for the cookie.
		{"tab after bearer", []string{"Bearer\th.h.h"}, "", "c.c.c", "h.h.h", "header"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/v1/streams/s/events", nil)
		if tt.query != "" {
			r.URL.RawQuery = "access_token=" + tt.query
		} else if tt.name == "empty query falls to cookie" {
			r.URL.RawQuery = "access_token="
		}
		for _, h := range tt.header {
			r.Header.Add("Authorization", h)
		}
		if tt.cookie != "" {
			r.AddCookie(&http.Cookie{Name: "access_token", Value: tt.cookie})
		}
		tok, from := auth.ExtractToken(r)
		if tok != tt.want || from != tt.from {
			t.Errorf("%s: got (%q, %q), want (%q, %q)", tt.name, tok, from, tt.want, tt.from)
		}
	}
}

func TestContext(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if _, ok := auth.FromContext(r.Context()); ok {
		t.Fatal("claims in an empty context")
	}
	ctx := auth.NewContext(r.Context(), auth.Claims{Subject: "s"})
	if c, ok := auth.FromContext(ctx); !ok || c.Subject != "s" {
		t.Fatalf("FromContext = %+v, %v", c, ok)
	}
}

func bigOne() *big.Int { return big.NewInt(1) }

// An "nbf" (or "exp") too large for a time.Time used to wrap around when
// golang-jwt converted it (int64(1e19) is the most negative int64), so a
// token not valid for billions of years was valid now. Such a time is
// refused as not valid.
func TestVerifyRefusesTimesBeyondRange(t *testing.T) {
	v, err := auth.NewVerifier("HS256", secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, payload := range []string{
		`{"nbf":1e19}`, `{"nbf":9.3e18}`, `{"nbf":1e300}`, `{"nbf":1e400}`, `{"nbf":"99999999999999999999"}`,
		`{"nbf":9e18}`, `{"exp":1e19}`, `{"exp":-1e19}`, `{"nbf":-1e19}`, `{"\u006ebf":1e19}`,
	} {
		if _, err := v.Verify(signRaw(t, `{"alg":"HS256"}`, payload)); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", payload, err)
		}
	}
	for _, payload := range []string{`{"exp":9e18}`, `{"nbf":-9e18}`, `{"exp":"4102444800","nbf":1}`} {
		if _, err := v.Verify(signRaw(t, `{"alg":"HS256"}`, payload)); err != nil {
			t.Errorf("%s: %v, want it valid", payload, err)
		}
	}
}

package auth_test

import (
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/auth"
)

func pkcs8(t testing.TB, priv any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PRIVATE KEY", der)
}

// Every algorithm: a minted token is accepted by the Verifier built from
// the matching key, with the claims it was minted with.
func TestMintedTokenVerifies(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey := mustEC(t, elliptic.P256())
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, alg        string
		secret, priv     []byte
		verifierSecret   []byte
		verifierPublicPM []byte
	}{
		{"HS256", auth.HS256, secret, nil, secret, nil},
		{"RS256 PKCS #8", auth.RS256, nil, pkcs8(t, rsaKey), nil, pkix(t, &rsaKey.PublicKey)},
		{"RS256 PKCS #1", auth.RS256, nil, pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), nil, pkix(t, &rsaKey.PublicKey)},
		{"ES256 PKCS #8", auth.ES256, nil, pkcs8(t, ecKey), nil, pkix(t, &ecKey.PublicKey)},
		{"ES256 SEC 1", auth.ES256, nil, pemOf(t, "EC PRIVATE KEY", ecDER), nil, pkix(t, &ecKey.PublicKey)},
		{"EdDSA", auth.EdDSA, nil, pkcs8(t, edPriv), nil, pkix(t, edPub)},
	}
	now := time.Now()
	want := auth.Claims{
		Subject:   "ops",
		ExpiresAt: now.Add(time.Hour).Truncate(time.Second),
		Publish:   []string{"chat-*", "news"},
		Subscribe: []string{"chat-42"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := auth.NewSigner(tc.alg, tc.secret, tc.priv)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := s.Mint(want, now)
			if err != nil {
				t.Fatal(err)
			}
			v, err := auth.NewVerifier(tc.alg, tc.verifierSecret, tc.verifierPublicPM)
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != want.Subject || !got.ExpiresAt.Equal(want.ExpiresAt) ||
				!slices.Equal(got.Publish, want.Publish) || !slices.Equal(got.Subscribe, want.Subscribe) {
				t.Fatalf("verified claims %+v, minted %+v", got, want)
			}
			if !got.Allows(auth.Publish, "chat-7") || got.Allows(auth.Subscribe, "chat-7") {
				t.Fatal("the minted patterns do not grant what they say")
			}
		})
	}
}

// The payload is exactly the documented shape: sub, iat, exp, and both
// pattern lists, present even when empty.
func TestMintedPayloadShape(t *testing.T) {
	s, err := auth.NewSigner(auth.HS256, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	tok, err := s.Mint(auth.Claims{ExpiresAt: now.Add(time.Minute), Subscribe: []string{"a"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%d parts", len(parts))
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if !strings.Contains(string(header), `"alg":"HS256"`) {
		t.Fatalf("header %s", header)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"exp":1700000060,"iat":1700000000,"streams":{"publish":[],"subscribe":["a"]}}`
	if string(payload) != want {
		t.Fatalf("payload %s, want %s", payload, want)
	}
}

func TestNewSignerRefusesBadKeys(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384 := mustEC(t, elliptic.P384())
	ecKey := mustEC(t, elliptic.P256())
	tests := []struct {
		name, alg    string
		secret, priv []byte
		want         string
	}{
		{"HS256 without secret", auth.HS256, nil, nil, "non-empty secret"},
		{"HS256 with a key", auth.HS256, secret, pkcs8(t, ecKey), "not a private key"},
		{"ES256 with a secret", auth.ES256, secret, nil, "not a secret"},
		{"public key", auth.ES256, nil, pkix(t, &ecKey.PublicKey), "needs the private key"},
		{"empty file", auth.ES256, nil, []byte("\n"), "file is empty"},
		{"no PEM", auth.ES256, nil, []byte("hello"), "no PEM private key"},
		{"wrong type", auth.RS256, nil, pkcs8(t, ecKey), "does not fit RS256"},
		{"small RSA", auth.RS256, nil, pkcs8(t, small), "1024 bits"},
		{"P-384", auth.ES256, nil, pkcs8(t, p384), "P-256"},
		{"none", "none", nil, nil, "not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auth.NewSigner(tc.alg, tc.secret, tc.priv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// A token must expire: Mint refuses an expiry at or before issue, and one
// within the same second (exp counts whole seconds, so such a token would
// be refused as expired the moment it is minted).
func TestMintRefusesNoExpiry(t *testing.T) {
	s, err := auth.NewSigner(auth.HS256, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_800_000_000, 900e6) // 0.9 s into a second
	for _, exp := range []time.Time{{}, at, at.Add(-time.Second), at.Add(50 * time.Millisecond)} {
		if _, err := s.Mint(auth.Claims{ExpiresAt: exp}, at); err == nil {
			t.Fatalf("minted a token expiring at %v", exp)
		}
	}
	if _, err := s.Mint(auth.Claims{ExpiresAt: at.Add(200 * time.Millisecond)}, at); err != nil {
		t.Fatalf("exp in the next second: %v", err)
	}
	now := time.Now()
	// An expired token, minted on purpose with an old now, is refused by the verifier.
	old := now.Add(-2 * time.Hour)
	tok, err := s.Mint(auth.Claims{ExpiresAt: old.Add(time.Hour)}, old)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := auth.NewVerifier(auth.HS256, secret, nil)
	if _, err := v.Verify(tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("expired token: %v", err)
	}
}

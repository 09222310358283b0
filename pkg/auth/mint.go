package auth

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Signer mints tokens of the shape Verifier checks. It exists for
// operations and tests (`broker token`): services that grant access
// normally mint their own tokens with their own JWT library.
type Signer struct {
	alg    string
	method jwt.SigningMethod
	key    any // []byte, *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey
}

// NewSigner builds a Signer for alg: HS256 takes secret; RS256, ES256 and
// EdDSA take privateKeyPEM, a PEM "PRIVATE KEY" (PKCS #8), "RSA PRIVATE
// KEY" (PKCS #1) or "EC PRIVATE KEY" (SEC 1) block. The same rules as
// NewVerifier apply to the key (RSA of at least 2048 bits, P-256 for
// ES256), so that a token it mints is one the broker can accept.
func NewSigner(alg string, secret []byte, privateKeyPEM []byte) (*Signer, error) {
	s := &Signer{alg: alg}
	switch alg {
	case HS256:
		if len(privateKeyPEM) > 0 {
			return nil, errors.New("HS256 takes a secret, not a private key")
		}
		if len(secret) == 0 {
			return nil, errors.New("HS256 needs a non-empty secret")
		}
		s.method, s.key = jwt.SigningMethodHS256, append([]byte(nil), secret...)
	case RS256, ES256, EdDSA:
		if len(secret) > 0 {
			return nil, fmt.Errorf("%s takes a private key, not a secret", alg)
		}
		key, err := parsePrivateKey(alg, privateKeyPEM)
		if err != nil {
			return nil, err
		}
		s.key = key
		s.method = map[string]jwt.SigningMethod{
			RS256: jwt.SigningMethodRS256, ES256: jwt.SigningMethodES256, EdDSA: jwt.SigningMethodEdDSA,
		}[alg]
	default:
		return nil, fmt.Errorf("algorithm %q is not supported; use HS256, RS256, ES256 or EdDSA", alg)
	}
	return s, nil
}

// Mint signs a token for c.Subject with c.Publish and c.Subscribe as its
// "streams" claim, issued at now and expiring at c.ExpiresAt, which must be
// in a later second than now (exp counts whole seconds and is checked with
// no skew): a token that never expires is easy to mint by mistake and
// impossible to take back.
func (s *Signer) Mint(c Claims, now time.Time) (string, error) {
	if c.ExpiresAt.Unix() <= now.Unix() {
		return "", errors.New("the token must expire at least a second after it is issued")
	}
	// Both pattern lists are always present (possibly empty) so that the
	// token says plainly what it grants.
	claims := jwt.MapClaims{
		"iat": now.Unix(),
		"exp": c.ExpiresAt.Unix(),
		"streams": map[string][]string{
			"publish":   nonNil(c.Publish),
			"subscribe": nonNil(c.Subscribe),
		},
	}
	if c.Subject != "" {
		claims["sub"] = c.Subject
	}
	tok, err := jwt.NewWithClaims(s.method, claims).SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("signing the token: %w", err)
	}
	return tok, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// parsePrivateKey reads the first private key block of a PEM file and
// checks that it fits alg.
func parsePrivateKey(alg string, data []byte) (crypto.Signer, error) {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, fmt.Errorf("%s needs a private key, and the key file is empty", alg)
	}
	var key any
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key found (want a \"-----BEGIN PRIVATE KEY-----\" block)")
		}
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
			return nil, fmt.Errorf("the PEM block is a %s; signing needs the private key", block.Type)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parsing the PEM %s block: %v", block.Type, err)
		}
		break
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("the key is a %T, which does not fit %s", key, alg)
	}
	if err := keyFits(alg, signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}

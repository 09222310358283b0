package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sse-broker/broker/internal/jsonobject"
)

// Algorithms the broker verifies; the configuration pins one.
const (
	HS256 = "HS256"
	RS256 = "RS256"
	ES256 = "ES256"
	EdDSA = "EdDSA"
)

// minRSABits refuses RSA keys that are too weak to trust at start-up.
const minRSABits = 2048

// Verifier checks tokens with one pinned algorithm and key. It is safe for
// concurrent use.
type Verifier struct {
	alg    string
	key    any // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	parser *jwt.Parser
	now    func() time.Time
}

// NewVerifier builds a Verifier for alg: HS256 takes secret (any non-empty
// length is accepted; the caller warns below 32 bytes), RS256, ES256 and
// EdDSA take publicKeyPEM, a PEM "PUBLIC KEY" (PKIX), "RSA PUBLIC KEY"
// (PKCS #1, RS256 only) or "CERTIFICATE" block. A key that does not fit the
// algorithm (an RSA key with ES256, a P-384 key with ES256, an RSA key under
// 2048 bits, a private key) is an error here, not at the first token.
func NewVerifier(alg string, secret []byte, publicKeyPEM []byte) (*Verifier, error) {
	v := &Verifier{alg: alg, now: time.Now}
	switch alg {
	case HS256:
		if len(publicKeyPEM) > 0 {
			return nil, errors.New("HS256 takes a secret, not a public key")
		}
		if len(secret) == 0 {
			return nil, errors.New("HS256 needs a non-empty secret")
		}
		v.key = append([]byte(nil), secret...)
	case RS256, ES256, EdDSA:
		if len(secret) > 0 {
			return nil, fmt.Errorf("%s takes a public key, not a secret", alg)
		}
		key, err := parsePublicKey(alg, publicKeyPEM)
		if err != nil {
			return nil, err
		}
		v.key = key
	default:
		return nil, fmt.Errorf("algorithm %q is not supported; use HS256, RS256, ES256 or EdDSA", alg)
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	)
	return v, nil
}

// Algorithm is the pinned algorithm.
func (v *Verifier) Algorithm() string { return v.alg }

// tokenClaims is the JSON shape of a token's payload. Decoding into typed
// fields is what makes a claim of the wrong type an invalid token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Streams *struct {
		Publish   []string `json:"publish"`
		Subscribe []string `json:"subscribe"`
	} `json:"streams"`
}

// Verify checks token's signature with the pinned algorithm and key, its
// "exp" and "nbf" (when present, with no clock skew), and the shape of its
// claims. Every failure wraps ErrInvalidToken (ErrNoToken for ""); the
// error text never contains the token.
func (v *Verifier) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, ErrNoToken
	}
	var tc tokenClaims
	_, err := v.parser.ParseWithClaims(token, &tc, v.keyFunc)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalidToken, reason(err))
	}
	if err := checkRawClaims(token); err != nil {
		return Claims{}, fmt.Errorf("%w: the token's claims are not valid: %v", ErrInvalidToken, err)
	}
	c := Claims{Subject: tc.Subject}
	if tc.ExpiresAt != nil {
		c.ExpiresAt = tc.ExpiresAt.Time
	}
	if tc.Streams != nil {
		c.Publish = tc.Streams.Publish
		c.Subscribe = tc.Streams.Subscribe
	}
	return c, nil
}

// checkRawClaims refuses a token whose claims encoding/json would read
// other than as written: a claim the broker reads ("sub", "streams", its
// "publish" and "subscribe", the registered ones) named in another case,
// or given twice, the last one winning. {"streams": {"subscribe":
// ["own-1"], "Subscribe": ["*"]}} would grant every stream to a token an
// issuer, or a gateway that checks claims case-sensitively, saw as
// granting one. It also refuses an "exp" or "nbf" beyond maxNumericDate,
// which golang-jwt has read wrapped (checkTimeRange). Both are checks on
// the payload as written, so they share one scan of it. token has been
// verified: its payload is base64url JSON.
func checkRawClaims(token string) error {
	_, rest, _ := strings.Cut(token, ".")
	payload, _, _ := strings.Cut(rest, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return fmt.Errorf("the payload is not base64url: %w", err)
	}
	if !utf8.Valid(raw) || !json.Valid(raw) {
		return errors.New("the payload is not one JSON object in UTF-8")
	}
	if err := jsonobject.CheckNames(raw, "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "streams"); err != nil {
		return err
	}
	return jsonobject.Members(raw, func(name, value []byte) error {
		if string(name) == "exp" || string(name) == "nbf" {
			return checkTimeRange(string(name), value)
		}
		if string(name) != "streams" {
			return nil
		}
		if err := jsonobject.CheckNames(value, "publish", "subscribe"); err != nil {
			return fmt.Errorf("streams: %w", err)
		}
		return nil
	})
}

// maxNumericDate bounds "exp" and "nbf", in seconds either side of 1970
// (about 285 billion years): golang-jwt converts a larger value with
// int64(f), which wraps to the most negative int64 (or time.Time's own
// seconds overflow), so {"nbf": 1e19}, not valid for ages, read as valid
// since forever.
const maxNumericDate = 9e18

// checkTimeRange refuses an "exp" or "nbf" (a number, or a string of
// digits as golang-jwt reads it) beyond maxNumericDate either way.
func checkTimeRange(name string, value []byte) error {
	text := string(value)
	if uq, err := strconv.Unquote(text); err == nil {
		text = uq
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil // not a number: golang-jwt has refused it already
	}
	if err != nil || math.IsNaN(f) || math.Abs(f) > maxNumericDate {
		return fmt.Errorf("%s is out of range", name)
	}
	return nil
}

// keyFunc hands the parser the pinned key, and checks once more (beside
// WithValidMethods) that the token's algorithm is the pinned one: the
// header never chooses the key or the algorithm.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	if t.Method == nil || t.Method.Alg() != v.alg {
		return nil, errors.New("unexpected signing method")
	}
	// RFC 7515 4.1.11: a token naming extensions as critical must be
	// refused by a verifier that does not understand them, and this one
	// understands none.
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New("the token names critical header extensions")
	}
	return v.key, nil
}

// reason is a short, token-free explanation of a parse error for the 401
// answer.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "the token's signature or algorithm is not accepted"
	default:
		return "the token's claims are not valid"
	}
}

// parsePublicKey reads the first key block of a PEM file and checks that
// it fits alg.
func parsePublicKey(alg string, data []byte) (any, error) {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, fmt.Errorf("%s needs a public key, and the key file is empty", alg)
	}
	var key any
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM public key found (want a \"-----BEGIN PUBLIC KEY-----\" block)")
		}
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("the PEM block is a %s; the broker needs only the public key (openssl pkey -pubout)", block.Type)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parsing the PEM %s block: %v", block.Type, err)
		}
		break
	}
	if err := keyFits(alg, key); err != nil {
		return nil, err
	}
	return key, nil
}

// keyFits checks that the public key (of a verifier, or of a signer's
// private key) fits alg: its type, and the size or curve alg asks for.
func keyFits(alg string, key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if alg != RS256 {
			return fmt.Errorf("the key is an RSA key, which does not fit %s", alg)
		}
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("the RSA key has %d bits; RS256 needs at least %d", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if alg != ES256 {
			return fmt.Errorf("the key is an ECDSA key, which does not fit %s", alg)
		}
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("the ECDSA key is on %s; ES256 needs P-256", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if alg != EdDSA {
			return fmt.Errorf("the key is an Ed25519 key, which does not fit %s", alg)
		}
	default:
		return fmt.Errorf("the key is a %T, which does not fit %s", key, alg)
	}
	return nil
}

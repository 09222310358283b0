package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/pkg/auth"
)

// defaultTokenTTL is short on purpose: `broker token` is for tests and
// operations, and a forgotten token should die on its own.
const defaultTokenTTL = time.Hour

// patternList is a repeatable flag that also takes comma-separated
// patterns; a comma cannot occur in a stream id, so it cannot occur in a
// pattern either.
type patternList []string

func (p *patternList) String() string { return strings.Join(*p, ",") }

func (p *patternList) Set(s string) error {
	for _, pat := range strings.Split(s, ",") {
		if pat = strings.TrimSpace(pat); pat == "" {
			return fmt.Errorf("empty pattern in %q", s)
		}
		*p = append(*p, pat)
	}
	return nil
}

// runToken is `broker token`: it mints a JWT with the key of the same
// configuration serve reads (file, BROKER_* environment), and checks it
// with the verifier serve would build before printing it.
func runToken(c cli, args []string) int {
	fs := newFlagSet("token", "broker token --publish PATTERN --subscribe PATTERN [--ttl 1h] [--sub NAME] [--config FILE] [--private-key FILE]",
		`Prints a JWT for the given stream patterns (* matches any run of characters),
signed with the key of the broker's configuration: the same file (--config,
else $BROKER_CONFIG, else configs/broker.yaml when it exists) and BROKER_*
variables as serve.

With HS256 the configured auth.jwt.secret signs. With RS256, ES256 or EdDSA
the configuration holds only the public key, so --private-key must name the
matching PEM private key; the token is checked against the configured public
key before it is printed.

Example:
  curl -H "Authorization: Bearer $(broker token --publish 'chat-*')" ...`)
	var publish, subscribe patternList
	fs.Var(&publish, "publish", "stream `pattern` the token may publish to, close and delete (repeat, or comma-separate)")
	fs.Var(&subscribe, "subscribe", "stream `pattern` the token may subscribe to, and read info and history of (repeat, or comma-separate)")
	ttl := fs.Duration("ttl", defaultTokenTTL, "lifetime of the token (exp = now + ttl)")
	subject := fs.String("sub", "broker-cli", "subject (sub claim); rate limits count per subject")
	configFile := fs.String("config", "", "YAML configuration `file` (default $BROKER_CONFIG, else configs/broker.yaml if it exists)")
	privateKey := fs.String("private-key", "", "PEM private key `file` for RS256, ES256 or EdDSA")
	pos, code, ok := fs.parse(c, args)
	if !ok {
		return code
	}
	switch {
	case len(pos) > 0:
		return fs.usageError(c, "unexpected argument %q", pos[0])
	case len(publish) == 0 && len(subscribe) == 0:
		return fs.usageError(c, "give --publish and/or --subscribe: a token without patterns grants nothing")
	case *ttl < time.Second:
		return fs.usageError(c, "--ttl must be at least 1s (exp counts whole seconds)")
	}

	var loadArgs []string
	if *configFile != "" {
		loadArgs = []string{"--config", *configFile}
	}
	cfg, warnings, err := config.Load(loadArgs, configEnviron(c.environ))
	if err != nil {
		fmt.Fprintln(c.stderr, "broker token:", err)
		return 2
	}
	for _, w := range warnings {
		fmt.Fprintln(c.stderr, "warning:", w)
	}
	if !cfg.AuthEnabled() {
		fmt.Fprintln(c.stderr, "broker token: auth is off in this configuration (neither auth.jwt.secret nor auth.jwt.public_key_file is set): the broker needs no token")
		return 2
	}
	signer, err := newSigner(cfg, *privateKey)
	if err != nil {
		fmt.Fprintln(c.stderr, "broker token:", err)
		return 2
	}
	now := time.Now()
	tok, err := signer.Mint(auth.Claims{
		Subject: *subject, ExpiresAt: now.Add(*ttl), Publish: publish, Subscribe: subscribe,
	}, now)
	if err != nil {
		fmt.Fprintln(c.stderr, "broker token:", err)
		return 1
	}
	// A private key that is not the pair of public_key_file signs tokens
	// the broker refuses; say so here rather than with a 401 later.
	verifier, err := newVerifier(cfg)
	if err != nil {
		fmt.Fprintln(c.stderr, "broker token:", err)
		return 2
	}
	if _, err := verifier.Verify(tok); err != nil {
		fmt.Fprintf(c.stderr, "broker token: the broker would refuse this token (%v); is --private-key the pair of auth.jwt.public_key_file?\n", err)
		return 1
	}
	fmt.Fprintln(c.stdout, tok)
	return 0
}

// newSigner picks the signing key the configured algorithm needs.
func newSigner(cfg config.Config, privateKeyFile string) (*auth.Signer, error) {
	jwt := cfg.Auth.JWT
	if jwt.Algorithm == auth.HS256 {
		if privateKeyFile != "" {
			return nil, fmt.Errorf("--private-key is for RS256, ES256 or EdDSA; the configuration uses HS256 with auth.jwt.secret")
		}
		return auth.NewSigner(auth.HS256, []byte(jwt.Secret), nil)
	}
	if privateKeyFile == "" {
		return nil, fmt.Errorf("auth.jwt.algorithm is %s and the configuration holds only the public key: give --private-key FILE", jwt.Algorithm)
	}
	pem, err := os.ReadFile(privateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--private-key: %w", err)
	}
	s, err := auth.NewSigner(jwt.Algorithm, nil, pem)
	if err != nil {
		return nil, fmt.Errorf("--private-key %s: %w", privateKeyFile, err)
	}
	return s, nil
}

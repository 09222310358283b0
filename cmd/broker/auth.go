package main

import (
	"fmt"
	"os"

	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/pkg/auth"
)

// newVerifier builds the token verifier the configuration asks for; nil
// when auth is off. A key file that cannot be read or does not fit
// auth.jwt.algorithm stops the broker at start, naming the key.
func newVerifier(cfg config.Config) (*auth.Verifier, error) {
	if !cfg.AuthEnabled() {
		return nil, nil
	}
	jwt := cfg.Auth.JWT
	if jwt.PublicKeyFile == "" {
		v, err := auth.NewVerifier(jwt.Algorithm, []byte(jwt.Secret), nil)
		if err != nil {
			return nil, fmt.Errorf("config: auth.jwt.secret: %v", err)
		}
		return v, nil
	}
	pem, err := os.ReadFile(jwt.PublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("config: auth.jwt.public_key_file: %v", err)
	}
	v, err := auth.NewVerifier(jwt.Algorithm, nil, pem)
	if err != nil {
		return nil, fmt.Errorf("config: auth.jwt.public_key_file: %q with auth.jwt.algorithm %s: %v", jwt.PublicKeyFile, jwt.Algorithm, err)
	}
	return v, nil
}

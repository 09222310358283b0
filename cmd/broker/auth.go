package main

import (
	"errors"

	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/pkg/auth"
)

// newVerifier builds the token verifier the configuration asks for; nil
// when auth is off.
func newVerifier(cfg config.Config) (*auth.Verifier, error) {
	if !cfg.AuthEnabled() {
		return nil, nil
	}
	return nil, errors.New("auth.jwt: JWT authentication is not available in this build yet; refusing to run without it")
}

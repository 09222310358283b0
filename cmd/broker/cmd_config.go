package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"

	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/pkg/auth"
)

const configCheckUsage = `Usage: broker config check [--config FILE] [serve flags]

Loads the configuration exactly as serve would (built-in defaults < file <
BROKER_* environment < flags), checks it, the JWT key and the TLS key pair,
and prints every key's effective value and where it came from, as YAML that
serve accepts as a configuration file. Secrets are masked. The store is not
contacted.

Exit code 0: serve would start with this configuration; 2: it would not,
and the error names the key.`

// runConfig is `broker config check`. The extra level ("config check"
// rather than "check-config") leaves room for other configuration
// commands without a new top-level name.
func runConfig(c cli, args []string) int {
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && isHelpFlag(args[0]) {
			fmt.Fprintln(c.stdout, configCheckUsage)
			return 0
		}
		fmt.Fprintln(c.stderr, "broker config: the only subcommand is check: broker config check [--config FILE]")
		return 2
	}
	cfg, settings, warnings, err := config.Effective(args[1:], configEnviron(c.environ))
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(c.stdout, configCheckUsage)
		return 0
	}
	if err == nil {
		_, err = checkKeys(cfg)
	}
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 2
	}
	for _, w := range warnings {
		fmt.Fprintln(c.stderr, "warning:", w)
	}
	file := cfg.File
	if file == "" {
		file = "none (built-in defaults, environment and flags)"
	}
	auth := "off"
	if cfg.AuthEnabled() {
		auth = "on, " + cfg.Auth.JWT.Algorithm
	}
	fmt.Fprintf(c.stdout, "# configuration OK; file: %s; auth: %s\n", file, auth)
	if err := config.WriteSettings(c.stdout, settings); err != nil {
		fmt.Fprintln(c.stderr, "broker config check:", err)
		return 1
	}
	return 0
}

// checkKeys parses the key files config.Load only checks for
// readability, so that a wrong key fails as configuration (in config check
// and before serve starts anything), and returns the token verifier (nil:
// auth off).
func checkKeys(cfg config.Config) (*auth.Verifier, error) {
	verifier, err := newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.TLS.CertFile != "" {
		if _, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			return nil, fmt.Errorf("config: tls.cert_file, tls.key_file: %v", err)
		}
	}
	return verifier, nil
}

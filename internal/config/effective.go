package config

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"
)

// Setting is one key of the effective configuration, safe to print.
type Setting struct {
	Key    string
	Value  string // as it would be written in YAML; secrets are masked
	Source string // "default", "FILE:LINE", "BROKER_X" or "--flag"
	Type   string // as in FieldInfo
	Secret bool
}

// Effective loads the configuration exactly as Load does and also returns
// every key's value, masked where secret, with the place it came from, for
// `broker config check`. On error it returns Load's error.
func Effective(args, environ []string) (Config, []Setting, []string, error) {
	cfg, warnings, err := Load(args, environ)
	if err != nil {
		return cfg, nil, warnings, err
	}
	src, err := sources(args, environ, cfg.File)
	if err != nil {
		return Config{}, nil, warnings, err
	}
	shown := cfg.Redacted()
	var out []Setting
	for _, f := range table() {
		s := Setting{Key: f.key, Value: f.format(&shown), Source: src[f.key], Type: f.typ, Secret: f.secret}
		if f.secret && s.Value != "" {
			// Redacted covers the secrets it knows; the table's flag covers
			// any added later.
			s.Value = redactedMark
		}
		out = append(out, s)
	}
	return cfg, out, warnings, nil
}

// sources replays Load's precedence (default < file < environment < flag)
// on already validated input to learn where each key's value came from;
// Load itself keeps that to its error messages.
func sources(args, environ []string, file string) (map[string]string, error) {
	ld := newLoader()
	if file != "" {
		if err := ld.loadFile(file); err != nil {
			return nil, err
		}
	}
	env, _ := ld.scanEnv(environ)
	fset, flags, _ := newFlagSet(ld.fields, io.Discard)
	if err := fset.Parse(args); err != nil {
		return nil, fmt.Errorf("config: %v", err)
	}
	for _, f := range ld.fields {
		if _, ok := env[envName(f.key)]; ok {
			ld.src[f.key] = envName(f.key)
		}
		if r := flags[f.key]; r != nil && r.set {
			ld.src[f.key] = "--" + f.flag
		}
	}
	return ld.src, nil
}

// WriteSettings prints settings as YAML with dotted keys, which Load
// accepts as a configuration file, each line commented with its source:
//
//	listen: :8080                  # default
//	auth.jwt.secret: REDACTED      # BROKER_AUTH_JWT_SECRET
func WriteSettings(w io.Writer, settings []Setting) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range settings {
		fmt.Fprintf(tw, "%s: %s\t# %s\n", s.Key, yamlValue(s), s.Source)
	}
	return tw.Flush()
}

// yamlValue quotes a value only where YAML would read it otherwise (an
// empty string, ":8080" is fine, "*" is an alias, "yes" is a string in
// YAML 1.2 but a boolean to older readers), by asking the YAML encoder.
func yamlValue(s Setting) string {
	switch s.Type {
	case "list":
		items := []string{}
		if s.Value != "" {
			items = strings.Split(s.Value, ",")
		}
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, it := range items {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: it})
		}
		return marshalNode(n)
	case "string":
		return marshalNode(&yaml.Node{Kind: yaml.ScalarNode, Value: s.Value, Tag: "!!str"})
	default: // numbers, durations, sizes and booleans are written plain
		return s.Value
	}
}

func marshalNode(n *yaml.Node) string {
	b, err := yaml.Marshal(n)
	if err != nil { // unreachable for scalars and flat lists of strings
		return fmt.Sprintf("%q", n.Value)
	}
	return strings.TrimSuffix(string(b), "\n")
}

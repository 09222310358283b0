package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// sourceDefault is the source of a value nobody set.
const sourceDefault = "default"

// loader accumulates the configuration level by level and remembers where
// each key's value came from, so that an error can say which of the four
// places to fix.
type loader struct {
	fields []field
	byKey  map[string]*field
	cfg    Config
	src    map[string]string // key -> "default", "FILE:LINE", "BROKER_X" or "--flag"
}

func newLoader() *loader {
	ld := &loader{fields: table(), byKey: map[string]*field{}, cfg: Default(), src: map[string]string{}}
	for i := range ld.fields {
		f := &ld.fields[i]
		ld.byKey[f.key] = f
		ld.src[f.key] = sourceDefault
	}
	return ld
}

// set parses v into the key's field and records its source. A bad value is
// reported even if a higher level would override it: a wrong line in a
// file is a bug in that file and should not wait for the day the override
// is removed.
func (ld *loader) set(f *field, v value, source string) error {
	if err := f.parse(&ld.cfg, v); err != nil {
		return fieldError(f.key, source, err)
	}
	ld.src[f.key] = source
	return nil
}

// Load builds the configuration from built-in defaults, then the YAML file,
// then environ (as os.Environ: "KEY=VALUE"), then args (the command line
// without the program name), each level overriding the previous one.
//
// The file is --config, else $BROKER_CONFIG (ConfigFileEnv), else
// DefaultConfigFile if it exists, else none.
// Empty environment variables are ignored, so that an unset variable
// expanded to "" by a shell or a compose file cannot silently turn auth or
// TLS off. Unknown BROKER_* variables and weak settings are returned as
// warnings (for the log), not errors, because the environment is shared
// with other programs.
//
// The error, if any, is one line naming the key and the source of the bad
// value; the returned Config is then the zero value so it cannot be used by
// mistake. With -h or --help the error wraps flag.ErrHelp: print Usage and
// exit 0. Flag errors are returned, never printed: the flag set writes to
// io.Discard.
func Load(args []string, environ []string) (Config, []string, error) {
	ld := newLoader()

	fset, flags, configFlag := newFlagSet(ld.fields, io.Discard)
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, nil, fmt.Errorf("config: %w", flag.ErrHelp)
		}
		return Config{}, nil, fmt.Errorf("config: %v", err)
	}
	if fset.NArg() > 0 {
		return Config{}, nil, fmt.Errorf("config: unexpected argument %q (settings are given as flags, e.g. --listen=:8080)", fset.Arg(0))
	}

	env, warnings := ld.scanEnv(environ)

	path, err := configPath(configFlag, env[ConfigFileEnv])
	if err != nil {
		return Config{}, warnings, err
	}
	if path != "" {
		if err := ld.loadFile(path); err != nil {
			return Config{}, warnings, err
		}
		ld.cfg.File = path
	}

	for i := range ld.fields {
		f := &ld.fields[i]
		if v, ok := env[envName(f.key)]; ok {
			if err := ld.set(f, envValue(f, v), envName(f.key)); err != nil {
				return Config{}, warnings, err
			}
		}
	}
	for i := range ld.fields {
		f := &ld.fields[i]
		if r := flags[f.key]; r != nil && r.set {
			if err := ld.set(f, value{scalar: r.val}, "--"+f.flag); err != nil {
				return Config{}, warnings, err
			}
		}
	}

	if err := crossCheck(&ld.cfg, ld.src); err != nil {
		return Config{}, warnings, err
	}
	return ld.cfg, append(warnings, weakSettings(&ld.cfg)...), nil
}

// rawFlag keeps a flag's text; parsing is left to the field so that a bad
// flag value gets the same message as a bad value anywhere else.
type rawFlag struct {
	val    string
	set    bool
	isBool bool
}

func (r *rawFlag) String() string {
	if r == nil {
		return ""
	}
	return r.val
}

func (r *rawFlag) Set(s string) error {
	r.val, r.set = s, true
	return nil
}

// IsBoolFlag lets "--demo" stand for "--demo=true".
func (r *rawFlag) IsBoolFlag() bool { return r.isBool }

// newFlagSet registers --config and one flag per field that has one.
// ContinueOnError and a caller-chosen output keep Load free of os.Exit and
// of writes to the process's stderr.
func newFlagSet(fields []field, out io.Writer) (*flag.FlagSet, map[string]*rawFlag, *rawFlag) {
	fset := flag.NewFlagSet("broker", flag.ContinueOnError)
	fset.SetOutput(out)
	fset.Usage = func() {}
	configFlag := &rawFlag{}
	fset.Var(configFlag, "config", "YAML configuration file")
	flags := map[string]*rawFlag{}
	for _, f := range fields {
		if f.flag != "" {
			r := &rawFlag{isBool: f.typ == "boolean"}
			fset.Var(r, f.flag, f.doc)
			flags[f.key] = r
		}
	}
	return fset, flags, configFlag
}

// configPath decides which file to read: --config, else fromEnv (the
// value of ConfigFileEnv), else DefaultConfigFile. Only the implicit
// default may be missing: a file named that does not exist is a typo or a
// missing mount, and starting on defaults instead would hide it.
func configPath(configFlag *rawFlag, fromEnv string) (string, error) {
	path, source := configFlag.val, "--config"
	switch {
	case configFlag.set:
		if path == "" {
			return "", errors.New("config: --config: empty path")
		}
	case fromEnv != "":
		path, source = fromEnv, ConfigFileEnv
	default:
		if _, err := os.Stat(DefaultConfigFile); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", nil
			}
			return "", fmt.Errorf("config: %v", err)
		}
		return DefaultConfigFile, nil
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("config: %s: %q does not exist", source, path)
		}
		return "", fmt.Errorf("config: %s: %v", source, err)
	}
	return path, nil
}

// scanEnv picks the BROKER_* variables out of environ. Later duplicates win,
// as with exec.Cmd.Env.
func (ld *loader) scanEnv(environ []string) (map[string]string, []string) {
	known := map[string]bool{ConfigFileEnv: true}
	names := make([]string, 0, len(ld.fields)+1)
	names = append(names, ConfigFileEnv)
	for _, f := range ld.fields {
		known[envName(f.key)] = true
		names = append(names, envName(f.key))
	}
	vals := map[string]string{}
	warned := map[string]bool{}
	var warnings []string
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		if !known[name] {
			if !warned[name] {
				warned[name] = true
				warnings = append(warnings, fmt.Sprintf("config: unknown environment variable %s ignored%s", name, didYouMean(name, names, EnvPrefix)))
			}
			continue
		}
		if val == "" {
			delete(vals, name)
			continue
		}
		vals[name] = val
	}
	return vals, warnings
}

// envValue splits lists on commas: an environment variable has no other way
// to carry one.
func envValue(f *field, s string) value {
	if f.typ == "list" {
		return value{list: strings.Split(s, ","), isList: true}
	}
	return value{scalar: s}
}

// loadFile applies the YAML file. It walks yaml.Node rather than decoding
// into a struct so that it can reject unknown keys and wrong shapes with the
// key's name and line, and so that the table stays the only description of
// the keys.
func (ld *loader) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %v", err)
	}
	if !utf8.Valid(data) {
		line := 1 + bytes.Count(data[:firstInvalidUTF8(data)], []byte("\n"))
		return fmt.Errorf("config: %s:%d: the file is not UTF-8 text", path, line)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // empty file or only comments
			return nil
		}
		return fmt.Errorf("config: %s: %s", path, yamlError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return fmt.Errorf("config: %s: %s", path, yamlError(err))
		}
		return fmt.Errorf("config: %s:%d: more than one YAML document; use one", path, extra.Line)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config: %s:%d: the top level must be a mapping of keys, got %s", path, root.Line, kindName(root))
	}
	return ld.walk(path, "", root, sections(ld.fields), map[string]int{})
}

// walk flattens nested mappings into dotted keys ("history.max_events") and
// applies each leaf. Dotted keys may also be written literally; a key set
// twice either way is an error, since one of the two lines is then
// silently ignored.
func (ld *loader) walk(path, prefix string, m *yaml.Node, secs map[string][]string, seen map[string]int) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], resolve(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("config: %s:%d: a key must be a plain name, got %s", path, k.Line, kindName(k))
		}
		key := prefix + k.Value
		at := fmt.Sprintf("%s:%d", path, k.Line)
		if f := ld.byKey[key]; f != nil {
			if line, dup := seen[key]; dup {
				return fmt.Errorf("config: key %q set twice in %s (lines %d and %d)", key, path, line, k.Line)
			}
			seen[key] = k.Line
			raw, err := nodeValue(f, v)
			if err != nil {
				return fieldError(key, at, err)
			}
			if err := ld.set(f, raw, at); err != nil {
				return err
			}
			continue
		}
		if children, ok := secs[key]; ok {
			switch {
			case v.Kind == yaml.MappingNode:
				if err := ld.walk(path, key+".", v, secs, seen); err != nil {
					return err
				}
			case isNull(v): // a section whose keys are all commented out
			default:
				return fieldError(key, at, fmt.Errorf("expected a mapping with %s, got %s", strings.Join(children, ", "), kindName(v)))
			}
			continue
		}
		candidates := make([]string, 0, len(ld.fields)+len(secs))
		for _, f := range ld.fields {
			candidates = append(candidates, f.key)
		}
		for s := range secs {
			candidates = append(candidates, s)
		}
		return fmt.Errorf("config: unknown key %q in %s%s", key, at, didYouMean(key, candidates, ""))
	}
	return nil
}

// sections maps every key prefix ("auth", "auth.jwt") to the keys under it,
// so that walk knows which mappings to descend into and can list what a
// section should contain.
func sections(fields []field) map[string][]string {
	secs := map[string][]string{}
	for _, f := range fields {
		for i := range len(f.key) {
			if f.key[i] == '.' {
				secs[f.key[:i]] = append(secs[f.key[:i]], f.key)
			}
		}
	}
	return secs
}

// nodeValue checks that a leaf has the shape its key expects.
func nodeValue(f *field, v *yaml.Node) (value, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if isNull(v) {
			return value{isList: f.typ == "list"}, nil
		}
		return value{scalar: v.Value}, nil
	case yaml.SequenceNode:
		if f.typ != "list" {
			return value{}, errors.New("expected a single value, got a list")
		}
		out := value{isList: true}
		for i, item := range v.Content {
			item = resolve(item)
			if item.Kind != yaml.ScalarNode || isNull(item) {
				return value{}, fmt.Errorf("list item %d: expected a string, got %s", i+1, kindName(item))
			}
			out.list = append(out.list, item.Value)
		}
		return out, nil
	}
	if f.typ == "list" {
		return value{}, fmt.Errorf("expected a list, got %s", kindName(v))
	}
	return value{}, fmt.Errorf("expected a single value, got %s", kindName(v))
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

// yamlError makes a YAML error fit on one line without the "yaml: " prefix
// the caller's own prefix already covers.
//
// yaml.v3 leaves the line out of a syntax error on the first line (it
// takes a 0-based line 0 for "unknown"): such an error gets "line 1". Its
// errors in reading the text (control characters; invalid UTF-8 is
// refused before) have no line either, and get none.
func yamlError(err error) string {
	s := strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "yaml: ")), " ")
	if !strings.HasPrefix(s, "line ") && !strings.Contains(s, "control characters") && !strings.HasPrefix(s, "input error") {
		s = "line 1: " + s
	}
	return s
}

// firstInvalidUTF8 is the offset of the first byte of b that is not part
// of valid UTF-8.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// crossCheck applies the rules that involve several keys or the file
// system. It runs on the final values, since only the combination matters,
// and src (nil when unknown) names where each value came from.
func crossCheck(c *Config, src map[string]string) error {
	from := func(parts ...string) string { // key, key, ...
		if src == nil {
			return ""
		}
		var b []string
		for _, k := range parts {
			b = append(b, strings.TrimPrefix(k, "auth.jwt.")+" from "+src[k])
		}
		return " (" + strings.Join(b, ", ") + ")"
	}
	jwt := &c.Auth.JWT
	switch {
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		set, unset := "tls.cert_file", "tls.key_file"
		if c.TLS.CertFile == "" {
			set, unset = unset, set
		}
		return fmt.Errorf("config: %s: empty while %s is set%s; set both or neither", unset, set, from(set))
	case jwt.Secret != "" && jwt.PublicKeyFile != "":
		return fmt.Errorf("config: auth.jwt.public_key_file: set together with auth.jwt.secret; set only the one the algorithm needs%s",
			from("auth.jwt.public_key_file", "auth.jwt.secret"))
	case jwt.Algorithm == "HS256" && jwt.PublicKeyFile != "":
		return fmt.Errorf("config: auth.jwt.algorithm: HS256 needs auth.jwt.secret, but auth.jwt.public_key_file is set; set the secret or another algorithm%s",
			from("auth.jwt.algorithm", "auth.jwt.public_key_file"))
	case jwt.Algorithm != "HS256" && jwt.Secret != "":
		return fmt.Errorf("config: auth.jwt.algorithm: %s needs auth.jwt.public_key_file, but auth.jwt.secret is set; set the key file or HS256%s",
			jwt.Algorithm, from("auth.jwt.algorithm", "auth.jwt.secret"))
	}
	for _, kf := range []struct{ key, path string }{
		{"auth.jwt.public_key_file", jwt.PublicKeyFile},
		{"tls.cert_file", c.TLS.CertFile},
		{"tls.key_file", c.TLS.KeyFile},
	} {
		if kf.path == "" {
			continue
		}
		if err := checkReadableFile(kf.path); err != nil {
			return fieldError(kf.key, src[kf.key], err)
		}
	}
	return nil
}

// checkReadableFile catches a missing mount or a wrong path at start-up
// instead of at the first TLS handshake or the first token. Parsing the
// contents is left to the code that uses them.
func checkReadableFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%q does not exist", path)
		}
		return fmt.Errorf("%q cannot be read: %v", path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return fmt.Errorf("%q is a directory, not a file", path)
	}
	return nil
}

// minHMACSecret is 256 bits: RFC 7518 section 3.2 requires an HS256 key at
// least as long as the hash output. It is a warning, not an error, so that
// short secrets in local tests keep working.
const minHMACSecret = 32

// weakSettings lists settings that work but should not reach production.
func weakSettings(c *Config) []string {
	var w []string
	if c.Auth.JWT.Algorithm == "HS256" && c.Auth.JWT.Secret != "" && len(c.Auth.JWT.Secret) < minHMACSecret {
		w = append(w, fmt.Sprintf("config: auth.jwt.secret is %d bytes; HS256 needs at least %d (RFC 7518 section 3.2)", len(c.Auth.JWT.Secret), minHMACSecret))
	}
	return w
}

// didYouMean suggests the closest candidate for a typo, or "". Only close
// matches count (at most 2 edits, and few relative to the length), since a
// wrong suggestion is worse than none.
func didYouMean(s string, candidates []string, prefix string) string {
	s = strings.ToLower(strings.TrimPrefix(s, prefix))
	best, bestD := "", 3
	for _, c := range candidates {
		d := editDistance(s, strings.ToLower(strings.TrimPrefix(c, prefix)))
		if d*3 <= len(s) && (d < bestD || (d == bestD && c < best)) {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Usage writes the help text for -h/--help: the flags, and the environment
// variables that can set every other key. program is the command name to
// show (usually filepath.Base(os.Args[0])).
func Usage(w io.Writer, program string) {
	fmt.Fprintf(w, "Usage: %s [flags]\n\n", program)
	fmt.Fprintf(w, "Settings are taken from built-in defaults, then the YAML file, then %s*\n", EnvPrefix)
	fmt.Fprintf(w, "environment variables, then these flags; each overrides the previous.\n\n")
	fmt.Fprintln(w, "Flags:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  --config PATH\tYAML configuration file (default $%s, else %s if it exists)\n", ConfigFileEnv, DefaultConfigFile)
	for _, f := range Fields() {
		if f.Flag == "" {
			continue
		}
		name := "--" + f.Flag
		if f.Type == "boolean" {
			name += ", --" + f.Flag + "=false"
		} else {
			name += " " + strings.ToUpper(f.Key[strings.LastIndex(f.Key, ".")+1:])
		}
		fmt.Fprintf(tw, "  %s\t%s (default %q; env %s)\n", name, f.Doc, f.Default, f.Env)
	}
	fmt.Fprintf(tw, "  -h, --help\tshow this help\n")
	tw.Flush()
	fmt.Fprintln(w, "\nEnvironment variables (every key; lists are comma-separated):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range Fields() {
		def := f.Default
		if def == "" {
			def = "empty"
		}
		fmt.Fprintf(tw, "  %s\t%s\t(default %s)\n", f.Env, f.Type, def)
	}
	tw.Flush()
}

package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/pkg/client"
)

// The subcommands are one binary with the broker rather than separate
// tools so that the image and the release ship one file, and the CLI can
// never disagree with the server about configuration, tokens or the wire
// format: it is built from the same packages at the same commit.

// cli is what a subcommand gets from the process; tests give their own.
type cli struct {
	environ        []string
	stdin          io.Reader
	stdout, stderr io.Writer
}

// command is one subcommand of the broker binary.
type command struct {
	name, summary string
	run           func(c cli, args []string) int
}

// commands in the order `broker help` lists them. A function, not a
// package variable, so that there is no global state.
func commands() []command {
	return []command{
		{"serve", "run the broker (the default when the first argument is a flag or absent)", runServe},
		{"publish", "publish events to a stream: from arguments, or each line of stdin as it arrives", runPublish},
		{"tail", "print a stream's events as they arrive; resumes after drops, ends at stop", runTail},
		{"token", "mint a JWT for stream patterns with the configured key (for tests and operations)", runToken},
		{"bench", "the load tool: subscribers, publishers, latency, loss (as cmd/ssebench)", runBench},
		{"config", "config check: validate a configuration and print the effective settings", runConfig},
		{"healthcheck", "exit 0 when a broker's /readyz answers 200 (for container health checks)", runHealthcheck},
		{"help", "list the commands, or `broker help COMMAND` for one command's flags", runHelp},
	}
}

// dispatch picks the subcommand. No argument, or a flag first, means serve
// with today's flags, so that `broker --listen :8080` and every deployment
// written before the subcommands existed keep working.
func dispatch(args []string, c cli) int {
	if len(args) == 0 || (strings.HasPrefix(args[0], "-") && !isHelpFlag(args[0])) {
		return runServe(c, args)
	}
	if isHelpFlag(args[0]) {
		return runHelp(c, nil)
	}
	for _, cmd := range commands() {
		if cmd.name == args[0] {
			return cmd.run(c, args[1:])
		}
	}
	fmt.Fprintf(c.stderr, "broker: unknown command %q; run `broker help` for the list\n", args[0])
	return 2
}

func isHelpFlag(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

func runServe(c cli, args []string) int {
	return serveCmd(args, configEnviron(c.environ), c.stdout, c.stderr)
}

func runHealthcheck(c cli, args []string) int {
	return healthcheck(args, configEnviron(c.environ), c.stdout, c.stderr)
}

// runHelp lists the commands, then serve's flags since serve is the
// default command; with a command name it shows that command's help.
func runHelp(c cli, args []string) int {
	if len(args) > 0 && args[0] != "help" {
		return dispatch([]string{args[0], "-h"}, c)
	}
	fmt.Fprintln(c.stdout, "Usage: broker [COMMAND] [flags]")
	fmt.Fprintln(c.stdout, "\nCommands:")
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	for _, cmd := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", cmd.name, cmd.summary)
	}
	tw.Flush()
	fmt.Fprintln(c.stdout, "\nRun `broker COMMAND -h` for a command's flags. The client commands (publish, tail)")
	fmt.Fprintf(c.stdout, "take --url (default %s, or %s) and --token (or %s).\n\n", defaultURL, envURL, envToken)
	config.Usage(c.stdout, "broker [serve]")
	return 0
}

// The client commands read these variables; they are not configuration
// keys, so configEnviron hides them from config.Load, which would warn
// about an unknown BROKER_* variable.
const (
	envURL     = "BROKER_URL"
	envToken   = "BROKER_TOKEN"
	defaultURL = "http://127.0.0.1:8080"
)

// configEnviron is environ without the client commands' own variables.
func configEnviron(environ []string) []string {
	return slices.DeleteFunc(slices.Clone(environ), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return name == envURL || name == envToken
	})
}

// clientFlags are the flags of the commands that talk to a running broker.
type clientFlags struct{ url, token *string }

func addClientFlags(fs *flagSet) clientFlags {
	return clientFlags{
		url:   fs.String("url", "", "broker base `URL` (default $"+envURL+", else "+defaultURL+")"),
		token: fs.String("token", "", "`JWT` sent as a Bearer token (default $"+envToken+")"),
	}
}

// client builds the broker client; a flag wins over the environment.
func (f clientFlags) client(environ []string) *client.Client {
	u := cmp.Or(*f.url, lookupEnv(environ, envURL), defaultURL)
	var opts []client.Option
	if tok := cmp.Or(*f.token, lookupEnv(environ, envToken)); tok != "" {
		opts = append(opts, client.WithToken(tok))
	}
	return client.New(u, opts...)
}

// lookupEnv is os.LookupEnv on the given environment; later entries win,
// as in exec.Cmd.Env.
func lookupEnv(environ []string, name string) string {
	val := ""
	for _, kv := range environ {
		if n, v, ok := strings.Cut(kv, "="); ok && n == name {
			val = v
		}
	}
	return val
}

// isTerminal reports whether w is a terminal: progress lines and notices
// are for people watching, and stay out of pipes and files.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// signalContext ends on SIGINT or SIGTERM, so that Ctrl-C ends a
// long-running command through its normal path (flushing, exit code).
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// flagSet is a subcommand's flags with the usage text it prints for -h.
type flagSet struct {
	*flag.FlagSet
	synopsis, doc string
}

// newFlagSet makes a flag set that prints nothing by itself: parse
// decides where help and errors go.
func newFlagSet(name, synopsis, doc string) *flagSet {
	fs := flag.NewFlagSet("broker "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flagSet{FlagSet: fs, synopsis: synopsis, doc: doc}
}

func (fs *flagSet) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", fs.synopsis, fs.doc)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		arg, text := flag.UnquoteUsage(f)
		if arg != "" {
			arg = " " + strings.ToUpper(arg)
		}
		if f.DefValue != "" && f.DefValue != "false" {
			text += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(tw, "  --%s%s\t%s\n", f.Name, arg, text)
	})
	fmt.Fprintln(w, "\nFlags:")
	tw.Flush()
}

// parse parses args with flags allowed before, between and after the
// positional arguments (`broker publish chat-1 hello --event token`);
// everything after "--" is positional. Help goes to stdout with exit code
// 0, an error to stderr with 2; ok false means return that code.
func (fs *flagSet) parse(c cli, args []string) (positional []string, code int, ok bool) {
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.usage(c.stdout)
			return nil, 0, false
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "%s: %v\nRun `%s -h` for help.\n", fs.Name(), err, fs.Name())
			return nil, 2, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, 0, true
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), 0, true
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// usageError reports a wrong command line the way parse does.
func (fs *flagSet) usageError(c cli, format string, a ...any) int {
	fmt.Fprintf(c.stderr, "%s: %s\nRun `%s -h` for help.\n", fs.Name(), fmt.Sprintf(format, a...), fs.Name())
	return 2
}

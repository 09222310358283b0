package examples_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// publisher is one of the example publishers and how to run it.
type publisher struct {
	name string
	// command returns the command that runs the example, or fails (or
	// skips) the test when its runtime is missing.
	command func(t *testing.T) *exec.Cmd
}

var publishers = []publisher{
	{"go", func(t *testing.T) *exec.Cmd { return exec.Command(goPublisher(t)) }},
	{"python", func(t *testing.T) *exec.Cmd {
		return exec.Command(requireTool(t, "python3", 3, 8), "python/publisher.py")
	}},
	{"node", func(t *testing.T) *exec.Cmd {
		return exec.Command(requireTool(t, "node", 18, 0), "node/publisher.mjs")
	}},
}

// requireTool returns the path of a runtime at least major.minor. Missing or
// too old, it fails the test when SSEB_REQUIRE_EXAMPLES is set (as
// scripts/test.sh does), else skips it.
func requireTool(t *testing.T, name string, major, minor int) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		why := fmt.Sprintf(format, args...)
		if os.Getenv("SSEB_REQUIRE_EXAMPLES") != "" {
			t.Fatalf("SSEB_REQUIRE_EXAMPLES is set but %s", why)
		}
		t.Skipf("%s; install it, or set SSEB_REQUIRE_EXAMPLES=1 to make this a failure", why)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		missing("%s is not on PATH: %v", name, err)
	}
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		missing("%s --version failed: %v: %s", path, err, out)
	}
	m := regexp.MustCompile(`(\d+)\.(\d+)`).FindSubmatch(out)
	if m == nil {
		missing("%s --version printed no version: %q", path, out)
	}
	gotMajor, _ := strconv.Atoi(string(m[1]))
	gotMinor, _ := strconv.Atoi(string(m[2]))
	if gotMajor < major || gotMajor == major && gotMinor < minor {
		missing("%s is version %d.%d, the example needs %d.%d or later", path, gotMajor, gotMinor, major, minor)
	}
	return path
}

var goBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// goPublisher builds the Go example once per test process.
func goPublisher(t *testing.T) string {
	t.Helper()
	goBuild.once.Do(func() {
		goBuild.dir, goBuild.err = os.MkdirTemp("", "sseb-examples-")
		if goBuild.err != nil {
			return
		}
		goBuild.path = filepath.Join(goBuild.dir, "publisher")
		out, err := exec.Command("go", "build", "-o", goBuild.path, "./go/publisher").CombinedOutput()
		if err != nil {
			goBuild.err = fmt.Errorf("go build ./go/publisher: %v\n%s", err, out)
		}
	})
	if goBuild.err != nil {
		t.Fatal(goBuild.err)
	}
	return goBuild.path
}

// printedToken is one "token <id> <json data>" line of a publisher.
type printedToken struct {
	ID   string
	Data string
}

// publisherRun is what a publisher printed, and when.
type publisherRun struct {
	Stream string
	Tokens []printedToken
	StopID string
	// LastTokenAt is when the test read the last token line: every token
	// was published by then.
	LastTokenAt time.Time
	Err         error // a bad line, or the process's exit error
	Stderr      string
}

// runningPublisher is a started publisher.
type runningPublisher struct {
	stream chan string // receives the stream id once printed
	done   chan struct{}
	run    publisherRun
}

// startPublisher runs p with env (over the test's own environment) and
// follows its output. The process is killed if the test ends first.
func startPublisher(t *testing.T, p publisher, env map[string]string, args ...string) *runningPublisher {
	t.Helper()
	cmd := p.command(t)
	cmd.Args = append(cmd.Args, args...)
	cmd.Env = withEnv(os.Environ(), env)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the %s publisher: %v", p.name, err)
	}
	rp := &runningPublisher{stream: make(chan string, 1), done: make(chan struct{})}
	go func() {
		defer close(rp.done)
		rp.run.Err = rp.follow(bufio.NewScanner(stdout))
		if err := cmd.Wait(); err != nil && rp.run.Err == nil {
			rp.run.Err = fmt.Errorf("exit: %w", err)
		}
		rp.run.Stderr = stderr.String()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-rp.done
	})
	return rp
}

// follow parses the publisher's lines: "stream ID", then "token ID DATA"
// lines, then "stop ID".
func (rp *runningPublisher) follow(sc *bufio.Scanner) error {
	line := 0
	for sc.Scan() {
		line++
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		switch {
		case kind == "stream" && line == 1:
			rp.run.Stream = rest
			rp.stream <- rest
		case kind == "token" && line > 1 && rp.run.StopID == "":
			id, data, _ := strings.Cut(rest, " ")
			var tok printedToken
			tok.ID = id
			if err := json.Unmarshal([]byte(data), &tok.Data); err != nil || id == "" {
				return fmt.Errorf("line %d %q: want token <id> <JSON string>", line, sc.Text())
			}
			if strings.Contains(data, `\u`) { // the README: all three print the same lines
				return fmt.Errorf("line %d %q: the token's text escaped, not as is (UTF-8)", line, sc.Text())
			}
			rp.run.Tokens = append(rp.run.Tokens, tok)
			rp.run.LastTokenAt = time.Now()
		case kind == "stop" && line > 1 && rp.run.StopID == "" && rest != "":
			rp.run.StopID = rest
		default:
			return fmt.Errorf("unexpected line %d: %q", line, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading stdout: %w", err)
	}
	if rp.run.StopID == "" {
		return fmt.Errorf("no stop line after %d lines", line)
	}
	return nil
}

// streamID waits for the "stream" line.
func (rp *runningPublisher) streamID(t *testing.T) string {
	t.Helper()
	select {
	case s := <-rp.stream:
		return s
	case <-rp.done:
		t.Fatalf("the publisher ended before printing its stream: %v\nstderr: %s", rp.run.Err, rp.run.Stderr)
	case <-time.After(30 * time.Second):
		t.Fatal("the publisher printed no stream line in 30 s")
	}
	return ""
}

// wait waits for the publisher to exit and checks that it succeeded.
func (rp *runningPublisher) wait(t *testing.T) publisherRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	select {
	case <-rp.done:
	case <-ctx.Done():
		t.Fatal("the publisher did not finish in 60 s")
	}
	if rp.run.Err != nil {
		t.Fatalf("publisher: %v\nstderr: %s", rp.run.Err, rp.run.Stderr)
	}
	return rp.run
}

// withEnv returns base with the variables of env set (replacing any
// earlier value of the same name).
func withEnv(base []string, env map[string]string) []string {
	out := make([]string, 0, len(base)+len(env))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := env[name]; !ok {
			out = append(out, kv)
		}
	}
	for name, value := range env {
		out = append(out, name+"="+value)
	}
	return out
}

// Package brokerproc builds the real broker binary once per test process
// and runs it as a child process on a free port, for tests that need the
// real thing: several nodes, a proxy in front, kill -9.
package brokerproc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// Binary builds ./cmd/broker once and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "sseb-broker-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "broker")
		cmd := exec.Command("go", "build", "-o", build.path, "./cmd/broker")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// Process is a running broker.
type Process struct {
	URL  string // http://127.0.0.1:PORT
	Addr string // 127.0.0.1:PORT
	cmd  *exec.Cmd

	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
	err  error
}

// Start runs the broker with args (after --listen 127.0.0.1:PORT; pass
// "--listen", addr yourself to choose the port) and waits until it
// listens. The process is killed when the test ends.
func Start(t testing.TB, args ...string) *Process {
	t.Helper()
	full := append([]string{"--listen", "127.0.0.1:0"}, args...)
	cmd := exec.Command(Binary(t), full...)
	cmd.Env = append(os.Environ(), "BROKER_LOG_FORMAT=json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.logs.Write(line)
			p.logs.WriteByte('\n')
			p.mu.Unlock()
			var entry struct{ Message, Addr string }
			if json.Unmarshal(line, &entry) == nil && entry.Message == "broker listening" {
				addr <- entry.Addr
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.Kill() })
	select {
	case a := <-addr:
		p.Addr, p.URL = a, "http://"+a
	case <-p.done:
		t.Fatalf("broker exited at start: %v\n%s", p.err, p.Logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("broker did not start:\n%s", p.Logs())
	}
	return p
}

// Logs returns what the broker logged so far.
func (p *Process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Kill kills the process (kill -9) and waits for it.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Signal sends sig without waiting.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Done is closed when the process has exited; Err then holds its exit
// error (nil for exit 0).
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit error once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Terminate sends SIGTERM and waits up to timeout for the exit; it returns
// the exit error (nil for exit 0).
func (p *Process) Terminate(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("broker did not exit within %s", timeout)
	}
}

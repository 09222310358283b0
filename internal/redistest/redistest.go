// Package redistest runs a real redis-server for tests: on a free loopback
// port, without persistence, stopped when the test ends. Tests skip when
// redis-server is not installed, unless SSEB_REQUIRE_REDIS is set (the
// test script sets it: there a missing server is a failure).
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running (or stopped) redis-server.
type Server struct {
	Addr string // 127.0.0.1:PORT
	URL  string // redis://127.0.0.1:PORT/0
	port int
	args []string
	cmd  *exec.Cmd
}

// Start runs a redis-server until the test ends. extra are added to its
// command line (e.g. "--maxmemory-policy", "allkeys-lru").
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("SSEB_REQUIRE_REDIS") != "" {
			t.Fatal("redis-server is not installed and SSEB_REQUIRE_REDIS is set")
		}
		t.Skip("redis-server is not installed (set SSEB_REQUIRE_REDIS to make this a failure)")
	}
	port := freePort(t)
	s := &Server{
		Addr: fmt.Sprintf("127.0.0.1:%d", port),
		URL:  fmt.Sprintf("redis://127.0.0.1:%d/0", port),
		port: port,
		args: append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", t.TempDir(),
			"--maxmemory-policy", "noeviction",
		}, extra...),
	}
	s.Restart(t)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Restart starts the server again on the same port (with empty data).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		t.Fatal("redistest: Restart of a running server")
	}
	s.cmd = exec.Command("redis-server", s.args...)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	c := s.Client(t)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// NOAUTH answers too: a server started with --requirepass.
		err := c.Ping(context.Background()).Err()
		if err == nil || strings.HasPrefix(err.Error(), "NOAUTH") {
			break
		}
		if time.Now().After(deadline) {
			s.Stop(t) // Start registers its cleanup only once this returns
			t.Fatal("redis-server did not answer within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop kills the server (as a crash would) and waits for it to exit.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Client returns a client of the server; the caller closes it.
func (s *Server) Client(t testing.TB) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

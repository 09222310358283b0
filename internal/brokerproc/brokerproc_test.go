package brokerproc

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A broker started by a test is gone once that test ends: a leaked one
// would hold its port, its files and a core for the rest of the run.
func TestKilledWhenTheTestEnds(t *testing.T) {
	var p *Process
	t.Run("start", func(t *testing.T) { p = Start(t) })
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		p.Kill()
		t.Fatal("the broker still runs after the test that started it ended")
	}
}

// Terminate reports how the process ended: nil for the exit 0 of a
// drain, an error for a broker that did not end that way.
func TestTerminateReportsTheExit(t *testing.T) {
	p := Start(t)
	if err := p.Terminate(15 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v, want exit 0\n%s", err, p.Logs())
	}
	killed := Start(t)
	killed.Kill()
	if err := killed.Terminate(5 * time.Second); err == nil {
		t.Fatal("Terminate of a broker killed with -9 returned nil")
	}
}

// Start reads the start-up line from a JSON log whatever the test's own
// environment asks for: a developer's BROKER_LOG_FORMAT=console must not
// leave every test waiting for a line it cannot parse.
func TestStartWithConsoleLogsInTheEnvironment(t *testing.T) {
	t.Setenv("BROKER_LOG_FORMAT", "console")
	p := Start(t)
	if !strings.Contains(p.Logs(), `"message":"broker listening"`) {
		t.Fatalf("logs:\n%s", p.Logs())
	}
}

// fatalTB is a testing.TB whose Fatal ends only the goroutine that called
// it and records the message, so that a test can watch Start fail.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

// A broker that exits at start fails Start at once, with its log, rather
// than after the start-up bound.
func TestStartFailsAtOnceWhenTheBrokerExits(t *testing.T) {
	Binary(t) // built before the clock starts
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		Start(ft, "--log-level", "loud") // a bad configuration: exit 2
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Start did not return")
	}
	if !strings.Contains(ft.msg, "broker exited at start") || !strings.Contains(ft.msg, "log.level") {
		t.Fatalf("Start failed with %q, want the early exit and the broker's own line", ft.msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Start took %v to notice the exit", d)
	}
}

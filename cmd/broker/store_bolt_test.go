package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/brokerproc"
)

// The durable store never runs on a single P unless the operator asked
// for it (see ensureTwoProcs).
func TestEnsureTwoProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))

	runtime.GOMAXPROCS(1)
	if procs, raised := ensureTwoProcs(""); !raised || procs != 2 || runtime.GOMAXPROCS(0) != 2 {
		t.Fatalf("one P, no GOMAXPROCS: got %d raised %v, runtime has %d; want 2 raised", procs, raised, runtime.GOMAXPROCS(0))
	}

	runtime.GOMAXPROCS(1)
	if _, raised := ensureTwoProcs("1"); raised || runtime.GOMAXPROCS(0) != 1 {
		t.Fatalf("GOMAXPROCS=1 set by the operator: raised %v, runtime has %d; want it left at 1", raised, runtime.GOMAXPROCS(0))
	}

	runtime.GOMAXPROCS(3)
	if procs, raised := ensureTwoProcs(""); raised || procs != 3 {
		t.Fatalf("three Ps: got %d raised %v; want 3 left alone", procs, raised)
	}
}

// The binary with a bolt store, run on one CPU without GOMAXPROCS set,
// raises GOMAXPROCS to 2 and says so at start; the memory store leaves it.
// (TestEnsureTwoProcs tests the function; this, that openBolt calls it.)
func TestBoltOnOneCPURaisesGOMAXPROCS(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("taskset is not installed: cannot pin the broker to one CPU")
	}
	const raised = "GOMAXPROCS raised to 2"
	db := filepath.Join(t.TempDir(), "broker.db")
	if logs := startupLog(t, "taskset", "-c", "0", brokerproc.Binary(t), "--listen", "127.0.0.1:0", "--store", "bolt:"+db); !strings.Contains(lineWith(logs, raised), `"gomaxprocs":2`) {
		t.Fatalf("bolt on one CPU: no line saying GOMAXPROCS was raised to 2:\n%s", logs)
	}
	if logs := startupLog(t, "taskset", "-c", "0", brokerproc.Binary(t), "--listen", "127.0.0.1:0"); strings.Contains(logs, raised) {
		t.Fatalf("the memory store raised GOMAXPROCS:\n%s", logs)
	}
}

// startupLog runs a command that starts a broker, without GOMAXPROCS in
// its environment, and returns its log up to the start-up line; the
// broker is killed then.
func startupLog(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") }), "BROKER_LOG_FORMAT=json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	timer := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	var logs strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		logs.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), `"message":"broker listening"`) {
			return logs.String()
		}
	}
	t.Fatalf("%s: no start-up line:\n%s", name, logs.String())
	return ""
}

//go:build unix

package rlimit

import (
	"syscall"
	"testing"
)

// Raise lifts a lowered soft limit to the hard one and reports the limit
// in force. (The Go runtime raises the soft limit itself at start, so the
// test lowers it first; it puts the original back at the end.)
func TestRaise(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	if orig.Max < 128 {
		t.Skipf("hard RLIMIT_NOFILE is %d: no room to lower the soft limit below it", orig.Max)
	}
	low := syscall.Rlimit{Cur: 64, Max: orig.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	got, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if now.Cur != orig.Max || got != uint64(orig.Max) {
		t.Fatalf("soft limit %d after Raise, which returned %d; want both the hard limit %d", now.Cur, got, orig.Max)
	}
	// At the hard limit already: nothing to do, the same answer.
	if got, err := Raise(); err != nil || got != uint64(orig.Max) {
		t.Fatalf("Raise at the hard limit: %d, %v; want %d", got, err, orig.Max)
	}
}

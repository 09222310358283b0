package main

import (
	"runtime"
	"testing"
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

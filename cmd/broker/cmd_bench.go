package main

import (
	"os"

	"github.com/sse-broker/broker/internal/ssebench"
)

// runBench is `broker bench`: the load tool of cmd/ssebench, so that a
// load test needs nothing but the broker binary (e.g. inside its image).
// `broker bench -h` lists its flags; `broker bench summarize` its summary.
func runBench(c cli, args []string) int {
	ctx, stop := signalContext()
	defer stop()
	var self []string // how -procs starts its workers: `broker bench`
	if exe, err := os.Executable(); err == nil {
		self = []string{exe, "bench"}
	}
	return ssebench.Main(ctx, self, args, c.stdout, c.stderr)
}

package main

import "github.com/sse-broker/broker/internal/ssebench"

// runBench is `broker bench`: the load tool of cmd/ssebench, so that a
// load test needs nothing but the broker binary (e.g. inside its image).
// `broker bench -h` lists its flags; `broker bench summarize` its summary.
func runBench(c cli, args []string) int {
	ctx, stop := signalContext()
	defer stop()
	return ssebench.Main(ctx, args, c.stdout, c.stderr)
}

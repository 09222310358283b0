// Command ssebench is the broker's load tool (internal/ssebench); the same
// tool runs as `broker bench`. scripts/bench.sh builds this binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sse-broker/broker/internal/ssebench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var self []string // how -procs starts its workers: this executable
	if exe, err := os.Executable(); err == nil {
		self = []string{exe}
	}
	os.Exit(ssebench.Main(ctx, self, os.Args[1:], os.Stdout, os.Stderr))
}

package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/bolt"
)

// openBolt opens the embedded durable store.
func openBolt(spec config.StoreSpec, opts broker.StoreOptions, hub *broker.Hub) (broker.Store, error) {
	if procs, raised := ensureTwoProcs(os.Getenv("GOMAXPROCS")); raised {
		opts.Logger.Info().Int("gomaxprocs", procs).
			Msg("durable store on one CPU: GOMAXPROCS raised to 2 so that the handlers run while the committer waits for fsync")
	}
	s, err := bolt.Open(spec.Path, opts, hub)
	if err != nil {
		return nil, fmt.Errorf("store: bolt:%s: %w", spec.Path, err)
	}
	return s, nil
}

// ensureTwoProcs raises GOMAXPROCS to 2 when the runtime chose 1 (the
// process may use one CPU) and the operator did not set it (env is the
// GOMAXPROCS variable).
//
// Why: the bolt committer's fsync is a blocking system call, and the Go
// runtime hands the blocked thread's P to another thread only when its
// monitor notices the call has lasted a while, which a ~1 ms fsync in a
// busy process often escapes. With one P nothing else runs meanwhile: the
// publish handlers that would join the next transaction are not even read
// off their sockets, each transaction carries one request, and group
// commit is gone. Measured with `tokens -full -batch 3 -concurrency 1000`
// on one core: 3,200 events/s with one P, 14,900 with two
// (docs/performance-log.md, "The durable store").
func ensureTwoProcs(env string) (procs int, raised bool) {
	procs = runtime.GOMAXPROCS(0)
	if procs > 1 || env != "" {
		return procs, false
	}
	runtime.GOMAXPROCS(2)
	return 2, true
}

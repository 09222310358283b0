// Package writepath measures the broker's publish → fan-out path beside
// the same workload through the r3labs/sse/v2 server, so that the choice
// of writing SSE ourselves stays a measured one. It holds no code, only
// tests and benchmarks.
//
// Both servers run in this process behind httptest.NewServer: ours is the
// whole broker (memory store, hub, api.Server with chi and its middleware,
// production default queue of 256 frames); theirs is sse.New() with
// AutoStream on and AutoReplay off, served from a ServeMux at /events as
// its README shows, subscribers on ?stream=NAME. Subscribers are real HTTP
// clients on loopback, one goroutine each, counting "\n\n"-terminated
// events as bytes arrive. Events are published in-process (ours:
// Broker.Publish, the call a POST makes after decoding; theirs:
// Server.Publish), 32 bytes of data each, and the publisher never runs more
// than window+checkEvery (64+16) events ahead of the slowest subscriber.
//
// Run, without -race:
//
//	go test -run '^$' -bench . -benchtime 2000x -count 3 ./bench/writepath/
//
// BenchmarkFanout/impl=ours|r3labs/shape=SxN: S streams × N subscribers
// each (1x1000: a broadcast; 1000x2: a stream per conversation). One op is
// one event published to every stream; the clock stops when every
// subscriber has read every event. ns/op is per op; read the per-event
// figures, which divide by the events delivered (b.N × subscribers):
//
//   - ns/delivered: wall time per delivered event, publisher, server and
//     clients sharing the machine's CPUs (so a lower bound on neither
//     side's cost alone, but the same handicap for both);
//   - allocs/delivered, B/delivered: runtime.MemStats Mallocs and
//     TotalAlloc over the timed loop, whole process. The clients allocate
//     next to nothing per read; per-publish costs (ours: store, encoding;
//     theirs: the Event) are shared by N subscribers, so they weigh far
//     more in 1000x2 than in 1x1000. Ours also includes one-time growth
//     of each subscriber's queue, which shrinks per event as b.N grows.
//
// BenchmarkIdleSubscriberMemory/impl=ours|r3labs/shape=SxN: 2,000 idle
// subscriptions; HeapInuse+StackInuse after GC, before and after they
// connect, minus the same measured against a handler that only answers
// the headers and blocks. bytes/subscriber is then what the SSE server
// adds per subscriber on top of a bare open net/http request (including
// its share of per-stream state), split into heap-B/subscriber and
// stack-B/subscriber; baseline-bytes/conn is what was subtracted (both
// ends of a bare connection), for scale. ns/op means nothing there.
//
// Compare medians of the -count runs (benchstat works); a ratio ours /
// r3labs below 1 is ours cheaper. The tests of this package check the
// event counter and that each harness delivers exactly every event, so a
// benchmark cannot silently measure nothing.
package writepath

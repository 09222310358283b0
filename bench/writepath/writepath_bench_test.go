package writepath

import (
	"runtime"
	"testing"
)

// fanoutShapes: one stream watched by many (a broadcast), and many
// streams watched by two each (one stream per conversation, the broker's
// usual load).
var fanoutShapes = []shape{{1, 1000}, {1000, 2}}

// BenchmarkFanout publishes b.N rounds (one event to every stream of the
// shape) in-process and stops the clock once every subscriber has read
// every event over HTTP. ns/op is per round; the per-event figures are
// divided by the events delivered, b.N × subscribers. The allocation
// figures are process-wide (publisher, server and the counting clients)
// over the timed loop; the clients allocate next to nothing per read.
func BenchmarkFanout(b *testing.B) {
	for _, im := range impls {
		b.Run("impl="+im.name, func(b *testing.B) {
			for _, sh := range fanoutShapes {
				b.Run("shape="+sh.String(), func(b *testing.B) {
					f := startFanout(b, im, sh, false)
					var before, after runtime.MemStats
					runtime.GC()
					runtime.ReadMemStats(&before)
					b.ResetTimer()
					err := f.run(b.N, window, checkEvery)
					b.StopTimer()
					runtime.ReadMemStats(&after)
					if err != nil {
						b.Fatal(err)
					}
					delivered := float64(b.N) * float64(f.n)
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/delivered, "ns/delivered")
					b.ReportMetric(float64(after.Mallocs-before.Mallocs)/delivered, "allocs/delivered")
					b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/delivered, "B/delivered")
				})
			}
		})
	}
}

// idleSubscribers is the number of idle subscriptions measured. Each costs
// two file descriptors here (client and server end in this process), and
// the baseline's are closed before the server's are opened.
const idleSubscribers = 2000

// BenchmarkIdleSubscriberMemory measures what an idle subscription costs
// the server. Method: start the server, collect garbage twice and read
// HeapInuse+StackInuse; connect idleSubscribers subscribers (each has read
// its response headers and preamble, so the server holds it registered);
// collect and read again. The growth covers both ends of every connection
// (client goroutine, read buffer, transport state, and net/http's server
// connection), so the same is measured against a handler that only
// answers the headers and blocks, and subtracted: "bytes/subscriber" is
// what the SSE server adds per subscriber on top of a bare net/http
// request that stays open, including its share of per-stream state (the
// 1000x2 shape has a stream per two subscribers); heap-B/subscriber and
// stack-B/subscriber split it into heap objects and goroutine stacks.
// "baseline-bytes/conn" is the subtracted figure, for scale. The measurement does not depend on
// b.N; ns/op means nothing here.
func BenchmarkIdleSubscriberMemory(b *testing.B) {
	shapes := []shape{{1, idleSubscribers}, {idleSubscribers / 2, 2}}
	for _, im := range impls {
		b.Run("impl="+im.name, func(b *testing.B) {
			for _, sh := range shapes {
				b.Run("shape="+sh.String(), func(b *testing.B) {
					b.StopTimer()
					base := idleBytes(b, startBlocking, sh)
					got := idleBytes(b, im.start, sh)
					n := float64(sh.subscribers())
					b.ReportMetric(float64(got.total()-base.total())/n, "bytes/subscriber")
					b.ReportMetric(float64(got.heap-base.heap)/n, "heap-B/subscriber")
					b.ReportMetric(float64(got.stack-base.stack)/n, "stack-B/subscriber")
					b.ReportMetric(float64(base.total())/n, "baseline-bytes/conn")
				})
			}
		})
	}
}

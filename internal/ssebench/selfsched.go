package ssebench

import (
	"math"
	"runtime/metrics"
)

// The tool's own share of the latency it reports.
//
// Every event's latency ends when a reader goroutine of this process has
// parsed it, and this process runs on one core with thousands of such
// goroutines. The Go runtime records how long its goroutines waited,
// runnable, for a CPU (/sched/latencies:seconds); the tool reports that
// wait over the publishing phase beside the latency, so a run can tell a
// slow server from a busy tool.

const schedLatencies = "/sched/latencies:seconds"

// schedSample is the runtime's scheduling-latency histogram at one point.
type schedSample struct {
	counts  []uint64
	buckets []float64
}

func readSched() schedSample {
	s := []metrics.Sample{{Name: schedLatencies}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return schedSample{}
	}
	h := s[0].Value.Float64Histogram()
	return schedSample{counts: append([]uint64(nil), h.Counts...), buckets: h.Buckets}
}

// schedLatencySince returns the percentiles, in µs, of the waits recorded
// since start, or nil when the runtime does not record them. A percentile
// is the upper bound of its bucket (the runtime's buckets are about 12%
// wide at these sizes).
func schedLatencySince(start schedSample) *Latency {
	end := readSched()
	if len(end.counts) == 0 || len(start.counts) != len(end.counts) {
		return nil
	}
	delta := make([]uint64, len(end.counts))
	var n uint64
	for i := range delta {
		delta[i] = end.counts[i] - start.counts[i]
		n += delta[i]
	}
	if n == 0 {
		return nil
	}
	at := func(q float64) float64 {
		rank := uint64(math.Ceil(q * float64(n)))
		var seen uint64
		for i, c := range delta {
			seen += c
			if seen >= rank && c > 0 {
				hi := end.buckets[i+1]
				if math.IsInf(hi, 1) {
					hi = end.buckets[i]
				}
				return hi * 1e6
			}
		}
		return 0
	}
	return &Latency{P50: at(0.5), P90: at(0.9), P99: at(0.99), P999: at(0.999), Max: at(1)}
}

package ssebench

import (
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// Quiet seconds: the latency of the seconds the hypervisor left alone.
//
// A stall of the host (steal.go) delays every event in flight, and one
// stall of 100 ms in a 10 s run of 4,000 events a second delays a few
// hundred events: about what p99 counts. A run's steal, averaged over the
// run, cannot tell such a run from a quiet one (0.7% of two CPUs for 10 s
// is one 140 ms stall). So the tool keeps the latency of the events sent
// in each second of publishing apart, reads the host's steal each second,
// and reports the latency of the events sent in the seconds with no steal
// at all beside the run's. /proc/stat counts steal in ticks of 10 ms, so
// "no steal" is no tick on any CPU during that second; a stall that began
// late in the second before still shows in that second's count, and the
// events of a quiet second sent just before a stall wait for it (both make
// the quiet figure higher, never lower).

// maxSeconds bounds the seconds of publishing kept apart; later events
// count in the run's latency only.
const maxSeconds = 3600

// secondHistograms holds the latency of the events sent in each second of
// publishing.
type secondHistograms struct {
	// first is the runner's clock at the first publish.
	first atomic.Int64
	h     [maxSeconds]atomic.Pointer[Histogram]
}

// record counts d for the second in which the event was sent (sent: the
// runner's clock, as in the payload).
func (s *secondHistograms) record(sent int64, d time.Duration) {
	since := sent - s.first.Load()
	if since < 0 || since >= int64(maxSeconds)*int64(time.Second) {
		return // (a division would put the last nanoseconds before first in second 0)
	}
	i := since / int64(time.Second)
	h := s.h[i].Load()
	if h == nil {
		h = new(Histogram)
		if !s.h[i].CompareAndSwap(nil, h) {
			h = s.h[i].Load()
		}
	}
	h.Record(d)
}

// at returns the histogram of second i, or nil when no event sent in it
// was received.
func (s *secondHistograms) at(i int) *Histogram {
	if i < 0 || i >= maxSeconds {
		return nil
	}
	return s.h[i].Load()
}

// stealSeries reads the host's steal once a second.
type stealSeries struct{ last stealMeter }

func newStealSeries() *stealSeries { return &stealSeries{last: startSteal()} }

// next returns the steal since the previous call, in percent of all CPUs'
// time, or -1 when it cannot be read.
func (s *stealSeries) next() float64 {
	now := startSteal()
	pct := now.since(s.last)
	s.last = now
	return pct
}

// publishSeconds is the number of seconds in which events were sent and
// received, the ones that can be quiet.
func (res *Result) publishSeconds() int {
	n := 0
	for _, p99 := range res.P99PerSecondUS {
		if p99 > 0 {
			n++
		}
	}
	return n
}

// stealReading is the steal read from the end of the reading before (or
// the first publish) until until, in percent (-1: not read).
type stealReading struct {
	until time.Duration // since the first publish
	pct   float64
}

// stealPerSecond spreads the readings over the whole seconds they cover.
// A reading normally covers about one second; when the progress loop that
// takes them is late, one covers more, and a second may share two
// readings. A second's figure is then the worst of those that cover at
// least a tick of it (/proc/stat counts in ticks of 10 ms, so a shorter
// overlap says nothing): -1 when one was not read, else the highest. So a
// second is never quiet unless every reading that covers it found no steal.
func stealPerSecond(readings []stealReading) []float64 {
	if len(readings) == 0 {
		return nil
	}
	const tick = 10 * time.Millisecond
	seconds := int(readings[len(readings)-1].until / time.Second) // whole seconds covered
	out := make([]float64, seconds)
	for i := range out {
		out[i] = math.Inf(-1) // none yet
	}
	var from time.Duration
	for _, rd := range readings {
		for s := int(from / time.Second); s < seconds && time.Duration(s)*time.Second < rd.until; s++ {
			start, end := max(from, time.Duration(s)*time.Second), min(rd.until, time.Duration(s+1)*time.Second)
			switch {
			case end-start < tick || out[s] == -1:
			case rd.pct < 0:
				out[s] = -1
			default:
				out[s] = math.Max(out[s], rd.pct)
			}
		}
		from = rd.until
	}
	for i, v := range out {
		if math.IsInf(v, -1) {
			out[i] = -1 // covered by no reading long enough to tell
		}
	}
	return out
}

// setQuietFigures fills in the per-second series and the quiet latency
// from the steal readings and the per-second histograms.
func (res *Result) setQuietFigures(readings []stealReading, by *secondHistograms) {
	steal := stealPerSecond(readings)
	if !slices.ContainsFunc(steal, func(pct float64) bool { return pct >= 0 }) {
		return // no second's steal was read: nothing is known to be quiet
	}
	res.StealPerSecond = steal
	res.P99PerSecondUS = make([]float64, len(steal))
	quietSeconds := 0
	res.QuietSeconds = &quietSeconds
	var quiet Histogram
	for i, pct := range steal {
		h := by.at(i)
		if h == nil {
			continue
		}
		res.P99PerSecondUS[i] = float64(h.Quantile(0.99)) / float64(time.Microsecond)
		if pct == 0 {
			quietSeconds++
			quiet.merge(h)
		}
	}
	if quiet.Count() > 0 {
		l := latencyOf(&quiet)
		res.QuietLatencyUS = &l
	}
}

package ssebench

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits sets the precision of the histogram: each power of two is split
// into 1<<subBits linear sub-buckets, so a recorded value is known to within
// 1/(1<<subBits) of itself (about 3% with 5 bits), like HdrHistogram's
// significant digits, over the whole int64 range, with a fixed 16 KiB table.
const subBits = 5

const nBuckets = (64 - subBits + 1) << subBits

// Histogram counts non-negative durations (nanoseconds) in log-linear
// buckets. Record is safe for concurrent use (atomic adds only).
type Histogram struct {
	counts [nBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v) // exact for small values
	}
	exp := bits.Len64(v) - subBits - 1 // shift that keeps subBits+1 top bits
	top := v >> uint(exp)              // in [1<<subBits, 2<<subBits)
	return (exp+1)<<subBits + int(top-1<<subBits)
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < 1<<subBits {
		return uint64(i), uint64(i)
	}
	exp := i>>subBits - 1
	top := uint64(i&(1<<subBits-1)) + 1<<subBits
	lo = top << uint(exp)
	hi = lo + 1<<uint(exp) - 1
	return lo, hi
}

// Record adds one value; negative values (clock skew) count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(uint64(v))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns how many values were recorded.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max returns the largest value recorded, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the value at quantile q (0 < q <= 1): the upper bound of
// the bucket holding the ceil(q*n)-th smallest value, never above Max. It
// overstates the true value by less than one bucket width (about 3%).
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			_, hi := bucketRange(i)
			if m := uint64(h.max.Load()); hi > m {
				hi = m
			}
			return time.Duration(hi)
		}
	}
	return h.Max()
}

// histogramWire is a Histogram between processes (-procs): the non-empty
// buckets by index, and the exact maximum.
type histogramWire struct {
	Buckets map[int]uint64 `json:"buckets"`
	Max     int64          `json:"max_ns"`
}

// MarshalJSON writes the non-empty buckets and the maximum.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	w := histogramWire{Buckets: map[int]uint64{}, Max: h.max.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			w.Buckets[i] = c
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON wrote into an empty Histogram.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var w histogramWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	for i, c := range w.Buckets {
		if i < 0 || i >= nBuckets {
			return fmt.Errorf("histogram bucket %d out of range", i)
		}
		h.counts[i].Add(c)
		h.n.Add(c)
	}
	h.max.Store(w.Max)
	return nil
}

// merge adds every value recorded in o to h.
func (h *Histogram) merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
			h.n.Add(c)
		}
	}
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

package ssebench

import (
	"math/bits"
	"sync"
)

// seqSet is a set of payload sequence numbers (each stream numbers its
// events 0, 1, 2, ...), one bit each: a subscriber of a 30 s fan-out run
// (about 20,000 events) needs 2.5 KiB.
type seqSet []uint64

// add puts seq in the set and reports whether it was new.
func (s *seqSet) add(seq uint64) bool {
	w := seq / 64
	for uint64(len(*s)) <= w {
		*s = append(*s, 0)
	}
	bit := uint64(1) << (seq % 64)
	if (*s)[w]&bit != 0 {
		return false
	}
	(*s)[w] |= bit
	return true
}

// count is the number of elements.
func (s seqSet) count() uint64 {
	var n int
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return uint64(n)
}

// countNotIn is the number of elements of s that are not in o.
func (s seqSet) countNotIn(o seqSet) uint64 {
	var n int
	for i, w := range s {
		if i < len(o) {
			w &^= o[i]
		}
		n += bits.OnesCount64(w)
	}
	return uint64(n)
}

// ackedSet is the sequence numbers of one stream's events that the server
// acknowledged, written by the publishing workers.
type ackedSet struct {
	mu  sync.Mutex
	set seqSet
}

// add records that events first..first+n-1 were acknowledged.
func (a *ackedSet) add(first, n uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for seq := first; seq < first+n; seq++ {
		a.set.add(seq)
	}
}

// snapshot is the set as it is now, for counting once publishing is over.
func (a *ackedSet) snapshot() seqSet {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append(seqSet(nil), a.set...)
}

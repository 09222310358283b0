package broker

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// Event ids are unsigned 64-bit integers sent as decimal strings. An id is
//
//	epoch << SequenceBits | sequence
//
// where the epoch is a millisecond clock reading (since 2025-01-01 UTC) and
// the sequence counts the ids issued within that millisecond. An IDClock
// never issues an id at or below one it issued before, and never one below
// the current clock's epoch. So ids increase along every stream, and a
// broker that restarts (losing an in-memory store) issues ids above every
// id of its previous life, as long as the wall clock does not step back
// across the restart: a client holding an old id gets "gap", never a
// collision or a silent skip.
//
// 23 bits of sequence allow 8.4 million ids per millisecond before the
// counter borrows from the next millisecond; 41 bits of epoch last until
// 2094.
const SequenceBits = 23

// IDBaseMillis is the zero of the epoch clock, 2025-01-01T00:00:00Z in
// Unix milliseconds: an id's top bits are milliseconds since then. (The
// Redis store maps ids to stream entry ids with it.)
const IDBaseMillis = 1735689600000

// IDClock issues ids. It is safe for concurrent use; the zero value is not
// usable, call NewIDClock.
type IDClock struct {
	last atomic.Uint64
	now  func() time.Time
}

// NewIDClock returns an IDClock reading now (time.Now when nil).
func NewIDClock(now func() time.Time) *IDClock {
	if now == nil {
		now = time.Now
	}
	return &IDClock{now: now}
}

// Floor returns the smallest id the clock may issue now.
func (c *IDClock) Floor() uint64 { return EpochFloor(c.now()) }

// Next returns a new id, greater than every id this clock issued before.
func (c *IDClock) Next() uint64 {
	floor := c.Floor()
	for {
		last := c.last.Load()
		next := max(last+1, floor)
		if c.last.CompareAndSwap(last, next) {
			return next
		}
	}
}

// Advance makes sure every later id is above id. A durable store calls it
// with the highest id on disk when it opens, so ids go on above it even if
// the wall clock stepped back meanwhile.
func (c *IDClock) Advance(id uint64) {
	for {
		last := c.last.Load()
		if last >= id || c.last.CompareAndSwap(last, id) {
			return
		}
	}
}

// EpochFloor returns the first id of the epoch that t falls in.
func EpochFloor(t time.Time) uint64 {
	ms := t.UnixMilli() - IDBaseMillis
	if ms < 0 {
		ms = 0
	}
	return uint64(ms) << SequenceBits
}

// ErrInvalidID reports a resume point or `after` value that is not an id.
var ErrInvalidID = errors.New("invalid event id")

// ParseID parses a resume point: 1 to 20 decimal digits without leading
// zeros, or "0", fitting an unsigned 64-bit integer. "" parses as 0 (no
// resume point). Leading zeros are refused so that every id has exactly one
// spelling: "007" and "7" must never both be valid resume points.
func ParseID(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	if len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%w: %q must be 1 to 20 decimal digits without leading zeros", ErrInvalidID, truncate(s, 32))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: %q must be decimal digits", ErrInvalidID, truncate(s, 32))
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q does not fit an unsigned 64-bit integer", ErrInvalidID, truncate(s, 32))
	}
	return v, nil
}

// FormatID is the wire form of an id.
func FormatID(id uint64) string { return strconv.FormatUint(id, 10) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

package bolt

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
)

// Names of buckets and keys. See the package comment for the layout.
var (
	bucketBroker  = []byte("broker")
	bucketStreams = []byte("streams")
	keyVersion    = []byte("version")
	keyMaxID      = []byte("max_id")

	keyMeta         = []byte("m")
	bucketEvents    = []byte("e")
	bucketIdem      = []byte("k")
	bucketIdemOrder = []byte("o")
)

// layoutVersion is stored under broker/version; Open refuses a file with
// another one rather than misreading it.
const layoutVersion = 1

// meta is a stream's record. It is stored as metaVersion followed by its
// eight fields as big-endian 64-bit integers.
type meta struct {
	createdAt   int64  // Unix nanoseconds
	lastPublish int64  // Unix nanoseconds of the last publish or close
	lastID      uint64 // newest id the stream issued, 0: none
	lastEvicted uint64 // newest evicted id, 0: none
	stopID      uint64 // id of the stop event, 0: the stream is open
	firstID     uint64 // oldest retained id, 0: nothing retained
	firstTime   int64  // Unix nanoseconds of firstID's event
	retained    uint64 // events in the events bucket
}

const (
	metaVersion = 1
	metaLen     = 1 + 8*8
)

func (m *meta) closed() bool { return m.stopID != 0 }

// stopIsFirst reports whether the oldest retained event is the stop event,
// which is never trimmed.
func (m *meta) stopIsFirst() bool { return m.stopID != 0 && m.firstID == m.stopID }

func appendMeta(dst []byte, m *meta) []byte {
	dst = append(dst, metaVersion)
	for _, v := range [...]uint64{
		uint64(m.createdAt), uint64(m.lastPublish), m.lastID, m.lastEvicted,
		m.stopID, m.firstID, uint64(m.firstTime), m.retained,
	} {
		dst = binary.BigEndian.AppendUint64(dst, v)
	}
	return dst
}

func decodeMeta(b []byte) (meta, error) {
	if len(b) != metaLen || b[0] != metaVersion {
		return meta{}, fmt.Errorf("bolt: stream record of %d bytes, version %d: not a record this build reads", len(b), firstByte(b))
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[1+8*i:]) }
	return meta{
		createdAt: int64(u(0)), lastPublish: int64(u(1)), lastID: u(2), lastEvicted: u(3),
		stopID: u(4), firstID: u(5), firstTime: int64(u(6)), retained: u(7),
	}, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// putID writes id as an 8-byte big-endian key, so that bbolt's byte order
// is id order.
func putID(dst []byte, id uint64) { binary.BigEndian.PutUint64(dst, id) }

func idOf(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

// An event is stored as: Unix nanoseconds (8 bytes, big-endian), the
// length of its name as a uvarint (0 for the default "message"), the name,
// then the data to the end of the value. The SSE wire form is rebuilt on
// read (broker.EncodeFrame).

func eventLen(e *broker.Event) int {
	n := len(e.Name)
	if e.Name == broker.EventMessage {
		n = 0
	}
	return 8 + uvarintLen(uint64(n)) + n + len(e.Data)
}

func putEvent(dst []byte, e *broker.Event) {
	binary.BigEndian.PutUint64(dst, uint64(e.Time.UnixNano()))
	name := e.Name
	if name == broker.EventMessage {
		name = ""
	}
	off := 8 + binary.PutUvarint(dst[8:], uint64(len(name)))
	off += copy(dst[off:], name)
	copy(dst[off:], e.Data)
}

func eventTime(v []byte) int64 {
	if len(v) < 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func decodeEvent(k, v []byte) (broker.Event, error) {
	if len(k) != 8 || len(v) < 9 {
		return broker.Event{}, fmt.Errorf("bolt: malformed event record (key %d bytes, value %d bytes)", len(k), len(v))
	}
	n, w := binary.Uvarint(v[8:])
	if w <= 0 || uint64(len(v)-8-w) < n {
		return broker.Event{}, fmt.Errorf("bolt: malformed event record %d", idOf(k))
	}
	off := 8 + w
	name := broker.EventMessage
	if n > 0 {
		name = string(v[off : off+int(n)])
	}
	return broker.Event{
		ID:   idOf(k),
		Name: name,
		Data: string(v[off+int(n):]),
		Time: time.Unix(0, eventTime(v)),
	}, nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// The ids of an idempotent publish are stored back to back, 8 bytes each.

func putIDs(dst []byte, ids []uint64) {
	for i, id := range ids {
		binary.BigEndian.PutUint64(dst[8*i:], id)
	}
}

func decodeIDs(v []byte) []uint64 {
	ids := make([]uint64, len(v)/8)
	for i := range ids {
		ids[i] = binary.BigEndian.Uint64(v[8*i:])
	}
	return ids
}

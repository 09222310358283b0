package redisstore

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
)

// A Redis Stream entry id "<ms>-<seq>" is the broker id
// (ms-broker.IDBaseMillis)<<SequenceBits | seq.
const (
	idBaseMillis = broker.IDBaseMillis
	seqLimit     = 1 << broker.SequenceBits
	// maxMillis is the last millisecond a broker id can hold.
	maxMillis = idBaseMillis + (1<<(64-broker.SequenceBits) - 1)
)

// parseRedisID turns a Redis Stream entry id into a broker id.
func parseRedisID(s string) (uint64, error) {
	msText, seqText, ok := strings.Cut(s, "-")
	if !ok {
		return 0, fmt.Errorf("redis stream id %q: no '-'", s)
	}
	ms, err := strconv.ParseUint(msText, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis stream id %q: %w", s, err)
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis stream id %q: %w", s, err)
	}
	switch {
	case ms < idBaseMillis || ms > maxMillis:
		return 0, fmt.Errorf("redis stream id %q: the Redis clock is outside 2025..2094", s)
	case seq >= seqLimit:
		return 0, fmt.Errorf("redis stream id %q: more than %d ids in one millisecond", s, seqLimit)
	}
	return (ms-idBaseMillis)<<broker.SequenceBits | seq, nil
}

// redisID is the Redis Stream entry id of a broker id.
func redisID(id uint64) string {
	ms := id>>broker.SequenceBits + idBaseMillis
	seq := id & (seqLimit - 1)
	return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq, 10)
}

// idTime is the time an id was issued: Redis's clock when it stored the
// event.
func idTime(id uint64) time.Time {
	return time.UnixMilli(int64(id>>broker.SequenceBits + idBaseMillis)).UTC()
}

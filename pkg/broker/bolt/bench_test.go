package bolt

import (
	"path/filepath"
	"testing"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/storetest"
)

// BenchmarkPublish measures acknowledged publishes (each one event of 100
// bytes, on disk before Publish returns) with 1, 16 and 256 concurrent
// publishers, each on its own stream or all on one. Besides events/s it
// reports commits per event; bbolt syncs twice per commit (pages, then the
// meta page), so fsyncs/event is twice commits/event.
func BenchmarkPublish(b *testing.B) {
	storetest.BenchmarkPublish(b, func(b *testing.B, o broker.StoreOptions, fan broker.Fanout) broker.Store {
		s, err := Open(filepath.Join(b.TempDir(), "bench.db"), o, fan)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}, func(s broker.Store) func(*testing.B) {
		st := s.(*Store)
		before := st.commits.Load()
		return func(b *testing.B) {
			commits := float64(st.commits.Load()-before) / float64(b.N)
			b.ReportMetric(commits, "commits/event")
			b.ReportMetric(2*commits, "fsyncs/event")
		}
	})
}

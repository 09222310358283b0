package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
)

// BenchmarkPublish measures acknowledged publishes (each one event of 100
// bytes, on disk before Publish returns) with 1, 16 and 256 concurrent
// publishers, each on its own stream or all on one. It reports events/s
// and commits per event; bbolt syncs twice per commit (pages, then the
// meta page), so fsyncs/event is twice commits/event.
func BenchmarkPublish(b *testing.B) {
	for _, publishers := range []int{1, 16, 256} {
		for _, shared := range []bool{false, true} {
			if publishers == 1 && shared {
				continue // the same as its own stream
			}
			streams := "own"
			if shared {
				streams = "shared"
			}
			b.Run(fmt.Sprintf("publishers=%d/streams=%s", publishers, streams), func(b *testing.B) {
				benchPublish(b, publishers, shared)
			})
		}
	}
}

func benchPublish(b *testing.B, publishers int, shared bool) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"),
		options(broker.StoreOptions{MaxEvents: 1000, MaxStreams: 100000}), broker.NewHub(1, 1))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	msgs := []broker.Message{{Name: broker.EventMessage, Data: strings.Repeat("x", 100)}}
	ctx := context.Background()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	commits := s.commits.Load()
	b.ResetTimer()
	start := time.Now()
	for p := range publishers {
		stream := "shared"
		if !shared {
			stream = fmt.Sprint("publisher-", p)
		}
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := s.Publish(ctx, stream, msgs, ""); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	commits = s.commits.Load() - commits
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(commits)/float64(b.N), "commits/event")
	b.ReportMetric(2*float64(commits)/float64(b.N), "fsyncs/event")
}

package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/broker"
)

// BenchmarkPublish measures acknowledged publishes (one event of 100
// bytes each) with 1, 16 and 256 concurrent publishers, each on its own
// stream or all on one, and reports events/s. newStore opens a fresh store
// (the benchmark closes it). measure, when not nil, is called before the
// timed loop and returns what reports the store's own figures after it.
func BenchmarkPublish(b *testing.B, newStore func(b *testing.B, opts broker.StoreOptions, fan broker.Fanout) broker.Store,
	measure func(s broker.Store) (report func(b *testing.B))) {
	for _, publishers := range []int{1, 16, 256} {
		for _, shared := range []bool{false, true} {
			if publishers == 1 && shared {
				continue // the same as its own stream
			}
			streams := map[bool]string{false: "own", true: "shared"}[shared]
			b.Run(fmt.Sprintf("publishers=%d/streams=%s", publishers, streams), func(b *testing.B) {
				s := newStore(b, Defaults(broker.StoreOptions{MaxStreams: 100000}), broker.NewHub(1, 1))
				defer s.Close()
				msgs := []broker.Message{{Name: broker.EventMessage, Data: strings.Repeat("x", 100)}}
				var (
					next   atomic.Int64
					wg     sync.WaitGroup
					report func(*testing.B)
				)
				if measure != nil {
					report = measure(s)
				}
				b.ResetTimer()
				start := time.Now()
				for p := range publishers {
					stream := "shared"
					if !shared {
						stream = fmt.Sprint("publisher-", p)
					}
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if _, err := s.Publish(context.Background(), stream, msgs, ""); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
				if report != nil {
					report(b)
				}
			})
		}
	}
}

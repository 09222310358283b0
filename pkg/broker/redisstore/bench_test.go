package redisstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/redistest"
	"github.com/sse-broker/broker/pkg/broker"
)

// BenchmarkPublish measures acknowledged publishes (one event each) per
// second with 1, 16 and 256 concurrent publishers, each on its own stream,
// against a local redis-server. A Hub without subscribers is the fan-out,
// so the feed's cost per event is counted but not delivery.
func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b)
	for _, publishers := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("publishers=%d", publishers), func(b *testing.B) {
			c := srv.Client(b)
			defer c.Close()
			if err := c.FlushAll(context.Background()).Err(); err != nil {
				b.Fatal(err)
			}
			hub := broker.NewHub(1000, 256)
			s, err := New(context.Background(), Options{URL: srv.URL}, broker.StoreOptions{
				MaxEvents: 1000, MaxAge: time.Hour, IdleTTL: time.Hour, MaxStreams: 100000,
			}, hub)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			msg := []broker.Message{{Name: broker.EventMessage, Data: "a token of an answer"}}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for p := range publishers {
				wg.Go(func() {
					stream := fmt.Sprint("bench-", p)
					for next.Add(1) <= int64(b.N) {
						if _, err := s.Publish(context.Background(), stream, msg, ""); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
		})
	}
}

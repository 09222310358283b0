package redisstore

import (
	"context"
	"testing"

	"github.com/sse-broker/broker/internal/redistest"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/storetest"
)

// BenchmarkPublish measures acknowledged publishes (one event each) per
// second with 1, 16 and 256 concurrent publishers against a local
// redis-server (FLUSHALL before each run).
func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b)
	storetest.BenchmarkPublish(b, func(b *testing.B, o broker.StoreOptions, fan broker.Fanout) broker.Store {
		c := srv.Client(b)
		defer c.Close()
		if err := c.FlushAll(context.Background()).Err(); err != nil {
			b.Fatal(err)
		}
		s, err := New(context.Background(), Options{URL: srv.URL}, o, fan)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}, nil)
}

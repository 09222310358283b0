package memory

import (
	"testing"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, o broker.StoreOptions, fan broker.Fanout) broker.Store {
		return New(o, fan)
	})
}

func BenchmarkPublish(b *testing.B) {
	storetest.BenchmarkPublish(b, func(b *testing.B, o broker.StoreOptions, fan broker.Fanout) broker.Store {
		return New(o, fan)
	}, nil)
}

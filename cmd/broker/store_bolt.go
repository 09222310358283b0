package main

import (
	"fmt"

	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/bolt"
)

// openBolt opens the embedded durable store.
func openBolt(spec config.StoreSpec, opts broker.StoreOptions, hub *broker.Hub) (broker.Store, error) {
	s, err := bolt.Open(spec.Path, opts, hub)
	if err != nil {
		return nil, fmt.Errorf("store: bolt:%s: %w", spec.Path, err)
	}
	return s, nil
}

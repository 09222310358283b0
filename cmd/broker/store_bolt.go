package main

import (
	"errors"

	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/pkg/broker"
)

// openBolt opens the embedded durable store.
func openBolt(spec config.StoreSpec, opts broker.StoreOptions, hub *broker.Hub) (broker.Store, error) {
	return nil, errors.New("store: bolt is not available in this build yet")
}

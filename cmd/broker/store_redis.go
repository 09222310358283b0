package main

import (
	"context"
	"errors"

	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/pkg/broker"
)

// openRedis connects the shared Redis store.
func openRedis(ctx context.Context, cfg config.Config, spec config.StoreSpec, opts broker.StoreOptions, hub *broker.Hub) (broker.Store, error) {
	return nil, errors.New("store: redis is not available in this build yet")
}

package main

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/memory"
)

// openStore opens the configured store, with hub as its fan-out.
func openStore(ctx context.Context, cfg config.Config, hub *broker.Hub, log zerolog.Logger) (broker.Store, error) {
	spec, err := config.ParseStore(cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err) // unreachable: config.Load validated it
	}
	opts := broker.StoreOptions{
		MaxEvents:  cfg.History.MaxEvents,
		MaxAge:     cfg.History.MaxAge,
		IdleTTL:    cfg.Streams.IdleTTL,
		MaxStreams: cfg.Streams.Max,
		Logger:     log,
	}
	switch spec.Kind {
	case config.StoreBolt:
		return openBolt(spec, opts, hub)
	case config.StoreRedis:
		return openRedis(ctx, cfg, spec, opts, hub)
	default:
		return memory.New(opts, hub), nil
	}
}

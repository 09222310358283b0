package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/sse-broker/broker/internal/config"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/redisstore"
)

// openRedis connects the shared Redis store. A Redis that does not answer
// yet is not an error (the broker starts unready and reconnects); an
// evicting maxmemory-policy is, unless redis.allow_eviction is set.
func openRedis(ctx context.Context, cfg config.Config, spec config.StoreSpec, opts broker.StoreOptions, hub *broker.Hub) (broker.Store, error) {
	routeRedisLogs(opts.Logger)
	s, err := redisstore.New(ctx, redisstore.Options{
		URL:           cfg.Store,
		AllowEviction: cfg.Redis.AllowEviction,
	}, opts, hub)
	if err != nil {
		return nil, err
	}
	opts.Logger.Info().Str("redis", spec.Addr).Int("db", spec.DB).Msg("redis store opened")
	return s, nil
}

// go-redis logs through one process-wide logger (plain lines on stderr by
// default, e.g. one per failed dial during an outage). routeRedisLogs sends
// them to the broker's logger at debug level: the store itself logs what an
// operator must see (feed lost, feed back, Redis not answering).
var (
	redisLogOnce sync.Once
	redisLog     atomic.Pointer[zerolog.Logger]
)

type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	if l := redisLog.Load(); l != nil {
		l.Debug().Str("component", "go-redis").Msg(strings.TrimSpace(fmt.Sprintf(format, v...)))
	}
}

func routeRedisLogs(log zerolog.Logger) {
	redisLog.Store(&log)
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}

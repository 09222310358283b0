package config

import "time"

// Every built-in default lives here, named, so that the code, the shipped
// configs/broker.yaml, the usage text and the README table (all generated
// from or checked against Fields) cannot drift apart.
const (
	// DefaultConfigFile is read when --config is not given and the file
	// exists, so that running the broker from the repository root picks up
	// the development settings without any flag.
	DefaultConfigFile = "configs/broker.yaml"

	// ConfigFileEnv names the configuration file when --config is not
	// given: a container image sets it once, and the broker and its
	// health check (broker healthcheck) then read the same file.
	ConfigFileEnv = "BROKER_CONFIG"

	// EnvPrefix starts every environment variable the broker reads; other
	// variables with this prefix are reported as warnings because they are
	// almost always a typo of a real one.
	EnvPrefix = "BROKER_"

	// DefaultListen is the usual unprivileged HTTP port on all interfaces;
	// production puts a proxy or a load balancer in front.
	DefaultListen = ":8080"

	// DefaultStore keeps everything in process memory: nothing to set up
	// for development, lost on restart.
	DefaultStore = "memory"

	// DefaultHistoryMaxEvents bounds replay per stream: enough for a long
	// streamed answer token by token, small enough to keep memory flat.
	DefaultHistoryMaxEvents = 1000

	// DefaultHistoryMaxAge covers a client that reconnects after a laptop
	// sleep or a network change, not one that comes back the next day.
	DefaultHistoryMaxAge = time.Hour

	// DefaultStreamsIdleTTL deletes forgotten streams after a day so that
	// one-stream-per-conversation usage does not grow without bound.
	DefaultStreamsIdleTTL = 24 * time.Hour

	// DefaultStreamsMax caps the number of live streams so that a runaway
	// client cannot exhaust memory; beyond it creation answers 503.
	DefaultStreamsMax = 100000

	// DefaultSubscribersMax caps concurrent SSE connections, which each hold
	// a file descriptor and a queue (and, over TLS, HTTP/2 or HTTP/1.0, a
	// goroutine); beyond it: 503.
	DefaultSubscribersMax = 100000

	// DefaultSubscribersQueue is how many publish requests (a batch counts
	// once; the SPEC's table says "events") one subscriber may lag behind
	// before it is cut off and made to resume from history, so a slow
	// client never slows the publishers.
	DefaultSubscribersQueue = 256

	// DefaultSSERetry is sent as "retry:" so that clients reconnect quickly
	// but not in a tight loop.
	DefaultSSERetry = 3 * time.Second

	// DefaultSSEHeartbeat stays well below the 30-60 s idle timeouts common
	// in proxies and load balancers.
	DefaultSSEHeartbeat = 15 * time.Second

	// DefaultPublishMaxBody (1 MiB) is far above any single answer chunk
	// and keeps one request from pinning much memory.
	DefaultPublishMaxBody int64 = 1 << 20

	// DefaultJWTAlgorithm is the simplest to set up (one shared secret).
	DefaultJWTAlgorithm = "HS256"

	// DefaultDemoEnabled serves the demo page in development;
	// configs/production.yaml turns it off.
	DefaultDemoEnabled = true

	// DefaultAdminEnabled serves the operator's page in development;
	// configs/production.yaml turns it off (with auth off it would list
	// every active stream id to anyone).
	DefaultAdminEnabled = true

	// DefaultPublishRate and DefaultSubscribeRate are 0 (no limit) because a
	// sensible limit depends on the deployment: one backend service usually
	// publishes every stream under a single token subject.
	DefaultPublishRate   = 0.0
	DefaultSubscribeRate = 0.0

	// DefaultLogLevel logs requests and lifecycle events, not per-event
	// traffic.
	DefaultLogLevel = "info"

	// DefaultLogFormat is empty, meaning automatic: console on a terminal,
	// json otherwise (see Config.EffectiveLogFormat).
	DefaultLogFormat = ""
)

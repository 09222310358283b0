package api

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sse-broker/broker/pkg/broker"
)

// metrics is the broker's Prometheus registry. It is per Server, never the
// global default registry, so tests and embedders can run several.
type metrics struct {
	registry        *prometheus.Registry
	delivered       prometheus.Counter
	publishLatency  prometheus.Histogram
	deliveryLatency prometheus.Histogram
}

// latencyBuckets cover 50µs to ~3s: delivery on one node is sub-millisecond,
// a stalled store is seconds.
var latencyBuckets = prometheus.ExponentialBuckets(0.00005, 2.5, 13)

func newMetrics(b *broker.Broker) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sseb_events_delivered_total",
			Help: "Events written to subscribers (one per event per subscriber).",
		}),
		publishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sseb_publish_duration_seconds",
			Help:    "Time from a publish request's arrival to its acknowledgement.",
			Buckets: latencyBuckets,
		}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sseb_delivery_latency_seconds",
			Help:    "Time from an event being stored to its write to a subscriber.",
			Buckets: latencyBuckets,
		}),
	}
	stat := func(f func(broker.Stats) float64) func() float64 {
		return func() float64 { return f(b.Stats()) }
	}
	m.registry.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		m.delivered, m.publishLatency, m.deliveryLatency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sseb_subscribers", Help: "Connected subscribers on this node.",
		}, stat(func(s broker.Stats) float64 { return float64(s.Subscribers) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sseb_streams", Help: "Streams held by the store.",
		}, stat(func(s broker.Stats) float64 { return float64(s.Streams) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sseb_events_published_total", Help: "Events stored by publish and close requests on this node.",
		}, stat(func(s broker.Stats) float64 { return float64(s.EventsPublished) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sseb_slow_subscriber_disconnects_total", Help: "Subscribers cut off because their queue was full.",
		}, stat(func(s broker.Stats) float64 { return float64(s.SlowDisconnects) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sseb_store_errors_total", Help: "Store operations that failed for a reason other than the request.",
		}, stat(func(s broker.Stats) float64 { return float64(s.StoreErrors) })),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// observeDelivery counts events written to one subscriber, the oldest of
// them published at published (zero: not a live event, no latency).
func (m *metrics) observeDelivery(events int, published time.Time) {
	if events == 0 {
		return
	}
	m.delivered.Add(float64(events))
	if !published.IsZero() {
		m.deliveryLatency.Observe(time.Since(published).Seconds())
	}
}

package cluster

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/brokerproc"
	"github.com/sse-broker/broker/internal/redistest"
	"github.com/sse-broker/broker/pkg/sse"
)

// BenchmarkDeliveryTwoNodes: two broker processes on one redis-server;
// 100 subscribers of one stream, half on each node; b.N events published
// one by one through node A, each carrying its send time. Reports events
// delivered per second (all subscribers) and the publish → delivery
// latency percentiles seen by the subscribers on node B, i.e. across
// Redis. Run (without -race):
//
//	go test -run '^$' -bench DeliveryTwoNodes -benchtime 2000x ./e2e/cluster/
func BenchmarkDeliveryTwoNodes(b *testing.B) {
	const subscribers = 100
	r := redistest.Start(b)
	nodes := []*brokerproc.Process{
		brokerproc.Start(b, "--store", r.URL),
		brokerproc.Start(b, "--store", r.URL),
	}
	stream := "bench"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: subscribers, MaxConnsPerHost: subscribers + 8}}

	var (
		mu        sync.Mutex
		latencies []time.Duration // subscribers on node B only
		ready     sync.WaitGroup
		done      sync.WaitGroup
	)
	want := b.N
	for i := range subscribers {
		ready.Add(1)
		done.Add(1)
		node := nodes[i%2]
		go func() {
			defer done.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, node.URL+"/v1/streams/"+stream+"/events", nil)
			res, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				ready.Done()
				return
			}
			defer res.Body.Close()
			ready.Done()
			dec := sse.NewDecoder(res.Body)
			var local []time.Duration
			for got := 0; got < want; got++ {
				ev, err := dec.Next()
				if err != nil {
					b.Errorf("subscriber %d after %d events: %v", i, got, err)
					return
				}
				sent, _ := strconv.ParseInt(strings.SplitN(ev.Data, " ", 2)[0], 10, 64)
				local = append(local, time.Since(time.Unix(0, sent)))
			}
			if i%2 == 1 {
				mu.Lock()
				latencies = append(latencies, local...)
				mu.Unlock()
			}
		}()
	}
	ready.Wait()
	time.Sleep(100 * time.Millisecond) // the subscriptions are registered on their nodes
	pad := strings.Repeat("x", 64)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		body := fmt.Sprintf("%d %s", time.Now().UnixNano(), pad)
		res, err := hc.Post(nodes[0].URL+"/v1/streams/"+stream+"/messages", "text/plain", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			b.Fatalf("publish: %d", res.StatusCode)
		}
	}
	done.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N*subscribers)/elapsed.Seconds(), "delivered/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
}

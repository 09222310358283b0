package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/brokerproc"
	"github.com/sse-broker/broker/internal/redistest"
)

// Every setting that serve hands to the API and the store reaches the
// running binary: each case starts a broker with one key away from its
// default, through a --config file, and checks what a client sees. pkg/api
// and the stores test the behaviours with their options set directly;
// this is the wiring from the file to them, which nothing else covers.
func TestSettingsReachTheServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key, yaml string
		check     func(t *testing.T, base string)
	}{
		{"sse.retry", "sse:\n  retry: 1234ms\n", func(t *testing.T, base string) {
			if !streamHasLine(t, base+"/v1/streams/s/events", 3*time.Second, func(l string) bool { return l == "retry: 1234" }) {
				t.Fatal("the subscription's retry field is not the configured 1234 ms")
			}
		}},
		{"sse.heartbeat", "sse:\n  heartbeat: 100ms\n", func(t *testing.T, base string) {
			if !streamHasLine(t, base+"/v1/streams/s/events", 3*time.Second, func(l string) bool { return strings.HasPrefix(l, ":") }) {
				t.Fatal("no heartbeat within 3s with sse.heartbeat 100ms")
			}
		}},
		{"demo.enabled", "demo:\n  enabled: false\n", func(t *testing.T, base string) {
			wantStatus(t, http.MethodGet, base+"/", http.StatusNotFound)
		}},
		{"admin.enabled", "admin:\n  enabled: false\n", func(t *testing.T, base string) {
			wantStatus(t, http.MethodGet, base+"/admin", http.StatusNotFound)
		}},
		{"debug.pprof", "debug:\n  pprof: true\n", func(t *testing.T, base string) {
			wantStatus(t, http.MethodGet, base+"/debug/pprof/", http.StatusOK)
		}},
		{"limits.publish_rate", "limits:\n  publish_rate: 1\n", func(t *testing.T, base string) {
			wantStatus(t, http.MethodPost, base+"/v1/streams/s/messages", http.StatusCreated)
			wantStatus(t, http.MethodPost, base+"/v1/streams/s/messages", http.StatusTooManyRequests)
		}},
		{"limits.subscribe_rate", "limits:\n  subscribe_rate: 1\n", func(t *testing.T, base string) {
			wantStatus(t, http.MethodGet, base+"/v1/streams/s/events", http.StatusOK)
			wantStatus(t, http.MethodGet, base+"/v1/streams/s/events", http.StatusTooManyRequests)
		}},
		{"subscribers.max", "subscribers:\n  max: 1\n", func(t *testing.T, base string) {
			res, err := http.Get(base + "/v1/streams/s/events")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close() // held open: the one subscriber allowed
			wantStatus(t, http.MethodGet, base+"/v1/streams/s/events", http.StatusServiceUnavailable)
		}},
		{"streams.max", "streams:\n  max: 1\n", func(t *testing.T, base string) {
			wantStatus(t, http.MethodPost, base+"/v1/streams/a/messages", http.StatusCreated)
			wantStatus(t, http.MethodPost, base+"/v1/streams/b/messages", http.StatusServiceUnavailable)
		}},
		{"streams.idle_ttl", "streams:\n  idle_ttl: 100ms\n", func(t *testing.T, base string) {
			wantStatus(t, http.MethodPost, base+"/v1/streams/s/messages", http.StatusCreated)
			eventually(t, "the idle stream to be deleted", func() bool { return status(t, http.MethodGet, base+"/v1/streams/s") == http.StatusNotFound })
		}},
		{"history.max_age", "history:\n  max_age: 100ms\n", func(t *testing.T, base string) {
			wantStatus(t, http.MethodPost, base+"/v1/streams/s/messages", http.StatusCreated)
			eventually(t, "the old event to be dropped", func() bool {
				res, err := http.Get(base + "/v1/streams/s")
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				var info struct{ Retained int }
				return json.NewDecoder(res.Body).Decode(&info) == nil && info.Retained == 0
			})
		}},
	} {
		t.Run(tc.key, func(t *testing.T) {
			p := brokerproc.Start(t, "--config", writeConfig(t, tc.yaml))
			tc.check(t, p.URL)
		})
	}
}

// With redis.allow_eviction the broker starts on a Redis whose
// maxmemory-policy may evict keys; without, it refuses to (the redisstore
// tests cover the refusal).
func TestRedisAllowEvictionReachesTheStore(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t, "--maxmemory-policy", "allkeys-lru")
	p := brokerproc.Start(t, "--store", r.URL, "--config", writeConfig(t, "redis:\n  allow_eviction: true\n"))
	wantStatus(t, http.MethodPost, p.URL+"/v1/streams/s/messages", http.StatusCreated)
}

// status sends a request with a small body and returns the answer's status.
func status(t *testing.T, method, url string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("hi"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close() // a subscription ends here: only its head is wanted
	return res.StatusCode
}

func wantStatus(t *testing.T, method, url string, want int) {
	t.Helper()
	if got := status(t, method, url); got != want {
		t.Fatalf("%s %s: %d, want %d", method, url, got, want)
	}
}

// eventually polls cond for up to 3 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 3s for %s", what)
		}
	}
}

// streamHasLine subscribes to url and reports whether a line of the
// response satisfies match within the bound.
func streamHasLine(t *testing.T, url string, within time.Duration, match func(string) bool) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if match(sc.Text()) {
			return true
		}
	}
	return false
}

package main

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/ssebench"
)

// The load tool, as target floor, against the floor server: every event
// reaches every subscriber once, and the process metrics it reads are
// there. Its figures would mean nothing if the floor skipped work.
func TestLoadToolCountsEveryEventThroughTheFloor(t *testing.T) {
	ts := httptest.NewServer(newHandler())
	defer ts.Close()
	res, err := ssebench.Run(t.Context(), ssebench.Config{
		URL: ts.URL, Target: "floor", Scenario: "conversations", Subscribers: 6, Streams: 3,
		Rate: 500, Count: 150, Payload: 64, Concurrency: 4, Drain: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Connected != 6 || res.ConnectErrors != 0 || res.Published != 150 || res.PublishErrors != 0 {
		t.Fatalf("connected %d (errors %d), published %d (errors %d)", res.Connected, res.ConnectErrors, res.Published, res.PublishErrors)
	}
	if res.Delivered != 300 || res.Lost != 0 || res.Duplicated != 0 || res.Unexpected != 0 {
		t.Fatalf("delivered %d lost %d dup %d unexpected %d, want 300 and no loss", res.Delivered, res.Lost, res.Duplicated, res.Unexpected)
	}
	if res.MetricsError != "" || res.RSSAfter <= 0 || res.CPUPerMillion <= 0 {
		t.Fatalf("metrics: %q rss %v cpu/M %v", res.MetricsError, res.RSSAfter, res.CPUPerMillion)
	}
}

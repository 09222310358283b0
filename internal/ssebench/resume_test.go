package ssebench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/r3labs/sse/v2"

	"github.com/sse-broker/broker/internal/testbroker"
)

// cutOffRun publishes flat out to a broker whose subscriber queue holds 2
// publish requests, so subscribers fall behind and the broker ends their
// responses; its history holds every event, so a resume can be exact.
func cutOffRun(t *testing.T, noResume bool) *Result {
	t.Helper()
	b := testbroker.Start(t, testbroker.Options{NoDemo: true, Queue: 2, MaxEvents: 1_000_000})
	res, err := Run(t.Context(), Config{
		URL: b.URL, Target: "broker", Scenario: "fanout", Subscribers: 4, Streams: 1,
		Count: 4000, Payload: 2048, Concurrency: 16, Drain: 5 * time.Second,
		NoResume: noResume, ResumeWait: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("resume %v: delivered %d lost %d dup %d reconnects %d (eof %d, error %d) by %d subscribers, %d after resume, drain %s %.2fs",
		res.Resume, res.Delivered, res.Lost, res.Duplicated, res.Reconnects, res.ReconnectsEOF, res.ReconnectsError,
		res.SubscribersResumed, res.DeliveredAfterResume, res.DrainEnd, res.DrainSeconds)
	if res.Published != 4000 || res.Connected != 4 {
		t.Fatalf("published %d connected %d", res.Published, res.Connected)
	}
	return res
}

// TestResumeAfterCutOffLosesNothing: the broker cuts subscribers off, the
// tool resumes them with Last-Event-ID and they catch up from history.
func TestResumeAfterCutOffLosesNothing(t *testing.T) {
	res := cutOffRun(t, false)
	if res.Reconnects == 0 || res.SubscribersResumed == 0 || res.DeliveredAfterResume == 0 {
		t.Fatalf("no subscriber was cut off and resumed (reconnects %d, resumed %d, after resume %d): the test shows nothing",
			res.Reconnects, res.SubscribersResumed, res.DeliveredAfterResume)
	}
	if res.Lost != 0 || res.Duplicated != 0 || res.Unexpected != 0 || res.Gaps != 0 || res.Dropped != 0 {
		t.Fatalf("lost %d dup %d unexpected %d gaps %d dropped %d", res.Lost, res.Duplicated, res.Unexpected, res.Gaps, res.Dropped)
	}
	if res.Delivered != 16000 || res.Expected != 16000 || res.DrainEnd != "caught_up" || !res.Resume {
		t.Fatalf("delivered %d expected %d drain %q resume %v", res.Delivered, res.Expected, res.DrainEnd, res.Resume)
	}
	if res.Reconnects != res.ReconnectsEOF+res.ReconnectsError || res.ResumeRefused != 0 || res.Resume204 != 0 {
		t.Fatalf("reconnects %d = %d eof + %d error? refused %d, 204 %d",
			res.Reconnects, res.ReconnectsEOF, res.ReconnectsError, res.ResumeRefused, res.Resume204)
	}
	if res.DeliveredPerSec <= 0 || res.Duration < res.DrainSeconds {
		t.Fatalf("delivered/s %v over %vs (drain %vs)", res.DeliveredPerSec, res.Duration, res.DrainSeconds)
	}
}

// TestNoResumeCountsTheCutAsLost: the same run with -resume=false shows
// the old figure: everything after the cut is lost.
func TestNoResumeCountsTheCutAsLost(t *testing.T) {
	res := cutOffRun(t, true)
	if res.Lost == 0 || res.Dropped == 0 || res.SubscribersLosing == 0 {
		t.Fatalf("lost %d dropped %d losing %d: no subscriber was cut off", res.Lost, res.Dropped, res.SubscribersLosing)
	}
	if res.Reconnects != 0 || res.Resume || res.Duplicated != 0 {
		t.Fatalf("reconnects %d resume %v dup %d with resume off", res.Reconnects, res.Resume, res.Duplicated)
	}
}

// cuttingServer speaks the broker's API for one stream and ends every
// response after `per` events. A resume gets the events after its
// Last-Event-ID (the resume points are recorded), except where the test
// bends the rules with onResume.
type cuttingServer struct {
	t        *testing.T
	per      int
	onResume func(n int, after uint64) (status int, skip uint64, repeat bool)

	mu      sync.Mutex
	cond    *sync.Cond
	ids     []uint64 // published ids (100, 101, ...)
	data    []string
	resumes []string // Last-Event-ID of every subscribe that had one
}

func newCuttingServer(t *testing.T, per int) *cuttingServer {
	c := &cuttingServer{t: t, per: per}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *cuttingServer) start() *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/streams/{s}/messages", func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		id := uint64(100 + len(c.ids))
		c.ids = append(c.ids, id)
		c.data = append(c.data, string(data))
		c.cond.Broadcast()
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"stream": r.PathValue("s"), "ids": []string{fmt.Sprint(id)}})
	})
	mux.HandleFunc("GET /v1/streams/{s}/events", c.subscribe)
	ts := httptest.NewServer(mux)
	c.t.Cleanup(func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
		ts.Close()
	})
	return ts
}

func (c *cuttingServer) subscribe(w http.ResponseWriter, r *http.Request) {
	next := 0 // index into ids of the next event to send
	c.mu.Lock()
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		c.resumes = append(c.resumes, v)
		after, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			c.mu.Unlock()
			http.Error(w, "bad Last-Event-ID", http.StatusBadRequest)
			return
		}
		next = int(after-100) + 1
		status, skip, repeat := http.StatusOK, uint64(0), false
		if c.onResume != nil {
			status, skip, repeat = c.onResume(len(c.resumes), after)
		}
		if status != http.StatusOK {
			c.mu.Unlock()
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		if skip > 0 {
			fmt.Fprintf(w, "event: gap\ndata: {\"after\":\"%d\",\"first\":\"%d\"}\n\n", after, after+skip+1)
			next += int(skip)
		}
		if repeat {
			next--
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	_, _ = io.WriteString(w, "retry: 5000\n\n")
	w.(http.Flusher).Flush()
	stop := context.AfterFunc(r.Context(), func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	for sent := 0; sent < c.per; sent++ {
		c.mu.Lock()
		for next >= len(c.ids) && r.Context().Err() == nil {
			c.cond.Wait()
		}
		if r.Context().Err() != nil {
			c.mu.Unlock()
			return
		}
		id, data := c.ids[next], c.data[next]
		c.mu.Unlock()
		fmt.Fprintf(w, "id: %d\ndata: %s\n\n", id, data)
		w.(http.Flusher).Flush()
		next++
	}
	// Return: the response ends cleanly, as the broker's does on a cut.
}

func (c *cuttingServer) resumePoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.resumes...)
}

func runAgainst(t *testing.T, url string, count int) *Result {
	t.Helper()
	res, err := Run(t.Context(), Config{
		URL: url, Target: "broker", Scenario: "tokens", Subscribers: 1, Streams: 1,
		Count: count, Payload: 64, Concurrency: 1, Drain: time.Second, ResumeWait: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != uint64(count) {
		t.Fatalf("published %d of %d", res.Published, count)
	}
	return res
}

// TestResumeSendsTheLastIDItReceived: a response ended after every 5
// events is resumed from the id of the last event received, and nothing is
// lost or repeated.
func TestResumeSendsTheLastIDItReceived(t *testing.T) {
	c := newCuttingServer(t, 5)
	res := runAgainst(t, c.start().URL, 20)
	if res.Lost != 0 || res.Duplicated != 0 || res.Delivered != 20 || res.DeliveredAfterResume != 15 {
		t.Fatalf("lost %d dup %d delivered %d after resume %d", res.Lost, res.Duplicated, res.Delivered, res.DeliveredAfterResume)
	}
	// Cut after 104, 109, 114, 119: the last cut happens at the end of the
	// run, and its resume may or may not come before the run is counted.
	got := c.resumePoints()
	want := []string{"104", "109", "114", "119"}
	if len(got) < 3 || len(got) > 4 || fmt.Sprint(got) != fmt.Sprint(want[:len(got)]) {
		t.Fatalf("resume points %v, want %v (or its first 3)", got, want)
	}
	if res.ReconnectsEOF < 3 || res.ReconnectsError != 0 || res.SubscribersResumed != 1 || res.DrainEnd != "caught_up" {
		t.Fatalf("reconnects eof %d error %d, resumed %d, drain %q", res.ReconnectsEOF, res.ReconnectsError, res.SubscribersResumed, res.DrainEnd)
	}
}

// TestResumeThatRepeatsAnIDIsADuplicate: a server that resumes from the
// resume point inclusive (as r3labs does) shows up in duplicated.
func TestResumeThatRepeatsAnIDIsADuplicate(t *testing.T) {
	c := newCuttingServer(t, 5)
	c.onResume = func(n int, after uint64) (int, uint64, bool) { return http.StatusOK, 0, n == 1 }
	res := runAgainst(t, c.start().URL, 12)
	if res.Duplicated != 1 || res.Lost != 0 || res.Delivered != 13 {
		t.Fatalf("dup %d lost %d delivered %d, want 1 0 13", res.Duplicated, res.Lost, res.Delivered)
	}
}

// TestGapIsCountedAndItsIDsLost: a resume answered with "gap" that skips 3
// events counts one gap and 3 lost; the subscriber still catches up.
func TestGapIsCountedAndItsIDsLost(t *testing.T) {
	c := newCuttingServer(t, 5)
	c.onResume = func(n int, after uint64) (int, uint64, bool) {
		if n == 2 {
			return http.StatusOK, 3, false
		}
		return http.StatusOK, 0, false
	}
	res := runAgainst(t, c.start().URL, 20)
	if res.Gaps != 1 || res.Lost != 3 || res.Duplicated != 0 || res.DrainEnd != "caught_up" {
		t.Fatalf("gaps %d lost %d dup %d drain %q, want 1 3 0 caught_up", res.Gaps, res.Lost, res.Duplicated, res.DrainEnd)
	}
	// The gap has no id: the next resume point is the last real event's.
	if got := c.resumePoints(); len(got) < 3 || got[2] != "117" {
		t.Fatalf("resume points %v: third should be 117 (after 104, 109, gap to 113, 113..117)", got)
	}
}

// TestResume204EndsTheSubscriber: a resume answered 204 (stream closed)
// stops that subscriber; it is not counted as dropped, and the events it
// did not get count as lost.
func TestResume204EndsTheSubscriber(t *testing.T) {
	c := newCuttingServer(t, 5)
	c.onResume = func(n int, after uint64) (int, uint64, bool) { return http.StatusNoContent, 0, false }
	res := runAgainst(t, c.start().URL, 12)
	if res.Resume204 != 1 || res.Reconnects != 1 || res.Dropped != 0 || res.Lost != 7 || res.Delivered != 5 {
		t.Fatalf("204 %d reconnects %d dropped %d lost %d delivered %d, want 1 1 0 7 5",
			res.Resume204, res.Reconnects, res.Dropped, res.Lost, res.Delivered)
	}
	if got := c.resumePoints(); len(got) != 1 {
		t.Fatalf("resumed %d times after a 204", len(got))
	}
}

// TestResumeRefusedGivesUp: any other status ends the subscriber too (as
// EventSource fails the connection); it counts as dropped.
func TestResumeRefusedGivesUp(t *testing.T) {
	c := newCuttingServer(t, 5)
	c.onResume = func(n int, after uint64) (int, uint64, bool) { return http.StatusServiceUnavailable, 0, false }
	res := runAgainst(t, c.start().URL, 12)
	if res.ResumeRefused != 1 || res.Dropped != 1 || res.Lost != 7 {
		t.Fatalf("refused %d dropped %d lost %d, want 1 1 7", res.ResumeRefused, res.Dropped, res.Lost)
	}
}

// TestResumeWaitFollowsServerRetry: a negative -resume-wait pauses for the
// server's "retry:" (5 s here) before reconnecting, like a browser.
func TestResumeWaitFollowsServerRetry(t *testing.T) {
	r := &runner{cfg: Config{ResumeWait: -1}}
	if got := r.resumeWait(&sseState{retry: 5 * time.Second}); got != 5*time.Second {
		t.Fatalf("wait %v, want the server's 5s", got)
	}
	if got := r.resumeWait(&sseState{}); got != 3*time.Second {
		t.Fatalf("wait %v without retry, want 3s", got)
	}
	r.cfg.ResumeWait = 100 * time.Millisecond
	if got := r.resumeWait(&sseState{retry: 5 * time.Second}); got != 100*time.Millisecond {
		t.Fatalf("wait %v, want -resume-wait's 100ms", got)
	}
}

// TestResumeAgainstR3labs is the baseline's r3labs server (AutoStream,
// AutoReplay on, as in bench/baseline) with every response ended after
// 150 ms. r3labs replays the log from the Last-Event-ID inclusive, so each
// resume repeats one event: duplicated equals the resumes of subscribers
// that had received an event, and nothing is lost.
func TestResumeAgainstR3labs(t *testing.T) {
	server := sse.New()
	server.AutoStream = true
	defer server.Close()
	r := chi.NewRouter()
	r.Get("/events", func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), 150*time.Millisecond)
		defer cancel()
		server.ServeHTTP(w, req.WithContext(ctx))
	})
	r.Post("/publish", func(w http.ResponseWriter, req *http.Request) {
		stream := req.URL.Query().Get("stream")
		data, _ := io.ReadAll(req.Body)
		if !server.StreamExists(stream) {
			server.CreateStream(stream)
		}
		server.Publish(stream, &sse.Event{Data: data})
		w.WriteHeader(http.StatusNoContent)
	})
	ts := httptest.NewServer(r)
	defer ts.Close()
	res, err := Run(t.Context(), Config{
		URL: ts.URL, Target: "baseline", Scenario: "tokens", Subscribers: 2, Streams: 1,
		Rate: 200, Count: 200, Payload: 64, Concurrency: 2, Drain: 2 * time.Second, ResumeWait: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("r3labs: delivered %d dup %d reconnects %d by %d subscribers", res.Delivered, res.Duplicated, res.Reconnects, res.SubscribersResumed)
	if res.Reconnects < 2 || res.Lost != 0 {
		t.Fatalf("reconnects %d lost %d", res.Reconnects, res.Lost)
	}
	// A resume before the first event sends no Last-Event-ID and repeats
	// nothing; every other one repeats exactly the last event received.
	// (The last resume may race the end of the run: allow one uncounted.)
	if res.Duplicated == 0 || res.Duplicated > res.Reconnects || res.Duplicated+1 < res.Reconnects || res.Delivered != 400+res.Duplicated {
		t.Fatalf("dup %d reconnects %d delivered %d", res.Duplicated, res.Reconnects, res.Delivered)
	}
}

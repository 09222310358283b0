package ssebench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scriptedBroker speaks the broker's publish and subscribe API for one
// stream and one subscriber. For publish n (1, 2, ...) with body data,
// script decides what the subscriber is sent (with f.id and f.send) and
// returns the id to acknowledge and the status to answer.
func scriptedBroker(t *testing.T, script func(f *fakeStream, n int, data string) (id, status int)) *httptest.Server {
	f := &fakeStream{nextID: 100, events: make(chan string, 10000)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/streams/{s}/messages", func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.n++
		id, status := script(f, f.n, string(data))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"stream": r.PathValue("s"), "ids": []string{fmt.Sprint(id)}})
	})
	mux.HandleFunc("GET /v1/streams/{s}/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "retry: 3000\n\n")
		w.(http.Flusher).Flush()
		for {
			select {
			case frame := <-f.events:
				_, _ = io.WriteString(w, frame)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\nprocess_resident_memory_bytes 1.048576e+07\n")
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

// fakeStream is the state of a scriptedBroker; its script runs under mu.
type fakeStream struct {
	mu     sync.Mutex
	n      int
	nextID int
	events chan string
	held   []string // frames a script keeps back
}

// id gives out the next event id.
func (f *fakeStream) id() int { f.nextID++; return f.nextID }

// frame is the SSE frame of one event.
func (f *fakeStream) frame(id int, data string) string {
	return fmt.Sprintf("id: %d\ndata: %s\n\n", id, data)
}

// send queues one event for the subscriber.
func (f *fakeStream) send(id int, data string) { f.events <- f.frame(id, data) }

// faithfully sends the event once and acknowledges it.
func faithfully(f *fakeStream, data string) (id, status int) {
	id = f.id()
	f.send(id, data)
	return id, http.StatusCreated
}

// Each way a broker can get delivery wrong is counted as what it is, and
// none hides another: loss is not netted against an event nobody
// acknowledged, a repeat under a new id is still a repeat, and events that
// arrive out of order count once each, as out of order.
func TestMiscountsAreCaught(t *testing.T) {
	type counts struct{ published, delivered, lost, dup, unexpected, reordered uint64 }
	for _, tc := range []struct {
		name   string
		script func(f *fakeStream, n int, data string) (int, int)
		want   counts
	}{{
		name: "drops event 5, sends event 10 twice",
		script: func(f *fakeStream, n int, data string) (int, int) {
			switch n {
			case 5:
				return f.id(), http.StatusCreated
			case 10:
				id := f.id()
				f.send(id, data)
				f.send(id, data)
				return id, http.StatusCreated
			}
			return faithfully(f, data)
		},
		want: counts{published: 20, delivered: 20, lost: 1, dup: 1},
	}, {
		// As many received as acknowledged: comparing counts sees nothing.
		name: "drops event 5, delivers event 8 but answers its publish 500",
		script: func(f *fakeStream, n int, data string) (int, int) {
			switch n {
			case 5:
				return f.id(), http.StatusCreated
			case 8:
				id, _ := faithfully(f, data)
				return id, http.StatusInternalServerError
			}
			return faithfully(f, data)
		},
		want: counts{published: 19, delivered: 19, lost: 1, unexpected: 1},
	}, {
		// The count of events received reaches the count acknowledged
		// before the last one arrives: the drain must wait for it.
		name: "delivers event 8 but answers its publish 500, sends the last event 300 ms late",
		script: func(f *fakeStream, n int, data string) (int, int) {
			switch n {
			case 8:
				id, _ := faithfully(f, data)
				return id, http.StatusInternalServerError
			case 20:
				id := f.id()
				time.AfterFunc(300*time.Millisecond, func() { f.send(id, data) })
				return id, http.StatusCreated
			}
			return faithfully(f, data)
		},
		want: counts{published: 19, delivered: 20, unexpected: 1},
	}, {
		name: "sends event 7 again under a new id",
		script: func(f *fakeStream, n int, data string) (int, int) {
			id, status := faithfully(f, data)
			if n == 7 {
				f.send(f.id(), data)
			}
			return id, status
		},
		want: counts{published: 20, delivered: 21, dup: 1},
	}, {
		name: "sends event 3 after event 4",
		script: func(f *fakeStream, n int, data string) (int, int) {
			switch n {
			case 3:
				id := f.id()
				f.held = append(f.held, f.frame(id, data))
				return id, http.StatusCreated
			case 4:
				id, status := faithfully(f, data)
				f.events <- f.held[0]
				return id, status
			}
			return faithfully(f, data)
		},
		want: counts{published: 20, delivered: 20, reordered: 1},
	}, {
		// The subscriber has the last id while event 19 is still on its
		// way: the drain must not count it lost at once.
		name: "sends event 19 50 ms after event 20, the last",
		script: func(f *fakeStream, n int, data string) (int, int) {
			switch n {
			case 19:
				id := f.id()
				f.held = append(f.held, f.frame(id, data))
				return id, http.StatusCreated
			case 20:
				id, status := faithfully(f, data)
				held := f.held[0]
				time.AfterFunc(50*time.Millisecond, func() { f.events <- held })
				return id, status
			}
			return faithfully(f, data)
		},
		want: counts{published: 20, delivered: 20, reordered: 1},
	}, {
		// Late events that keep coming, each within the grace of the one
		// before, are waited for though the grace since the last id ran
		// out: the wait ends on a grace with nothing arriving.
		name: "sends events 19, 18 and 17 300 ms apart after event 20, the last",
		script: func(f *fakeStream, n int, data string) (int, int) {
			switch n {
			case 17, 18, 19:
				id := f.id()
				f.held = append(f.held, f.frame(id, data))
				return id, http.StatusCreated
			case 20:
				id, status := faithfully(f, data)
				for i, held := range f.held {
					time.AfterFunc(time.Duration(3-i)*300*time.Millisecond, func() { f.events <- held })
				}
				return id, status
			}
			return faithfully(f, data)
		},
		want: counts{published: 20, delivered: 20, reordered: 3},
	}, {
		name: "sends event 6 again after event 9",
		script: func(f *fakeStream, n int, data string) (int, int) {
			id, status := faithfully(f, data)
			switch n {
			case 6:
				f.held = append(f.held, f.frame(id, data))
			case 9:
				f.events <- f.held[0]
			}
			return id, status
		},
		want: counts{published: 20, delivered: 21, dup: 1},
	}, {
		name: "sends an event with a sequence number never issued",
		script: func(f *fakeStream, n int, data string) (int, int) {
			if n == 5 {
				fields := strings.Fields(data) // stream, seq, sent, padding
				fields[1] = "1073741824"
				f.send(f.id(), strings.Join(fields, " "))
			}
			return faithfully(f, data)
		},
		want: counts{published: 20, delivered: 21, unexpected: 1},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ts := scriptedBroker(t, tc.script)
			res, err := Run(t.Context(), Config{
				URL: ts.URL, Target: "broker", Scenario: "conversations", Subscribers: 1, Streams: 1,
				Count: 20, Payload: 64, Concurrency: 1, Drain: time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := counts{res.Published, res.Delivered, res.Lost, res.Duplicated, res.Unexpected, res.Reordered}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
			if res.RSSBefore != 10485760 || res.MetricsError != "" {
				t.Fatalf("rss %v err %q", res.RSSBefore, res.MetricsError)
			}
		})
	}
}

// Latency runs from the send to the delivery: an event the server holds
// back 300 ms is the maximum, and the others, delivered at once, keep the
// median far below it. (The held one is the last, so the drain waits for
// it whatever the grace for events sent late.)
func TestLatencyIsMeasuredFromTheSend(t *testing.T) {
	const hold = 300 * time.Millisecond
	ts := scriptedBroker(t, func(f *fakeStream, n int, data string) (int, int) {
		if n != 21 {
			return faithfully(f, data)
		}
		id := f.id()
		time.AfterFunc(hold, func() { f.send(id, data) })
		return id, http.StatusCreated
	})
	res, err := Run(t.Context(), Config{
		URL: ts.URL, Target: "broker", Scenario: "conversations", Subscribers: 1, Streams: 1,
		Count: 21, Payload: 64, Concurrency: 1, Drain: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, held := res.LatencyUS, float64(hold.Microseconds())
	if res.Lost != 0 || l.Max < held || l.Max > 10e6 || l.P50 >= held {
		t.Fatalf("lost %d, latency µs %+v: want the max at least %v (and under 10 s), the median below it", res.Lost, l, hold)
	}
}

// A server that holds its publishers back cannot shorten the latency
// unseen: publishes sent after their time in the fixed-rate schedule are
// reported as late.
func TestPublishesBehindTheScheduleAreReported(t *testing.T) {
	const stall = 400 * time.Millisecond
	ts := scriptedBroker(t, func(f *fakeStream, n int, data string) (int, int) {
		if n == 5 {
			time.Sleep(stall) // the one request in flight: the schedule falls behind
		}
		return faithfully(f, data)
	})
	res, err := Run(t.Context(), Config{
		URL: ts.URL, Target: "broker", Scenario: "conversations", Subscribers: 1, Streams: 1,
		Rate: 100, Count: 30, Payload: 64, Concurrency: 1, Drain: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Event 7 was due 20 ms after event 5 was sent and waited out the stall.
	if late := res.PublishLateUS.Max; late < float64((stall / 2).Microseconds()) {
		t.Fatalf("publishes late by at most %v µs, want at least %v", late, stall/2)
	}
	if res.Lost != 0 || res.Published != 30 {
		t.Fatalf("lost %d published %d", res.Lost, res.Published)
	}
}

// A run that ends with events missing waits out -drain for them; that wait
// is not delivery time, so delivered/s counts only until the last event.
func TestStalledDrainIsNotDeliveryTime(t *testing.T) {
	ts := scriptedBroker(t, func(f *fakeStream, n int, data string) (int, int) {
		if n == 20 { // the last: the subscriber never reaches the last id
			return f.id(), http.StatusCreated // never sent
		}
		return faithfully(f, data)
	})
	drain := 2 * time.Second
	res, err := Run(t.Context(), Config{
		URL: ts.URL, Target: "broker", Scenario: "conversations", Subscribers: 1, Streams: 1,
		Count: 20, Payload: 64, Concurrency: 1, Drain: drain,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.DrainEnd != "stalled" || res.Lost != 1 || res.DrainSeconds < drain.Seconds() {
		t.Fatalf("drain %s after %.1fs, lost %d: want stalled after %v, 1 lost", res.DrainEnd, res.DrainSeconds, res.Lost, drain)
	}
	if res.Duration >= drain.Seconds() || res.DeliveredPerSec <= float64(res.Delivered)/drain.Seconds() {
		t.Fatalf("duration %.2fs, %.0f delivered/s: the %v of waiting counted as delivery time", res.Duration, res.DeliveredPerSec, drain)
	}
}

// A sequence number in the data never sizes the set of those received
// unless it was issued: the data is the server's, and 2^30 made one
// subscriber's set 128 MiB.
func TestSequenceNeverIssuedIsNotStored(t *testing.T) {
	st := &stream{number: 3}
	st.seq.Store(20) // 0..19 handed to publishers
	s := &subscriber{st: st}
	for i, seq := range []uint64{1 << 30, 20, 19} {
		s.track(uint64(101+i), 3, seq)
	}
	if len(s.seen) != 1 || s.seen.count() != 1 {
		t.Fatalf("the set of received holds %d numbers in %d words, want 19 alone in 1", s.seen.count(), len(s.seen))
	}
}

// An event that never comes, before a last one that does, is waited for
// for lastIDGrace (it may be on its way, late), then counted lost; the
// wait is not delivery time.
func TestGraceForLateEventsIsNotDeliveryTime(t *testing.T) {
	ts := scriptedBroker(t, func(f *fakeStream, n int, data string) (int, int) {
		if n == 10 {
			return f.id(), http.StatusCreated // never sent
		}
		return faithfully(f, data)
	})
	res, err := Run(t.Context(), Config{
		URL: ts.URL, Target: "broker", Scenario: "conversations", Subscribers: 1, Streams: 1,
		Count: 20, Payload: 64, Concurrency: 1, Drain: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.DrainEnd != "caught_up" || res.Lost != 1 || res.DrainSeconds < lastIDGrace.Seconds() {
		t.Fatalf("drain %s after %.2fs, lost %d: want caught_up after the %v grace, 1 lost", res.DrainEnd, res.DrainSeconds, res.Lost, lastIDGrace)
	}
	if res.Duration >= lastIDGrace.Seconds() {
		t.Fatalf("duration %.2fs: the %v grace counted as delivery time", res.Duration, lastIDGrace)
	}
}

// The grace for late events is at most half of -drain: with a shorter
// drain the wait for an event that never comes still ends caught up after
// the grace, rather than stalled as if the server had stopped sending.
func TestGraceIsAtMostHalfTheDrain(t *testing.T) {
	ts := scriptedBroker(t, func(f *fakeStream, n int, data string) (int, int) {
		if n == 10 {
			return f.id(), http.StatusCreated // never sent
		}
		return faithfully(f, data)
	})
	const drain = 400 * time.Millisecond
	res, err := Run(t.Context(), Config{
		URL: ts.URL, Target: "broker", Scenario: "conversations", Subscribers: 1, Streams: 1,
		Count: 20, Payload: 64, Concurrency: 1, Drain: drain,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.DrainEnd != "caught_up" || res.Lost != 1 || res.DrainSeconds < (drain/2).Seconds() {
		t.Fatalf("drain %s after %.2fs, lost %d: want caught_up after the %v grace, 1 lost", res.DrainEnd, res.DrainSeconds, res.Lost, drain/2)
	}
}

// A source address that is not an IP address is refused, not silently
// replaced by the kernel's choice.
func TestBadSourceAddressIsRefused(t *testing.T) {
	_, err := Run(t.Context(), Config{
		URL: "http://127.0.0.1:1", Target: "broker", Streams: 1, Subscribers: 1, Concurrency: 1,
		Sources: []string{"127.0.0.1", "127.0.0.2x"},
	})
	if err == nil || !strings.Contains(err.Error(), `"127.0.0.2x" is not an IP address`) {
		t.Fatalf("err %v", err)
	}
	var stdout, stderr bytes.Buffer // the command trims spaces after the commas
	code := Main(t.Context(), nil, []string{"-url", "http://127.0.0.1:1", "-sources", "127.0.0.1, 127.0.0.2x", "-count", "1"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), `"127.0.0.2x" is not an IP address`) {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// A run with neither a count nor a duration would publish until killed:
// Run refuses it, and so does the command given -duration 0 alone.
func TestRunWithoutAnEndIsRefused(t *testing.T) {
	ts := scriptedBroker(t, func(f *fakeStream, n int, data string) (int, int) { return faithfully(f, data) })
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err := Run(ctx, Config{
		URL: ts.URL, Target: "broker", Scenario: "conversations", Subscribers: 1, Streams: 1,
		Payload: 64, Concurrency: 1, Drain: time.Second,
	})
	if err == nil || !strings.Contains(err.Error(), "no end") {
		t.Fatalf("count 0, duration 0: err %v, want the run refused", err)
	}
	var stdout, stderr bytes.Buffer
	code := Main(ctx, nil, []string{"-url", ts.URL, "-subscribers", "1", "-streams", "1", "-duration", "0"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "no end") || ctx.Err() != nil {
		t.Fatalf("-duration 0: exit %d: %s", code, stderr.String())
	}
}

// -count 0 is "until -duration ends", as its help says: with no -duration
// it keeps the scenario's, where taking it as a count left no end at all.
func TestCountZeroKeepsTheDuration(t *testing.T) {
	const scenario = 10 * time.Second
	for _, tc := range []struct {
		args  []string
		count int
		dur   time.Duration
		want  time.Duration
	}{
		{nil, 0, 0, scenario},
		{[]string{"count"}, 0, 0, scenario},
		{[]string{"count"}, 50, 0, 0},
		{[]string{"count", "duration"}, 50, time.Second, time.Second},
		{[]string{"duration"}, 0, 3 * time.Second, 3 * time.Second},
	} {
		set := map[string]bool{}
		for _, a := range tc.args {
			set[a] = true
		}
		if got := runDuration(scenario, tc.dur, tc.count, set); got != tc.want {
			t.Errorf("flags %v, -count %d -duration %v: duration %v, want %v", tc.args, tc.count, tc.dur, got, tc.want)
		}
	}
}

// An event delivered to another stream's subscriber is not that
// subscriber's event, even when it has the sequence number of one of its
// own (every stream numbers its events from 0): it counts as unexpected,
// and the event it stood in for as lost.
func TestEventOfAnotherStreamIsUnexpected(t *testing.T) {
	ts := httptest.NewServer(newSwappingServer(5))
	t.Cleanup(ts.Close)
	res, err := Run(t.Context(), Config{
		URL: ts.URL, Target: "baseline", Scenario: "conversations", Subscribers: 2, Streams: 2,
		Count: 20, Payload: 64, Concurrency: 1, Drain: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Each stream's 5th event went to the other stream's subscriber.
	if res.Delivered != 20 || res.Lost != 2 || res.SubscribersLosing != 2 || res.Unexpected != 2 || res.Duplicated != 0 {
		t.Fatalf("delivered %d, lost %d (%d subscribers), unexpected %d, duplicated %d: want 20, 2 (2), 2, 0",
			res.Delivered, res.Lost, res.SubscribersLosing, res.Unexpected, res.Duplicated)
	}
}

// swappingServer speaks the baseline's protocol for two streams (names
// ending in -0 and -1) and delivers the swap-th event published to each
// to the other stream's subscribers.
type swappingServer struct {
	swap      int
	mu        sync.Mutex
	published map[string]int
	subs      map[string][]chan string
}

func newSwappingServer(swap int) http.Handler {
	s := &swappingServer{swap: swap, published: map[string]int{}, subs: map[string][]chan string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /publish", s.publish)
	mux.HandleFunc("GET /events", s.subscribe)
	return mux
}

func (s *swappingServer) publish(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	name := r.URL.Query().Get("stream")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.published[name]++
	to := name
	if s.published[name] == s.swap {
		base, last := name[:len(name)-1], name[len(name)-1:]
		to = base + map[string]string{"0": "1", "1": "0"}[last]
	}
	for _, c := range s.subs[to] {
		c <- fmt.Sprintf("data: %s\n\n", data)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *swappingServer) subscribe(w http.ResponseWriter, r *http.Request) {
	c := make(chan string, 1000)
	name := r.URL.Query().Get("stream")
	s.mu.Lock()
	s.subs[name] = append(s.subs[name], c)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	for {
		select {
		case frame := <-c:
			_, _ = io.WriteString(w, frame)
			w.(http.Flusher).Flush()
		case <-r.Context().Done():
			return
		}
	}
}

// With -server-pid (bench.sh's own server) a /metrics that cannot be read
// fails the run: that server died or another one answered on its port.
func TestUnreadServerFiguresFailARunWithItsPID(t *testing.T) {
	ts := httptest.NewServer(newSwappingServer(0)) // no /metrics: 404
	t.Cleanup(ts.Close)
	out := filepath.Join(t.TempDir(), "runs.jsonl")
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), nil, []string{"-url", ts.URL, "-target", "baseline", "-subscribers", "1", "-streams", "1",
		"-count", "5", "-server-pid", strconv.Itoa(os.Getpid()), "-json", out}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "server's figures could not be read") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the JSON file exists (%v): the failed run was recorded", err)
	}
}

// A /metrics read that fails leaves out every figure computed from it, in
// the JSON line and in summarize's medians, instead of counting as 0 bytes
// and 0 s (which made rss_per_conn the whole RSS and a CPU time negative);
// the figures from the samples that were read stay.
func TestFailedMetricsReadLeavesItsFiguresOut(t *testing.T) {
	for _, tc := range []struct {
		name          string
		failRead      int64 // 1: before connecting, 2: once connected, 3: after the drain
		absent, kept  []string
		rssPerConnRow string // summarize's rss_per_conn_B row: no broker runs, the baseline's median
	}{{
		name: "before connecting", failRead: 1,
		absent:        []string{"rss_before", "rss_per_conn", "cpu_connect_s"},
		kept:          []string{"rss_connected", "rss_after", "cpu_publish_s", "cpu_s_per_million_delivered"},
		rssPerConnRow: fmt.Sprintf("  %-24s %14s %14s", "rss_per_conn_B", "-", "-"),
	}, {
		name: "after the drain", failRead: 3,
		absent:        []string{"rss_after", "cpu_publish_s", "cpu_s_per_million_delivered"},
		kept:          []string{"rss_before", "rss_connected", "rss_per_conn", "cpu_connect_s"},
		rssPerConnRow: fmt.Sprintf("  %-24s %14s %14.1f", "rss_per_conn_B", "-", float64(1<<20)),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var reads atomic.Int64
			mux := http.NewServeMux()
			mux.Handle("/", newSwappingServer(0))
			mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
				n := reads.Add(1)
				if n == tc.failRead {
					http.Error(w, "busy", http.StatusServiceUnavailable)
					return
				}
				// 100 MiB and 10 s of CPU, 1 MiB and 1 s more at each read.
				fmt.Fprintf(w, "process_resident_memory_bytes %d\nprocess_cpu_seconds_total %d\n", (100+n)<<20, 10+n)
			})
			ts := httptest.NewServer(mux)
			t.Cleanup(ts.Close)
			res, err := Run(t.Context(), Config{
				URL: ts.URL, Target: "baseline", Scenario: "conversations", Subscribers: 1, Streams: 1,
				Count: 10, Payload: 64, Concurrency: 1, Drain: time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			line, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			var keys map[string]any
			if err := json.Unmarshal(line, &keys); err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.absent {
				if v, ok := keys[k]; ok {
					t.Errorf("%s is %v, want it absent (its sample was not read)", k, v)
				}
			}
			for _, k := range tc.kept {
				if _, ok := keys[k]; !ok {
					t.Errorf("%s is absent, want it kept (its samples were read)", k)
				}
			}
			if keys["metrics_error"] == nil {
				t.Error("no metrics_error")
			}
			if out := summarizeRuns(t, []Result{*res, *res}); !strings.Contains(out, tc.rssPerConnRow+" ") {
				t.Errorf("want the row %q in the summary:\n%s", tc.rssPerConnRow, out)
			}
		})
	}
}

// A server that accepts subscribe requests and /metrics reads and never
// answers them does not hold the run: a subscribe without an answer within
// ResponseTimeout is a connect error, and a /metrics read a metrics error.
func TestServerThatNeverAnswersDoesNotHoldTheRun(t *testing.T) {
	never := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", never)
	mux.HandleFunc("GET /metrics", never)
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, Config{
		URL: ts.URL, Target: "baseline", Scenario: "conversations", Subscribers: 2, Streams: 1,
		Count: 1, Payload: 64, Concurrency: 1, Drain: time.Second, ResponseTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("the run took %v: it waited for answers that never came", time.Since(start))
	}
	if res.Connected != 0 || res.ConnectErrors != 2 || res.MetricsError == "" {
		t.Fatalf("connected %d, connect errors %d, metrics error %q: want 0, 2 and the metrics' timeout", res.Connected, res.ConnectErrors, res.MetricsError)
	}
}

// An interrupt (the context's end) cuts -settle short, as it does every
// other wait of a run: the idle scenario settles 5 s at full size, and a
// user may give a longer -settle.
func TestInterruptCutsTheSettleShort(t *testing.T) {
	ts := scriptedBroker(t, func(f *fakeStream, n int, data string) (int, int) { return faithfully(f, data) })
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Run(ctx, Config{
		URL: ts.URL, Target: "broker", Scenario: "idle", Subscribers: 1, Streams: 1,
		Count: 5, Payload: 64, Concurrency: 1, Drain: time.Second, Settle: 10 * time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the run took %v after its context ended at 200ms: the settle did not see the interrupt", took)
	}
}

// A line longer than the reader's buffer is skipped, not read as the blank
// line that ends an event: an event whose id comes after such a line (a
// long comment, valid SSE in any order of fields) is counted once, under
// its own id, so it is not out of order.
func TestOverlongLineIsSkipped(t *testing.T) {
	long := ": " + strings.Repeat("x", 10000) + "\n"
	ts := scriptedBroker(t, func(f *fakeStream, n int, data string) (int, int) {
		if n == 5 {
			id := f.id()
			f.events <- fmt.Sprintf("data: %s\n%sid: %d\n\n", data, long, id)
			return id, http.StatusCreated
		}
		return faithfully(f, data)
	})
	res, err := Run(t.Context(), Config{
		URL: ts.URL, Target: "broker", Scenario: "conversations", Subscribers: 1, Streams: 1,
		Count: 10, Payload: 64, Concurrency: 1, Drain: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Delivered != 10 || res.Lost != 0 || res.Duplicated != 0 || res.Reordered != 0 {
		t.Fatalf("delivered %d lost %d duplicated %d reordered %d; want 10 delivered, nothing else",
			res.Delivered, res.Lost, res.Duplicated, res.Reordered)
	}
}

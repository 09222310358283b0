package ssebench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/brokerproc"
	"github.com/sse-broker/broker/internal/testbroker"
)

// The shares of a split run add up to the run, every stream keeps the
// subscribers and the publish rate it has in one process, and no two
// streams of the run share a number.
func TestSharesAddUpAndKeepTheShape(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		n   int
	}{
		{Config{Streams: 1000, Subscribers: 2000, Rate: 2000, Concurrency: 32}, 3},
		{Config{Streams: 1000, Subscribers: 19000, Rate: 1000, Count: 1001, Concurrency: 32}, 4},
		{Config{Streams: 7, Subscribers: 10, Rate: 7, Count: 13, Concurrency: 1, Slow: 1}, 2},
	} {
		var streams, subs, count, slow int
		var rate float64
		for i := range tc.n {
			s := shareOf(tc.cfg, i, tc.n)
			if s.FirstStream != streams { // numbered on from the workers before
				t.Fatalf("%+v worker %d: first stream %d, want %d", tc.cfg, i, s.FirstStream, streams)
			}
			streams += s.Streams
			subs += s.Subscribers
			count += s.Count
			slow += s.Slow
			rate += s.Rate
			if s.Concurrency < 1 || (i > 0 && s.Slow != 0) {
				t.Fatalf("%+v worker %d: concurrency %d slow %d", tc.cfg, i, s.Concurrency, s.Slow)
			}
			if perStream := s.Rate / float64(s.Streams); abs(perStream-tc.cfg.Rate/float64(tc.cfg.Streams)) > 1e-9 {
				t.Fatalf("%+v worker %d: %.3f events/s per stream, want %.3f", tc.cfg, i, perStream, tc.cfg.Rate/float64(tc.cfg.Streams))
			}
			if tc.cfg.Subscribers%tc.cfg.Streams == 0 && i > 0 && s.Subscribers != s.Streams*tc.cfg.Subscribers/tc.cfg.Streams {
				t.Fatalf("%+v worker %d: %d subscribers over %d streams", tc.cfg, i, s.Subscribers, s.Streams)
			}
		}
		if streams != tc.cfg.Streams || subs != tc.cfg.Subscribers || count != tc.cfg.Count || slow != tc.cfg.Slow || abs(rate-tc.cfg.Rate) > 1e-6 {
			t.Fatalf("%+v in %d: streams %d subscribers %d count %d slow %d rate %v", tc.cfg, tc.n, streams, subs, count, slow, rate)
		}
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// A histogram survives the trip between processes, and merged ones give
// the percentiles of all their values together.
func TestHistogramsCrossProcessesAndMerge(t *testing.T) {
	var fast, slow Histogram
	for range 90 {
		fast.Record(time.Millisecond)
	}
	for range 10 {
		slow.Record(9 * time.Millisecond)
	}
	b, err := json.Marshal(&slow)
	if err != nil {
		t.Fatal(err)
	}
	var back Histogram
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Count() != 10 || back.Max() != 9*time.Millisecond || back.Quantile(0.5) != slow.Quantile(0.5) {
		t.Fatalf("after JSON: count %d max %v p50 %v", back.Count(), back.Max(), back.Quantile(0.5))
	}
	merged := mergeResults(Config{}, []*Result{{hist: &fast, Delivered: 90}, {hist: &back, Delivered: 10}})
	if merged.hist.Count() != 100 || merged.Delivered != 100 {
		t.Fatalf("merged %d values, %d delivered", merged.hist.Count(), merged.Delivered)
	}
	p50, p99 := merged.hist.Quantile(0.5), merged.hist.Quantile(0.99)
	if p50 < time.Millisecond || p50 > 1100*time.Microsecond || p99 != 9*time.Millisecond {
		t.Fatalf("merged p50 %v p99 %v, want ~1ms and 9ms", p50, p99)
	}
}

// The parts' counts add up, the series add per second, the slowest part's
// times and the worst drain end win.
func TestMergeResultsSumsTheParts(t *testing.T) {
	a := &Result{Connected: 10, Published: 100, Delivered: 200, Expected: 201, Lost: 1, Duplicated: 2, SubscribersLosing: 1,
		Duration: 2, DrainSeconds: 0.5, DrainEnd: "caught_up", FileLimit: 20000, PerSecond: []float64{100, 100}, hist: &Histogram{}}
	b := &Result{Connected: 5, ConnectErrors: 1, Published: 50, Delivered: 100, Expected: 100, Reconnects: 3, Gaps: 1, Reordered: 2, Unexpected: 1,
		Duration: 4, DrainSeconds: 2.5, DrainEnd: "stalled", FileLimit: 1024, PerSecond: []float64{50, 25, 25}, hist: &Histogram{}}
	m := mergeResults(Config{Streams: 3, Subscribers: 16}, []*Result{a, b})
	if m.Connected != 15 || m.ConnectErrors != 1 || m.Published != 150 || m.Delivered != 300 || m.Expected != 301 ||
		m.Lost != 1 || m.Duplicated != 2 || m.Reconnects != 3 || m.Gaps != 1 || m.Reordered != 2 || m.Unexpected != 1 || m.Procs != 2 {
		t.Fatalf("sums: %+v", m)
	}
	if m.Duration != 4 || m.DrainSeconds != 2.5 || m.DrainEnd != "stalled" || m.FileLimit != 1024 || m.DeliveredPerSec != 75 {
		t.Fatalf("duration %v drain %v %q file limit %d delivered/s %v", m.Duration, m.DrainSeconds, m.DrainEnd, m.FileLimit, m.DeliveredPerSec)
	}
	if got := m.PerSecond; len(got) != 3 || got[0] != 150 || got[1] != 125 || got[2] != 25 {
		t.Fatalf("per second %v", got)
	}
}

// A run split over processes has no steal series (the parent reads the
// host's steal once for the run), so its JSON line has none of the quiet
// figures, as documented: quiet_seconds was there as 0, which read as
// measured.
func TestProcsLeaveTheQuietFiguresOut(t *testing.T) {
	m := mergeResults(Config{Streams: 2, Subscribers: 2}, []*Result{{hist: &Histogram{}}, {hist: &Histogram{}}})
	line, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := json.Unmarshal(line, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"quiet_seconds", "quiet_latency_us", "steal_per_second_pct", "p99_per_second_us"} {
		if v, ok := keys[k]; ok {
			t.Errorf("%s is %v, want it absent with -procs", k, v)
		}
	}
}

// `broker bench -procs 3` against a real broker: three worker processes of
// the broker binary, their figures merged into one exact run.
func TestSeveralProcessesAgainstBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the broker binary")
	}
	bin := brokerproc.Binary(t)
	b := testbroker.Start(t, testbroker.Options{NoDemo: true})
	res, stdout := benchThreeProcesses(t, bin, b.URL, 300)
	if res.Procs != 3 || res.Connected != 12 || res.ConnectErrors != 0 || res.Published != 300 || res.PublishErrors != 0 {
		t.Fatalf("procs %d connected %d (errors %d) published %d (errors %d)", res.Procs, res.Connected, res.ConnectErrors, res.Published, res.PublishErrors)
	}
	// 300 events over 6 streams of 2 subscribers: every event twice.
	if res.Delivered != 600 || res.Expected != 600 || res.Lost != 0 || res.Duplicated != 0 || res.Unexpected != 0 {
		t.Fatalf("delivered %d of %d, lost %d dup %d unexpected %d", res.Delivered, res.Expected, res.Lost, res.Duplicated, res.Unexpected)
	}
	if res.LatencyUS.P50 <= 0 || res.LatencyUS.Max < res.LatencyUS.P99 || res.RSSConnected <= 0 || res.MetricsError != "" {
		t.Fatalf("latency %+v rss %v metrics error %q", res.LatencyUS, res.RSSConnected, res.MetricsError)
	}
	if !strings.Contains(stdout, "(3 processes)") {
		t.Fatalf("summary line: %s", stdout)
	}
}

// benchThreeProcesses runs `broker bench -procs 3` (bin) against url:
// conversations, 6 streams × 2 subscribers, count events at 1,000/s, and
// the flags of more.
func benchThreeProcesses(t *testing.T, bin, url string, count int, more ...string) (res Result, stdout string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "runs.jsonl")
	args := append([]string{"bench", "-url", url, "-scenario", "conversations",
		"-streams", "6", "-subscribers", "12", "-count", strconv.Itoa(count), "-rate", "1000", "-procs", "3", "-json", out}, more...)
	cmd := exec.CommandContext(t.Context(), bin, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		t.Fatalf("broker bench -procs 3: %v\n%s%s", err, so.String(), se.String())
	}
	line, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(line, &res); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	return res, so.String()
}

// A run split over processes records the payload and batch its workers
// sent, after the same defaults a single run applies (-payload 10 is 48
// bytes, the least that holds the header), not the flags as given.
func TestProcsRecordWhatTheWorkersSent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the broker binary")
	}
	b := testbroker.Start(t, testbroker.Options{NoDemo: true})
	res, _ := benchThreeProcesses(t, brokerproc.Binary(t), b.URL, 30, "-payload", "10", "-batch", "0")
	if res.Payload != 48 || res.Batch != 1 || res.Lost != 0 || res.Delivered != 60 {
		t.Fatalf("payload %d batch %d (want 48 and 1), lost %d, delivered %d", res.Payload, res.Batch, res.Lost, res.Delivered)
	}
}

// A run split over processes shows the live progress line a single run
// shows, with the counters of all the workers summed.
func TestProcsShowLiveProgress(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the broker binary")
	}
	b := testbroker.Start(t, testbroker.Options{NoDemo: true})
	var progress bytes.Buffer
	var stderr bytes.Buffer // runProcs serializes the workers' writes
	res, err := runProcs(t.Context(), []string{brokerproc.Binary(t), "bench"}, Config{
		URL: b.URL, Target: "broker", Scenario: "conversations", Subscribers: 4, Streams: 2,
		Rate: 1000, Count: 1500, Concurrency: 2, Progress: &progress,
	}, 2, 400, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if res.Lost != 0 || res.Delivered != 3000 {
		t.Fatalf("lost %d, delivered %d of 3000", res.Lost, res.Delivered)
	}
	// 1.5 s of publishing: at least one line, with both workers' subscribers.
	if !strings.Contains(progress.String(), "broker/conversations subs 4 pub ") || !strings.Contains(progress.String(), "p99 (highest process)") {
		t.Fatalf("progress: %q", progress.String())
	}
}

// The progress line of a split run shows a second once every worker has
// sent its counters of that second: a line printed when the first worker
// reports would leave out the others' (and show a second with the
// subscribers and events of one worker alone).
func TestProcsProgressWaitsForEveryWorker(t *testing.T) {
	var out bytes.Buffer
	p := newProcsProgress(2, Config{Target: "broker", Scenario: "fanout", Progress: &out})
	p.add(0, Counters{Subscribers: 2, Published: 100, Delivered: 200})
	if out.Len() != 0 {
		t.Fatalf("printed before worker 1 reported a second: %q", out.String())
	}
	p.add(1, Counters{Subscribers: 3, Published: 50, Delivered: 150})
	if got := out.String(); !strings.Contains(got, "   1s broker/fanout subs 5 pub 150 (150/s)") || strings.Count(got, "\r") != 1 {
		t.Fatalf("after both reported second 1: %q", got)
	}
}

// The parts of a count split in proportion to the workers' streams are
// rounded as closely as they can be: what rounding down leaves over goes
// to the parts that lost the most to it.
func TestPartsByStreamsGoToTheLargestRemainders(t *testing.T) {
	for _, tc := range []struct {
		total, streams, n int
		want              []int
	}{
		{10, 7, 2, []int{6, 4}},     // 5.71 and 4.29
		{13, 7, 2, []int{7, 6}},     // 7.43 and 5.57
		{11, 10, 3, []int{5, 3, 3}}, // 4.4, 3.3 and 3.3
	} {
		if got := partsByStreams(tc.total, tc.streams, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("%d over %d streams in %d: %v, want %v", tc.total, tc.streams, tc.n, got, tc.want)
		}
	}
}

// -procs needs a stream per process: each worker publishes to its own.
func TestProcsNeedAStreamEach(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), []string{"/nonexistent"}, []string{"-url", "http://127.0.0.1:1", "-scenario", "fanout", "-procs", "2"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "-procs 2 needs at least 2 streams") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// subscriptionCounter stands in front of a broker and answers /metrics
// itself, with the number of subscriptions open through it as the
// resident memory: what a run reads there says when it read it.
func subscriptionCounter(t *testing.T, target string) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	var open atomic.Int64
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }, FlushInterval: -1}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			fmt.Fprintf(w, "process_resident_memory_bytes %d\nprocess_cpu_seconds_total 1\n", open.Load())
			return
		}
		if strings.HasSuffix(r.URL.Path, "/events") {
			open.Add(1)
			defer open.Add(-1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// The server's figures after a run are read once every subscriber has
// caught up and before any connection closes, in one process and split
// over several: closing 19,000 connections is not part of the run.
func TestServerFiguresAreReadBeforeTheSubscribersClose(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{NoDemo: true})
	u := subscriptionCounter(t, b.URL)
	t.Run("one process", func(t *testing.T) {
		res, err := Run(t.Context(), Config{
			URL: u, Target: "broker", Scenario: "conversations", Subscribers: 6, Streams: 3,
			Rate: 1000, Count: 60, Payload: 64, Concurrency: 2, Drain: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.RSSConnected != 6 || res.RSSAfter != 6 || res.Lost != 0 {
			t.Fatalf("subscriptions open when connected %v, after %v (want 6, 6); lost %d", res.RSSConnected, res.RSSAfter, res.Lost)
		}
	})
	t.Run("three processes", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds the broker binary")
		}
		res, _ := benchThreeProcesses(t, brokerproc.Binary(t), u, 120)
		if res.RSSConnected != 12 || res.RSSAfter != 12 || res.Lost != 0 || res.Delivered != 240 {
			t.Fatalf("subscriptions open when connected %v, after %v (want 12, 12); lost %d, delivered %d", res.RSSConnected, res.RSSAfter, res.Lost, res.Delivered)
		}
	})
}

// Every worker's share of a -count is at least one event: a share of 0,
// with no duration, is "no limit", and that worker would never stop. The
// shares still add up to the count, and a count too small to give every
// worker one is refused before any worker starts.
func TestEveryShareOfACountHasAnEnd(t *testing.T) {
	for _, tc := range []struct{ streams, n, count int }{
		{4, 2, 2}, {10, 4, 4}, {10, 4, 5}, {1000, 3, 7}, {7, 2, 13}, {5, 5, 5},
	} {
		cfg := Config{Streams: tc.streams, Subscribers: tc.streams, Count: tc.count, Concurrency: 32}
		total := 0
		for i := range tc.n {
			s := shareOf(cfg, i, tc.n)
			if s.Count < 1 || s.Subscribers < 1 {
				t.Fatalf("%d events over %d streams in %d: worker %d gets count %d, %d subscribers", tc.count, tc.streams, tc.n, i, s.Count, s.Subscribers)
			}
			total += s.Count
		}
		if total != tc.count {
			t.Fatalf("%d events over %d streams in %d: shares add up to %d", tc.count, tc.streams, tc.n, total)
		}
	}
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), []string{"/nonexistent"}, []string{"-url", "http://127.0.0.1:1", "-subscribers", "4", "-streams", "4",
		"-procs", "2", "-count", "1", "-rate", "0"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "-procs 2 needs a -count of at least 2") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

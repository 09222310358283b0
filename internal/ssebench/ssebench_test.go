package ssebench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/testbroker"
)

func TestHistogramQuantilesOnKnownInputs(t *testing.T) {
	var h Histogram
	// 1..1000 µs, one value each.
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	check := func(q float64, want time.Duration) {
		t.Helper()
		got := h.Quantile(q)
		// The answer is the upper bound of the bucket of the true value:
		// never below it, and above by less than 1/32.
		if got < want || float64(got) > float64(want)*(1+1.0/(1<<subBits)) {
			t.Errorf("q%.3f = %v, want %v (within +%.1f%%)", q, got, want, 100.0/(1<<subBits))
		}
	}
	check(0.5, 500*time.Microsecond)
	check(0.9, 900*time.Microsecond)
	check(0.99, 990*time.Microsecond)
	check(0.999, 999*time.Microsecond)
	check(1, 1000*time.Microsecond)
	if h.Max() != 1000*time.Microsecond || h.Count() != 1000 {
		t.Errorf("max %v count %d", h.Max(), h.Count())
	}

	// Small values are exact; a skewed distribution puts p99 in its tail.
	var g Histogram
	for range 990 {
		g.Record(7)
	}
	for range 10 {
		g.Record(time.Second)
	}
	if g.Quantile(0.5) != 7 || g.Quantile(0.99) != 7 || g.Quantile(0.991) != time.Second || g.Max() != time.Second {
		t.Errorf("p50 %v p99 %v p99.1 %v max %v", g.Quantile(0.5), g.Quantile(0.99), g.Quantile(0.991), g.Max())
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 {
		t.Error("empty histogram")
	}
	g.Record(-5) // clock skew counts as 0
	if g.Quantile(0.0001) != 0 {
		t.Error("negative value not recorded as 0")
	}
}

func TestBucketsCoverEveryValue(t *testing.T) {
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 65, 1000, 1 << 40, 1<<63 - 1, 1<<64 - 1} {
		i := bucketOf(v)
		lo, hi := bucketRange(i)
		if i < 0 || i >= nBuckets || v < lo || v > hi {
			t.Errorf("%d: bucket %d [%d, %d]", v, i, lo, hi)
		}
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	b := makePayload(nil, 999, 42, 1700000000123456789, 64)
	if len(b) != 64 {
		t.Fatalf("len %d", len(b))
	}
	stream, seq, sent, ok := parsePayload(b)
	if !ok || stream != 999 || seq != 42 || sent != 1700000000123456789 {
		t.Fatalf("%d %d %d %v", stream, seq, sent, ok)
	}
	if _, _, _, ok := parsePayload([]byte("42 1700000000123456789 xxxx")); ok {
		t.Fatal("a payload without its stream number parsed")
	}
}

// TestExactCountsAgainstBroker runs the tool against a real in-process
// broker: every event is delivered once to every subscriber.
func TestExactCountsAgainstBroker(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{NoDemo: true})
	res, err := Run(t.Context(), Config{
		URL: b.URL, Target: "broker", Scenario: "conversations", Subscribers: 6, Streams: 3,
		Rate: 500, Count: 150, Payload: 64, Concurrency: 4, Drain: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Connected != 6 || res.ConnectErrors != 0 {
		t.Fatalf("connected %d, errors %d", res.Connected, res.ConnectErrors)
	}
	if res.Published != 150 || res.PublishErrors != 0 {
		t.Fatalf("published %d, errors %d", res.Published, res.PublishErrors)
	}
	if res.Lost != 0 || res.Duplicated != 0 || res.Unexpected != 0 || res.Dropped != 0 {
		t.Fatalf("lost %d dup %d unexpected %d dropped %d", res.Lost, res.Duplicated, res.Unexpected, res.Dropped)
	}
	if res.Delivered != 300 || res.Expected != 300 { // 150 events over 3 streams × 2 subscribers each
		t.Fatalf("delivered %d expected %d, want 300", res.Delivered, res.Expected)
	}
	if res.LatencyUS.Max <= 0 || res.LatencyUS.P50 > res.LatencyUS.P99 || res.LatencyUS.P99 > res.LatencyUS.Max {
		t.Fatalf("latency %+v", res.LatencyUS)
	}
	if res.MetricsError != "" || res.RSSAfter <= 0 {
		t.Fatalf("metrics: %q rss %v", res.MetricsError, res.RSSAfter)
	}
	if _, _, ok := cpuTicks(); ok && (res.HostStealPct < 0 || res.HostStealPct > 100) {
		t.Fatalf("host steal %v%%, want a share between 0 and 100", res.HostStealPct)
	}
}

// TestBatchedPublishesAgainstBroker: with Batch 5 each request carries 5
// events (the last one 2: 152 is not a multiple of 5), paced or flat out,
// and every event still counts once.
func TestBatchedPublishesAgainstBroker(t *testing.T) {
	for _, rate := range []float64{0, 1000} {
		b := testbroker.Start(t, testbroker.Options{NoDemo: true, Queue: 4096})
		res, err := Run(t.Context(), Config{
			URL: b.URL, Target: "broker", Scenario: "tokens", Subscribers: 4, Streams: 2,
			Rate: rate, Count: 152, Batch: 5, Payload: 64, Concurrency: 4, Drain: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Batch != 5 || res.Published != 152 || res.PublishErrors != 0 {
			t.Fatalf("rate %v: batch %d published %d errors %d", rate, res.Batch, res.Published, res.PublishErrors)
		}
		if res.Delivered != 304 || res.Lost != 0 || res.Duplicated != 0 || res.Unexpected != 0 {
			t.Fatalf("rate %v: delivered %d lost %d dup %d unexpected %d", rate, res.Delivered, res.Lost, res.Duplicated, res.Unexpected)
		}
		if got := metricValue(t, b.URL, "sseb_publish_duration_seconds_count"); got != 31 {
			t.Fatalf("rate %v: the broker answered %v publish requests, want 31 (30 of 5 events, 1 of 2)", rate, got)
		}
	}
}

// metricValue reads one unlabelled sample from the broker's /metrics.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		var v float64
		if _, err := fmt.Sscanf(line, name+" %g", &v); err == nil && strings.HasPrefix(line, name+" ") {
			return v
		}
	}
	t.Fatalf("%s not in /metrics", name)
	return 0
}

// TestFanoutFlatOutAgainstBroker: one stream, flat out, bounded by -count.
func TestFanoutFlatOutAgainstBroker(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{NoDemo: true, Queue: 4096})
	res, err := Run(t.Context(), Config{
		URL: b.URL, Target: "broker", Scenario: "fanout", Subscribers: 5, Streams: 1,
		Count: 300, Payload: 64, Concurrency: 8, Drain: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 300 || res.Delivered != 1500 || res.Lost != 0 || res.Duplicated != 0 {
		t.Fatalf("published %d delivered %d lost %d dup %d", res.Published, res.Delivered, res.Lost, res.Duplicated)
	}
}

// TestSlowSubscriberAgainstBroker: the one that stops reading is cut off,
// the others lose nothing.
func TestSlowSubscriberAgainstBroker(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{NoDemo: true, Queue: 256})
	res, err := Run(t.Context(), Config{
		URL: b.URL, Target: "broker", Scenario: "slow", Subscribers: 3, Streams: 1, Slow: 1,
		Rate: 1000, Count: 3000, Payload: 8192, Concurrency: 4, Drain: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != 0 || res.Duplicated != 0 || res.Expected != 6000 {
		t.Fatalf("fast subscribers: lost %d dup %d expected %d: %+v", res.Lost, res.Duplicated, res.Expected, res)
	}
	if res.SlowCutOff != 1 {
		t.Fatalf("slow cut off %d, want 1", res.SlowCutOff)
	}
}

// baselineFake is r3labs-like: it rewrites every id to 0 and publishes on
// /publish; loss and duplicates must then be found by the payload's
// sequence number. It drops the 3rd publish and repeats the 7th.
func TestBaselineModeCountsBySequence(t *testing.T) {
	var (
		mu     sync.Mutex
		n      int
		events = make(chan string, 1000)
	)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		mu.Lock()
		n++
		frame := fmt.Sprintf("id: 0\ndata: %s\n\n", data)
		if n != 3 {
			events <- frame
		}
		if n == 7 {
			events <- frame
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case f := <-events:
				_, _ = io.WriteString(w, f)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	res, err := Run(t.Context(), Config{
		URL: ts.URL, Target: "baseline", Scenario: "fanout", Subscribers: 1, Streams: 1,
		Count: 10, Payload: 64, Concurrency: 1, Drain: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != 1 || res.Duplicated != 1 {
		t.Fatalf("lost %d dup %d, want 1 1", res.Lost, res.Duplicated)
	}
	if res.MetricsError == "" {
		t.Fatal("a server without /metrics is not reported")
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	r := &Result{Target: "broker", Scenario: "fanout <&>", Connected: 3, Streams: 1, Tag: "t1-fanout-redis",
		Time:      "2026-11-22T02:00:00Z",
		PerSecond: []float64{0, 100, 2000, 1500}, PublishedPerSec: []float64{10, 20, 30, 40},
		LatencyUS: Latency{120, 300, 900, 4000, 12000}}
	for _, res := range []*Result{r, {Target: "baseline"}} {
		var b bytes.Buffer
		if err := writeSVG(&b, res); err != nil {
			t.Fatal(err)
		}
		if hasTag := strings.Contains(b.String(), ">tag t1-fanout-redis, 2026-11-22T02:00:00Z<"); hasTag != (res.Tag != "") {
			t.Fatalf("tag line shown %v, run tagged %q", hasTag, res.Tag)
		}
		d := xml.NewDecoder(&b)
		elems := 0
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("SVG is not well-formed XML: %v", err)
			}
			if _, ok := tok.(xml.StartElement); ok {
				elems++
			}
		}
		if elems < 5 {
			t.Fatalf("only %d elements", elems)
		}
	}
}

func TestCommandWritesJSONAndSVGAndSummarizes(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{NoDemo: true})
	dir := t.TempDir()
	out := dir + "/runs.jsonl"
	var stdout, stderr bytes.Buffer
	for range 3 {
		code := Main(t.Context(), nil, []string{"-url", b.URL, "-scenario", "tokens", "-streams", "2", "-subscribers", "2",
			"-count", "20", "-json", out, "-tag", "t1", "-sources", "127.0.0.1"}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	}
	data, err := io.ReadAll(mustOpen(t, out))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines", len(lines))
	}
	var r Result
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil || r.Scenario != "tokens" || r.Lost != 0 || r.Delivered != 20 {
		t.Fatalf("%v %+v", err, r)
	}
	if _, err := io.ReadAll(mustOpen(t, dir+"/tokens-broker.svg")); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if code := Main(t.Context(), nil, []string{"summarize", "-tag", "t1", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("summarize exit %d", code)
	}
	if !strings.Contains(stdout.String(), "tokens (median of 3 broker runs, 0 baseline runs)") {
		t.Fatalf("summary:\n%s", stdout.String())
	}
}

func mustOpen(t *testing.T, path string) io.Reader {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(data)
}

func TestMedian(t *testing.T) {
	if median([]float64{3, 1, 2}) != 2 || median([]float64{4, 1, 2, 3}) != 2.5 || !math.IsNaN(median(nil)) || median([]float64{math.NaN(), 1, 3}) != 2 {
		t.Fatal("median")
	}
}

func TestParseCPUTicks(t *testing.T) {
	stat := []byte("cpu  946075 11064 346978 1065722 12807 0 82660 45033 7 0\n" +
		"cpu0 466808 5390 168828 548763 3370 0 43341 21543 0 0\n")
	steal, total, ok := parseCPUTicks(stat)
	if !ok || steal != 45033 || total != 946075+11064+346978+1065722+12807+0+82660+45033 {
		t.Fatalf("got steal %d total %d ok %v", steal, total, ok)
	}
	if _, _, ok := parseCPUTicks([]byte("intr 1 2 3\n")); ok {
		t.Fatal("a text without a cpu line parsed")
	}
}

// summarize -max-steal leaves out the runs the hypervisor disturbed, and
// says how many.
func TestSummarizeLeavesOutStolenRuns(t *testing.T) {
	var runs []Result
	for _, run := range []struct {
		steal float64
		p99   float64
	}{{0.2, 3000}, {5, 20000}, {0.5, 4000}, {-1, 1000}, {0.9, 5000}} {
		runs = append(runs, Result{Target: "broker", Scenario: "conversations", HostStealPct: run.steal, LatencyUS: Latency{P99: run.p99}})
	}
	out := summarizeRuns(t, runs, "-max-steal", "1")
	// Kept: 3000, 4000, 5000 (median 4000); left out: 5% steal and unmeasured.
	if !strings.Contains(out, "left out 2 runs") || !strings.Contains(out, "median of 3 broker runs") ||
		!strings.Contains(out, fmt.Sprintf("%-24s %14.1f", "p99_us", 4000.0)) {
		t.Fatalf("summary:\n%s", out)
	}
}

// With floor runs in the file, summarize adds the floor's medians and its
// ratio to the baseline; the host's steal gets no ratio (it is the host's,
// not a server's).
func TestSummarizeShowsTheFloorBesideTheBaseline(t *testing.T) {
	var runs []Result
	for _, run := range []struct {
		target string
		cpu    float64
	}{{"broker", 90}, {"baseline", 80}, {"floor", 60}, {"floor", 20}, {"floor", 40}} {
		runs = append(runs, Result{Target: run.target, Scenario: "conversations", CPUPerMillion: Measured(run.cpu), HostStealPct: 2})
	}
	out := summarizeRuns(t, runs)
	// broker/baseline 90/80 = 1.12; floor median 40, floor/baseline 0.50.
	wantCPU := fmt.Sprintf("  %-24s %14.1f %14.1f %10s %14.1f %10s\n", "cpu_s_per_M_delivered", 90.0, 80.0, "1.12", 40.0, "0.50")
	wantSteal := fmt.Sprintf("  %-24s %14.1f %14.1f %10s %14.1f %10s\n", "host_steal_pct", 2.0, 2.0, "-", 2.0, "-")
	if !strings.Contains(out, "1 baseline runs, 3 floor runs") || !strings.Contains(out, wantCPU) || !strings.Contains(out, wantSteal) {
		t.Fatalf("summary:\n%s", out)
	}
}

// summarizeRuns writes runs as JSON lines to a file and returns what
// `ssebench summarize [flags...] file` prints.
func summarizeRuns(t *testing.T, runs []Result, flags ...string) string {
	t.Helper()
	path := t.TempDir() + "/runs.jsonl"
	var lines []string
	for _, r := range runs {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(line))
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), nil, append(append([]string{"summarize"}, flags...), path), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	return stdout.String()
}

// The ways a subscriber's read ends when the run closes it are not drops,
// whichever state the reader was in: blocked in a read, or busy and
// reading again after the body was closed (which a spread-out stream of
// heartbeats makes likely with thousands of subscribers).
func TestRunClosingAReaderIsNotADrop(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	get := func() io.ReadCloser {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Body
	}
	afterClose, blocked := get(), get()
	afterClose.Close()
	_, errAfterClose := afterClose.Read(make([]byte, 1))
	done := make(chan error)
	go func() {
		_, err := blocked.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond) // let it block
	cancel()
	errBlocked := <-done
	blocked.Close()
	for _, err := range []error{errAfterClose, errBlocked} {
		if !isClosedErr(err) {
			t.Errorf("%v counts as a drop", err)
		}
	}
	if isClosedErr(io.ErrUnexpectedEOF) || isClosedErr(nil) {
		t.Error("an unexpected end is not counted as a drop")
	}
}

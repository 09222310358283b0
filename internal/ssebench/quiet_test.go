package ssebench

import (
	"bytes"
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/testbroker"
)

// Events count in the second they were sent in, and only the seconds
// without steal count in the quiet latency: a stall in one second (its
// events 50 ms late) shows in the run's p99 and that second's, not in the
// quiet figure.
func TestQuietLatencyLeavesOutTheSecondsWithSteal(t *testing.T) {
	var by secondHistograms
	first := int64(5 * time.Second) // the runner's clock at the first publish
	by.first.Store(first)
	var all Histogram
	send := func(second int, lat time.Duration, n int) {
		for i := range n {
			sent := first + int64(second)*int64(time.Second) + int64(i)*int64(time.Millisecond)
			by.record(sent, lat)
			all.Record(lat)
		}
	}
	send(0, time.Millisecond, 100)
	send(1, 50*time.Millisecond, 100) // the stalled second
	send(2, 2*time.Millisecond, 100)
	send(3, 3*time.Millisecond, 100) // its steal was not read
	by.record(first-1, time.Hour)    // before the first publish: not kept apart
	by.record(first+int64(maxSeconds)*int64(time.Second), time.Hour)

	var res Result
	res.LatencyUS = latencyOf(&all)
	var readings []stealReading // once a second, each a little after the second ends
	for i, pct := range []float64{0, 3.5, 0, -1, 0} {
		readings = append(readings, stealReading{until: time.Duration(i+1)*time.Second + 300*time.Microsecond, pct: pct})
	}
	res.setQuietFigures(readings, &by)

	if res.QuietSeconds == nil || *res.QuietSeconds != 2 || res.QuietLatencyUS == nil {
		t.Fatalf("quiet seconds %v (latency %v), want 2: seconds 0 and 2 (second 4 had no events)", res.QuietSeconds, res.QuietLatencyUS)
	}
	if q := res.QuietLatencyUS; q.P50 < 1000 || q.P50 > 1040 || q.P99 < 2000 || q.P99 > 2070 || q.Max != 2000 {
		t.Errorf("quiet latency %+v µs, want p50 1 ms and p99 and max 2 ms", *q)
	}
	if res.LatencyUS.P99 < 50000 {
		t.Errorf("the run's p99 %v µs, want the stall's 50 ms", res.LatencyUS.P99)
	}
	want := []float64{1000, 50000, 2000, 3000, 0}
	for i, w := range want {
		if got := res.P99PerSecondUS[i]; math.Abs(got-w) > w*0.035 {
			t.Errorf("second %d: p99 %v µs, want %v", i, got, w)
		}
	}
	if n := res.publishSeconds(); n != 4 {
		t.Errorf("%d seconds with events, want 4", n)
	}
}

// No steal series (with -procs), or one whose every reading failed (no
// /proc/stat), no quiet figures: quiet_seconds 0 would claim a measured
// run without a quiet second.
func TestQuietFiguresNeedTheSteal(t *testing.T) {
	var by secondHistograms
	by.record(0, time.Millisecond)
	unread := []stealReading{{time.Second, -1}, {2 * time.Second, -1}}
	for _, readings := range [][]stealReading{nil, unread} {
		var res Result
		res.setQuietFigures(readings, &by)
		if res.QuietSeconds != nil || res.QuietLatencyUS != nil || res.StealPerSecond != nil || res.P99PerSecondUS != nil {
			t.Errorf("quiet figures from steal readings %v: %+v", readings, res)
		}
	}
}

// Against a broker, a run of a few seconds has one steal reading and one
// p99 per second of publishing.
func TestRunRecordsEachSecond(t *testing.T) {
	if _, _, ok := cpuTicks(); !ok {
		t.Skip("no /proc/stat: steal cannot be read here")
	}
	b := testbroker.Start(t, testbroker.Options{NoDemo: true})
	res, err := Run(t.Context(), Config{
		URL: b.URL, Target: "broker", Scenario: "conversations", Subscribers: 4, Streams: 2,
		Rate: 200, Count: 500, Payload: 64, Concurrency: 2, Drain: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != 0 || res.Delivered != 1000 {
		t.Fatalf("lost %d, delivered %d of 1000", res.Lost, res.Delivered)
	}
	if len(res.StealPerSecond) < 2 || len(res.P99PerSecondUS) != len(res.StealPerSecond) {
		t.Fatalf("%d steal readings and %d p99s for 2.5 s of publishing", len(res.StealPerSecond), len(res.P99PerSecondUS))
	}
	for i := range 2 {
		if s := res.StealPerSecond[i]; s < 0 || s > 100 {
			t.Errorf("second %d: steal %v%%", i, s)
		}
		if p := res.P99PerSecondUS[i]; p <= 0 || p > res.LatencyUS.Max {
			t.Errorf("second %d: p99 %v µs (the run's max %v)", i, p, res.LatencyUS.Max)
		}
	}
	if q := res.QuietSeconds; q == nil || *q > res.publishSeconds() || (*q > 0) != (res.QuietLatencyUS != nil) {
		t.Errorf("%v quiet seconds of %d, quiet latency %v", q, res.publishSeconds(), res.QuietLatencyUS)
	}
}

// The tool's own scheduling wait is read from the runtime over a span:
// goroutines kept runnable behind a busy one show in it.
func TestToolSchedLatencyCountsTheWaitsOfTheSpan(t *testing.T) {
	start := readSched()
	if len(start.counts) == 0 {
		t.Skip("the runtime does not record scheduling latencies")
	}
	// Many short-lived goroutines, each readied and waiting for a CPU.
	done := make(chan struct{})
	for range 1000 {
		go func() { done <- struct{}{} }()
	}
	for range 1000 {
		<-done
	}
	l := schedLatencySince(start)
	if l == nil {
		t.Fatal("no waits recorded over a span that readied 1,000 goroutines")
	}
	if l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
		t.Fatalf("percentiles %+v", *l)
	}
}

// A progress loop held up past a tick takes one reading over more than a
// second: the seconds it covers share it, and later readings stay in line
// with the seconds they measured. An overlap shorter than a /proc/stat
// tick does not count.
func TestStealPerSecondKeepsLateReadingsInLine(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name     string
		readings []stealReading
		want     []float64
	}{
		{"on time", []stealReading{{s, 0}, {2 * s, 1}, {3 * s, 0}}, []float64{0, 1, 0}},
		{"one late reading", []stealReading{{s, 0}, {3*s + s/2, 0.5}, {4 * s, 0}, {5 * s, 0}}, []float64{0, 0.5, 0.5, 0.5, 0}},
		{"late, and no steal", []stealReading{{s, 0}, {3*s + s/2, 0}, {4 * s, 2}, {5 * s, 0}}, []float64{0, 0, 0, 2, 0}},
		{"an unread reading spoils what it covers", []stealReading{{s + s/2, -1}, {2 * s, 0}, {3 * s, 0}}, []float64{-1, -1, 0}},
		{"a few ms over the edge do not count", []stealReading{{s + 5*time.Millisecond, 7}, {2*s + 5*time.Millisecond, 0}}, []float64{7, 0}},
		{"none", nil, nil},
	} {
		got := stealPerSecond(tc.readings)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}
}

// A run cut short (Ctrl-C) is printed but not recorded: its figures are
// not those of the run asked for.
func TestInterruptedRunIsNotRecorded(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{NoDemo: true})
	out := t.TempDir() + "/runs.jsonl"
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := Main(ctx, nil, []string{"-url", b.URL, "-scenario", "conversations", "-streams", "2", "-subscribers", "2",
		"-rate", "100", "-duration", "20s", "-json", out, "-sources", "127.0.0.1"}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "not recorded") {
		t.Fatalf("exit %d, stderr %q: want a failure that says the run is not recorded", code, stderr.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the JSON file exists (%v): the cut-short run was recorded", err)
	}
}

// summarize says when a figure's median is over fewer runs than the
// table's header counts (runs from before the figure existed, or without a
// quiet second).
func TestSummarizeSaysWhichMediansAreOverFewerRuns(t *testing.T) {
	q := Latency{P99: 4000}
	groups := map[string]map[string][]Result{"conversations": {
		"broker":   {{StealPerSecond: []float64{0}, QuietSeconds: new(1), QuietLatencyUS: &q}, {StealPerSecond: []float64{2}}},
		"baseline": {{}, {}},
	}}
	var out bytes.Buffer
	summarize(&out, groups)
	if !strings.Contains(out.String(), "(quiet_p99_us over 1 broker, 0 baseline, 0 floor runs: the others did not measure it)") {
		t.Fatalf("summary:\n%s", out.String())
	}
}

// The command name in /proc/<pid>/stat may hold spaces and parentheses:
// utime and stime are counted from the last ')'.
func TestParseProcStatCountsFromTheLastParenthesis(t *testing.T) {
	line := "4242 (broker (x) y) S 1 4242 4242 0 -1 4194560 1187 0 0 0 250 731 0 0 20 0 5 0 123 0 0\n"
	user, sys, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if user != 2.50 || sys != 7.31 {
		t.Errorf("user %v s, sys %v s; want 2.5 and 7.31", user, sys)
	}
	for _, bad := range []string{"4242 broker S 1", "4242 (broker) S 1 2 3", "4242 (b) S 1 4242 4242 0 -1 0 0 0 0 0 x 731"} {
		if _, _, err := parseProcStat(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// With -server-pid the run splits the server's CPU into user and system
// time. The in-process broker's /metrics counts this process, so the two
// parts must add up to the CPU figure read from /metrics, to within the
// CPU spent between the two reads of each sample.
func TestServerCPUSplitAddsUpToTheMetricsFigure(t *testing.T) {
	if _, _, err := readProcCPU(os.Getpid()); err != nil {
		t.Skip("no /proc/<pid>/stat here:", err)
	}
	b := testbroker.Start(t, testbroker.Options{NoDemo: true})
	res, err := Run(t.Context(), Config{
		URL: b.URL, Target: "broker", Scenario: "conversations", Subscribers: 4, Streams: 2,
		Rate: 0, Count: 2000, Payload: 64, Concurrency: 4, Drain: 5 * time.Second,
		ServerPID: os.Getpid(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.MetricsError != "" || res.CPUSplit == nil {
		t.Fatalf("no split (metrics error %q)", res.MetricsError)
	}
	millions := float64(res.Delivered) / 1e6
	user, sys := res.CPUSplit.User*millions, res.CPUSplit.Sys*millions
	if user <= 0 || sys <= 0 {
		t.Errorf("user %.3f s, sys %.3f s: each should be above zero for %d deliveries", user, sys, res.Delivered)
	}
	cpu := float64(res.CPUPublish)
	t.Logf("user %.3f + sys %.3f s, /metrics %.3f s", user, sys, cpu)
	if d := math.Abs(user + sys - cpu); d > 0.03+0.05*cpu {
		t.Errorf("user %.3f + sys %.3f s, but /metrics says %.3f s", user, sys, cpu)
	}

	// Without a pid there is no split.
	res, err = Run(t.Context(), Config{
		URL: b.URL, Target: "broker", Scenario: "conversations", Subscribers: 2, Streams: 1,
		Count: 10, Payload: 64, Concurrency: 1, Drain: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.CPUSplit != nil {
		t.Errorf("split %+v without a pid", *res.CPUSplit)
	}
}

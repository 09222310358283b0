package ssebench

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// summarizeCmd prints, per scenario and target, the median of each figure
// over the runs in the given JSON lines files, and the ratio broker/baseline.
func summarizeCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("summarize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tag := fs.String("tag", "", "only runs with this tag")
	maxSteal := fs.Float64("max-steal", -1, "leave out runs during which the host's CPU steal was above this percent (or not measured); -1: keep all")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	groups := map[string]map[string][]Result{} // scenario → target → runs
	left := 0                                  // runs left out by -max-steal
	for _, path := range fs.Args() {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			r, err := decodeResult(sc.Bytes())
			if err != nil || (*tag != "" && r.Tag != *tag) {
				continue
			}
			if *maxSteal >= 0 && (r.HostStealPct < 0 || r.HostStealPct > *maxSteal) {
				left++
				continue
			}
			if groups[r.Scenario] == nil {
				groups[r.Scenario] = map[string][]Result{}
			}
			groups[r.Scenario][r.Target] = append(groups[r.Scenario][r.Target], r)
		}
		f.Close()
	}
	if *maxSteal >= 0 {
		fmt.Fprintf(stdout, "left out %d runs with host CPU steal above %.1f%% (or not measured)\n", left, *maxSteal)
	}
	summarize(stdout, groups)
	return 0
}

// decodeResult reads one JSON line of a run. The server's figures absent
// from it (a sample not read) stay NaN, not measured, instead of
// decoding as 0.
func decodeResult(line []byte) (Result, error) {
	r := Result{
		RSSBefore: notMeasured(), RSSConnected: notMeasured(), RSSAfter: notMeasured(), RSSPerConn: notMeasured(),
		CPUConnect: notMeasured(), CPUPublish: notMeasured(), CPUPerMillion: notMeasured(),
	}
	err := json.Unmarshal(line, &r)
	return r, err
}

type figure struct {
	name string
	// get returns NaN where the run did not measure the figure; its
	// median is then over fewer runs, which the table says.
	get func(Result) float64
	// noRatio: a figure of the host, not of the server, whose ratio
	// between two targets means nothing.
	noRatio bool
}

var figures = []figure{
	{name: "delivered_per_s", get: func(r Result) float64 { return r.DeliveredPerSec }},
	{name: "publish_per_s", get: func(r Result) float64 { return r.PublishPerSec }},
	{name: "lost", get: func(r Result) float64 { return float64(r.Lost) }},
	{name: "duplicated", get: func(r Result) float64 { return float64(r.Duplicated) }},
	{name: "unexpected", get: func(r Result) float64 { return float64(r.Unexpected) }},
	{name: "reordered", get: func(r Result) float64 { return float64(r.Reordered) }},
	{name: "reconnects", get: func(r Result) float64 { return float64(r.Reconnects) }},
	{name: "connect_errors", get: func(r Result) float64 { return float64(r.ConnectErrors) }},
	{name: "slow_cut_off", get: func(r Result) float64 { return float64(r.SlowCutOff) }},
	{name: "p50_us", get: func(r Result) float64 { return r.LatencyUS.P50 }},
	{name: "p99_us", get: func(r Result) float64 { return r.LatencyUS.P99 }},
	{name: "p999_us", get: func(r Result) float64 { return r.LatencyUS.P999 }},
	{name: "max_us", get: func(r Result) float64 { return r.LatencyUS.Max }},
	{name: "publish_late_p99_us", get: func(r Result) float64 { return r.PublishLateUS.P99 }},
	{name: "rss_per_conn_B", get: func(r Result) float64 { return float64(r.RSSPerConn) }},
	{name: "rss_after_MiB", get: func(r Result) float64 { return float64(r.RSSAfter) / (1 << 20) }},
	{name: "cpu_s_per_M_delivered", get: func(r Result) float64 { return float64(r.CPUPerMillion) }},
	{name: "cpu_user_s_per_M", get: cpuSplit(func(c *CPUSplit) float64 { return c.User })},
	{name: "cpu_sys_s_per_M", get: cpuSplit(func(c *CPUSplit) float64 { return c.Sys })},
	{name: "host_steal_pct", get: func(r Result) float64 { return r.HostStealPct }, noRatio: true},
	{name: "quiet_p99_us", get: func(r Result) float64 {
		if r.QuietLatencyUS == nil {
			return math.NaN() // no quiet second, or a run from before they were kept
		}
		return r.QuietLatencyUS.P99
	}},
	{name: "tool_sched_p99_us", get: func(r Result) float64 {
		if r.ToolSchedUS == nil {
			return math.NaN()
		}
		return r.ToolSchedUS.P99
	}, noRatio: true},
	{name: "quiet_seconds", get: func(r Result) float64 {
		if len(r.StealPerSecond) == 0 || r.QuietSeconds == nil {
			return math.NaN() // not measured: -procs, or no steal readings
		}
		return float64(*r.QuietSeconds)
	}, noRatio: true},
}

// median is the median of the values of v that are not NaN (not
// measured), or NaN when there are none.
func median(v []float64) float64 {
	s := make([]float64, 0, len(v))
	for _, x := range v {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize prints a table per scenario: the medians of the broker's and
// the baseline's runs and their ratio, and when there are runs of
// bench/floor (the least a net/http server can do for the same traffic),
// its medians and its ratio to the baseline too.
func summarize(w io.Writer, groups map[string]map[string][]Result) {
	scen := make([]string, 0, len(groups))
	for s := range groups {
		scen = append(scen, s)
	}
	sort.Strings(scen)
	for _, s := range scen {
		b, bl, fl := groups[s]["broker"], groups[s]["baseline"], groups[s]["floor"]
		if len(fl) == 0 {
			fmt.Fprintf(w, "%s (median of %d broker runs, %d baseline runs)\n", s, len(b), len(bl))
			fmt.Fprintf(w, "  %-24s %14s %14s %10s\n", "figure", "broker", "baseline", "ratio")
		} else {
			fmt.Fprintf(w, "%s (median of %d broker runs, %d baseline runs, %d floor runs)\n", s, len(b), len(bl), len(fl))
			fmt.Fprintf(w, "  %-24s %14s %14s %10s %14s %10s\n", "figure", "broker", "baseline", "ratio", "floor", "ratio")
		}
		var partial []string
		for _, f := range figures {
			if n, nb, nf := measured(b, f), measured(bl, f), measured(fl, f); n < len(b) || nb < len(bl) || nf < len(fl) {
				partial = append(partial, fmt.Sprintf("%s over %d broker, %d baseline, %d floor runs", f.name, n, nb, nf))
			}
			fmt.Fprintf(w, "  %-24s %14s %14s %10s", f.name, figureText(medianOf(b, f)), figureText(medianOf(bl, f)), ratio(f, b, bl))
			if len(fl) > 0 {
				fmt.Fprintf(w, " %14s %10s", figureText(medianOf(fl, f)), ratio(f, fl, bl))
			}
			fmt.Fprintln(w)
		}
		for _, p := range partial {
			fmt.Fprintf(w, "  (%s: the others did not measure it)\n", p)
		}
	}
}

// measured counts the runs of rs that measured f.
func measured(rs []Result, f figure) int {
	n := 0
	for _, r := range rs {
		if !math.IsNaN(f.get(r)) {
			n++
		}
	}
	return n
}

func medianOf(rs []Result, f figure) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f.get(r)
	}
	return median(v)
}

// figureText is a median for the table: "-" when nothing was measured.
func figureText(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

// ratio is median(of)/median(to) for f, or "-" where it means nothing.
func ratio(f figure, of, to []Result) string {
	n, d := medianOf(of, f), medianOf(to, f)
	if f.noRatio || math.IsNaN(n) || math.IsNaN(d) || d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", n/d)
}

// cpuSplit gets a part of a run's CPU split, NaN for a run without
// -server-pid.
func cpuSplit(part func(*CPUSplit) float64) func(Result) float64 {
	return func(r Result) float64 {
		if r.CPUSplit == nil {
			return math.NaN()
		}
		return part(r.CPUSplit)
	}
}

package ssebench

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
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
			var r Result
			if json.Unmarshal(sc.Bytes(), &r) != nil || (*tag != "" && r.Tag != *tag) {
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

type figure struct {
	name string
	get  func(Result) float64
}

var figures = []figure{
	{"delivered_per_s", func(r Result) float64 { return r.DeliveredPerSec }},
	{"publish_per_s", func(r Result) float64 { return r.PublishPerSec }},
	{"lost", func(r Result) float64 { return float64(r.Lost) }},
	{"duplicated", func(r Result) float64 { return float64(r.Duplicated) }},
	{"reconnects", func(r Result) float64 { return float64(r.Reconnects) }},
	{"connect_errors", func(r Result) float64 { return float64(r.ConnectErrors) }},
	{"slow_cut_off", func(r Result) float64 { return float64(r.SlowCutOff) }},
	{"p50_us", func(r Result) float64 { return r.LatencyUS.P50 }},
	{"p99_us", func(r Result) float64 { return r.LatencyUS.P99 }},
	{"p999_us", func(r Result) float64 { return r.LatencyUS.P999 }},
	{"max_us", func(r Result) float64 { return r.LatencyUS.Max }},
	{"rss_per_conn_B", func(r Result) float64 { return r.RSSPerConn }},
	{"rss_after_MiB", func(r Result) float64 { return r.RSSAfter / (1 << 20) }},
	{"cpu_s_per_M_delivered", func(r Result) float64 { return r.CPUPerMillion }},
	{"host_steal_pct", func(r Result) float64 { return r.HostStealPct }},
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(w io.Writer, groups map[string]map[string][]Result) {
	scen := make([]string, 0, len(groups))
	for s := range groups {
		scen = append(scen, s)
	}
	sort.Strings(scen)
	for _, s := range scen {
		b, bl := groups[s]["broker"], groups[s]["baseline"]
		fmt.Fprintf(w, "%s (median of %d broker runs, %d baseline runs)\n", s, len(b), len(bl))
		fmt.Fprintf(w, "  %-24s %14s %14s %10s\n", "figure", "broker", "baseline", "ratio")
		for _, f := range figures {
			med := func(rs []Result) float64 {
				v := make([]float64, len(rs))
				for i, r := range rs {
					v[i] = f.get(r)
				}
				return median(v)
			}
			mb, mbl := med(b), med(bl)
			ratio := "-"
			if len(b) > 0 && len(bl) > 0 && mbl != 0 {
				ratio = fmt.Sprintf("%.2f", mb/mbl)
			}
			fmt.Fprintf(w, "  %-24s %14.1f %14.1f %10s\n", f.name, mb, mbl, ratio)
		}
	}
}

// Package ssebench is the broker's load tool: it opens N subscribers over S
// streams, publishes with a send timestamp in each event, and reports
// throughput, publish→delivery latency, loss and duplicates per subscriber,
// connect errors, and the server's RSS and CPU from its /metrics.
//
// Subscribers behave like EventSource: when the server ends a response
// before the run is over (the broker cuts a subscriber whose queue is full),
// the subscriber reconnects with Last-Event-ID and catches up from history,
// so "lost" counts only what a real client would miss. -resume=false shows
// the old behaviour (a cut subscriber stays cut and everything after the cut
// counts as lost).
//
// It is a package, not only a command, so that two binaries run the same
// code: cmd/ssebench (built by scripts/bench.sh) and `broker bench`.
//
//	ssebench -url http://127.0.0.1:8080 -scenario fanout|conversations|tokens|idle|slow \
//	    [-subscribers N -streams S -rate R -duration D -payload B -sources 127.0.0.1,127.0.0.2] \
//	    [-json out.jsonl] [-svg out.svg] [-target broker|baseline|floor] [-full]
//	ssebench ... -procs N   (N worker processes, each its own share of the streams; figures merged)
//	ssebench summarize [-tag T] [-max-steal P] results.jsonl...
package ssebench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"golang.org/x/term"
)

// preset is a scenario's default shape; flags given on the command line win.
type preset struct {
	subscribers, streams, slow int
	rate                       float64 // <0: 30 per stream (tokens)
	duration, settle           time.Duration
	payload                    int
}

// presets are small enough to run anywhere in seconds; -full switches to
// the full sizes the performance targets are set at.
var presets = map[string]struct{ small, full preset }{
	"fanout":        {preset{200, 1, 0, 0, 10 * time.Second, 0, 64}, preset{1000, 1, 0, 0, 30 * time.Second, 0, 64}},
	"conversations": {preset{400, 200, 0, 2000, 10 * time.Second, 0, 64}, preset{2000, 1000, 0, 2000, 30 * time.Second, 0, 64}},
	"tokens":        {preset{100, 100, 0, -1, 10 * time.Second, 0, 48}, preset{1000, 1000, 0, -1, 30 * time.Second, 0, 48}},
	"idle":          {preset{1000, 100, 0, 1000, 10 * time.Second, 2 * time.Second, 64}, preset{19000, 1000, 0, 1000, 30 * time.Second, 5 * time.Second, 64}},
	"slow":          {preset{10, 1, 1, 1000, 10 * time.Second, 0, 1024}, preset{100, 1, 1, 1000, 30 * time.Second, 0, 1024}},
}

// Main is the command line of the tool without the process: args without
// the program name, and the exit code returned. It stops early when ctx
// ends. self is how to start the tool again, for -procs: the program and
// the arguments before the tool's own (cmd/ssebench: its executable;
// `broker bench`: the broker's and "bench"); nil refuses -procs.
func Main(ctx context.Context, self, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "summarize" {
		return summarizeCmd(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("ssebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: ssebench [flags]\n       ssebench summarize [-tag T] [-max-steal P] results.jsonl...\n\nA flag left out takes the scenario's value where it says so.\n\n")
		fs.PrintDefaults()
	}
	var (
		u        = fs.String("url", "http://127.0.0.1:8080", "server base URL")
		target   = fs.String("target", "broker", "broker (POST /v1/streams/{s}/messages), baseline (POST /publish?stream=s) or floor (bench/floor: the baseline's protocol)")
		scenario = fs.String("scenario", "conversations", "fanout, conversations, tokens, idle or slow")
		full     = fs.Bool("full", false, "use the full sizes, those the targets in docs/performance.md are set at, instead of the small defaults")
		subs     = fs.Int("subscribers", 0, "subscribers (default: the scenario's)")
		streams  = fs.Int("streams", 0, "streams (default: the scenario's)")
		rate     = fs.Float64("rate", 0, "events per second over all streams; 0: flat out (default: the scenario's)")
		dur      = fs.Duration("duration", 0, "how long to publish (default: the scenario's)")
		count    = fs.Int("count", 0, "publish exactly this many events (0: until -duration ends)")
		payload  = fs.Int("payload", 0, "bytes of data per event, at least 48 (default: the scenario's)")
		conc     = fs.Int("concurrency", 32, "publish requests in flight")
		batch    = fs.Int("batch", 1, "events per publish request to the broker, as a JSON array (the baseline always gets 1)")
		gcPct    = fs.Int("gogc", 400, "the tool's own GC percent: its collections pause the readers and count in the latency it measures")
		sources  = fs.String("sources", "", "comma-separated local addresses to dial subscribers from (e.g. 127.0.0.1,127.0.0.2)")
		slow     = fs.Int("slow", 0, "subscribers that stop reading (default: 1 in scenario slow, else 0)")
		settle   = fs.Duration("settle", 0, "wait after connecting before reading RSS (default: the scenario's)")
		drain    = fs.Duration("drain", 2*time.Second, "how long delivery may stall after the last publish (while no subscriber waits to resume) before counting")
		drainMax = fs.Duration("drain-timeout", 30*time.Second,
			"longest wait after the last publish for every subscriber to catch up; delivered/s counts from the first publish until all caught up or the wait gave up (drain_end)")
		resume = fs.Bool("resume", true,
			"reconnect a subscriber whose response the server ended, with Last-Event-ID, as EventSource does (false: it stays ended and the rest counts as lost). "+
				"latency_us includes events received after a resume (replayed from history, then live): that is the latency a cut-off client sees; delivered_after_resume counts them")
		resumeWait = fs.Duration("resume-wait", 100*time.Millisecond,
			"pause before a resume; negative: the server's retry: value (3 s by default, which would mostly measure the pause)")
		jsonOut = fs.String("json", "", "append one JSON line per run to this file")
		svgOut  = fs.String("svg", "", "write the chart here (default: next to -json)")
		tag     = fs.String("tag", "", "free label stored in the JSON line (groups runs for summarize)")
		cpuProf = fs.String("cpuprofile", "", "write the tool's own CPU profile here (is the tool the limit?)")
		procs   = fs.Int("procs", 1,
			"split the run over this many worker processes of this binary, each with its own share of the streams, their subscribers and their publishing; "+
				"the figures are merged (more connections than one process's file limit, more cores to read with; needs -streams >= -procs, and a -count of at least -procs when one is given)")
		serverPID = fs.Int("server-pid", 0,
			"the server's process id, when it runs on this host: its CPU is then also read from /proc/<pid>/stat and split into user and system time (cpu_split_s_per_million_delivered)")
		firstStream = fs.Int("first-stream", 0, "the number of the first stream, carried in every event's data (-procs numbers each worker's streams on from the one before)")
		worker      = fs.Bool("worker", false, "run as one worker of -procs (the tool starts these itself; JSON lines on stdin and stdout)")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	ps, ok := presets[*scenario]
	if !ok {
		fmt.Fprintf(stderr, "unknown scenario %q\n", *scenario)
		return 2
	}
	p := ps.small
	if *full {
		p = ps.full
	}
	cfg := Config{
		URL: *u, Target: *target, Scenario: *scenario, Subscribers: p.subscribers, Streams: p.streams,
		Rate: p.rate, Duration: p.duration, Count: *count, Payload: p.payload, Concurrency: *conc, Batch: *batch,
		Slow: p.slow, Settle: p.settle, Drain: *drain, DrainTimeout: *drainMax, NoResume: !*resume, ResumeWait: *resumeWait, Tag: *tag,
		ServerPID: *serverPID, FirstStream: *firstStream,
	}
	if set["subscribers"] {
		cfg.Subscribers = *subs
	}
	if set["streams"] {
		cfg.Streams = *streams
	}
	cfg.Duration = runDuration(p.duration, *dur, *count, set)
	if set["payload"] {
		cfg.Payload = *payload
	}
	if set["slow"] {
		cfg.Slow = *slow
	}
	if set["settle"] {
		cfg.Settle = *settle
	}
	if set["rate"] {
		cfg.Rate = *rate
	} else if cfg.Rate < 0 {
		cfg.Rate = 30 * float64(cfg.Streams)
	}
	if *sources != "" {
		for _, s := range strings.Split(*sources, ",") {
			cfg.Sources = append(cfg.Sources, strings.TrimSpace(s))
		}
	}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		cfg.Progress = stderr
	}
	debug.SetGCPercent(*gcPct)
	if *cpuProf != "" {
		stop, err := startCPUProfile(*cpuProf)
		if err != nil {
			fmt.Fprintln(stderr, "ssebench:", err)
			return 1
		}
		defer stop()
	}
	if *worker {
		if err := workerMain(ctx, cfg, os.Stdin, stdout); err != nil {
			fmt.Fprintln(stderr, "ssebench worker:", err)
			return 1
		}
		return 0
	}
	var res *Result
	var err error
	if *procs > 1 {
		res, err = runProcs(ctx, self, cfg, *procs, *gcPct, stderr)
	} else {
		res, err = Run(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, "ssebench:", err)
		return 1
	}
	printResult(stdout, res)
	if ctx.Err() != nil {
		// Cut short: its figures are not those of the run asked for.
		fmt.Fprintln(stderr, "ssebench: interrupted; the run is not recorded")
		return 1
	}
	if res.MetricsError != "" && cfg.ServerPID != 0 {
		// -server-pid names a server started on this host for the run
		// (bench.sh): its figures not read means it died, or another
		// process answered on its port.
		fmt.Fprintf(stderr, "ssebench: the server's figures could not be read (%s); the run is not recorded\n", res.MetricsError)
		return 1
	}
	if *jsonOut != "" {
		if err := appendJSON(*jsonOut, res); err != nil {
			fmt.Fprintln(stderr, "ssebench:", err)
			return 1
		}
		if *svgOut == "" {
			*svgOut = filepath.Join(filepath.Dir(*jsonOut), fmt.Sprintf("%s-%s.svg", res.Scenario, res.Target))
		}
	}
	if *svgOut != "" {
		if err := writeSVGFile(*svgOut, res); err != nil {
			fmt.Fprintln(stderr, "ssebench:", err)
			return 1
		}
	}
	return 0
}

// runDuration is how long a run publishes: -duration when given; with a
// -count and no -duration, no limit (the count ends the run); else the
// scenario's. A -count of 0 is "until -duration ends", so it keeps the
// scenario's duration: taking it as a count too would leave no end.
func runDuration(scenario, flagged time.Duration, count int, set map[string]bool) time.Duration {
	switch {
	case set["duration"]:
		return flagged
	case set["count"] && count > 0:
		return 0
	}
	return scenario
}

// startCPUProfile profiles this process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func appendJSON(path string, res *Result) error {
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func printResult(w io.Writer, r *Result) {
	procs := ""
	if r.Procs > 1 {
		procs = fmt.Sprintf(" (%d processes)", r.Procs)
	}
	fmt.Fprintf(w, "%s/%s: %d subscribers (%d connect errors) over %d streams, %.1fs%s\n",
		r.Target, r.Scenario, r.Connected, r.ConnectErrors, r.Streams, r.Duration, procs)
	fmt.Fprintf(w, "  published %d (%.0f/s, %d errors), delivered %d (%.0f/s) of %d expected\n",
		r.Published, r.PublishPerSec, r.PublishErrors, r.Delivered, r.DeliveredPerSec, r.Expected)
	fmt.Fprintf(w, "  lost %d (%d subscribers), duplicated %d, never acknowledged %d, out of order %d, dropped %d, slow cut off %d\n",
		r.Lost, r.SubscribersLosing, r.Duplicated, r.Unexpected, r.Reordered, r.Dropped, r.SlowCutOff)
	if r.Resume {
		fmt.Fprintf(w, "  resume: %d reconnects (%d ended cleanly, %d read errors; %d failed attempts) by %d subscribers, %d gaps, %d refused, %d answered 204; %d delivered after a resume\n",
			r.Reconnects, r.ReconnectsEOF, r.ReconnectsError, r.ReconnectFailures, r.SubscribersResumed, r.Gaps, r.ResumeRefused, r.Resume204, r.DeliveredAfterResume)
	} else {
		fmt.Fprintln(w, "  resume: off")
	}
	fmt.Fprintf(w, "  drain: %s after %.1fs\n", r.DrainEnd, r.DrainSeconds)
	l := r.LatencyUS
	fmt.Fprintf(w, "  latency µs p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f max %.0f\n", l.P50, l.P90, l.P99, l.P999, l.Max)
	if r.Rate > 0 {
		late := r.PublishLateUS
		fmt.Fprintf(w, "  publishes sent behind the schedule µs p50 %.0f p99 %.0f max %.0f (not in the latency, which counts from the send)\n", late.P50, late.P99, late.Max)
	}
	if r.HostStealPct >= 0 {
		fmt.Fprintf(w, "  host CPU steal %.1f%% while publishing (time the hypervisor ran something else; it shows in the latency tail)\n", r.HostStealPct)
	}
	if s := r.ToolSchedUS; s != nil {
		fmt.Fprintf(w, "  the tool's goroutines waited for its CPU µs p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f max %.0f (part of the latency)\n", s.P50, s.P90, s.P99, s.P999, s.Max)
	}
	if q := r.QuietLatencyUS; q != nil {
		fmt.Fprintf(w, "  latency µs of the events sent in the %d of %d seconds without steal: p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f max %.0f\n",
			*r.QuietSeconds, r.publishSeconds(), q.P50, q.P90, q.P99, q.P999, q.Max)
	} else if len(r.StealPerSecond) > 0 {
		fmt.Fprintf(w, "  no second of publishing without steal\n")
	}
	if r.MetricsError != "" {
		fmt.Fprintf(w, "  server metrics: %s (the figures it needed are left out: -)\n", r.MetricsError)
	}
	fmt.Fprintf(w, "  server RSS %s MiB → %s MiB connected (%s KiB/conn) → %s MiB; CPU %ss publishing (%ss per million delivered)\n",
		r.RSSBefore.text(1<<20, "%.1f"), r.RSSConnected.text(1<<20, "%.1f"), r.RSSPerConn.text(1024, "%.1f"), r.RSSAfter.text(1<<20, "%.1f"),
		r.CPUPublish.text(1, "%.2f"), r.CPUPerMillion.text(1, "%.2f"))
	if c := r.CPUSplit; c != nil {
		fmt.Fprintf(w, "  of which user %.2fs and system %.2fs per million delivered\n", c.User, c.Sys)
	}
}

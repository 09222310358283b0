package ssebench

// Several processes (-procs N): one process holds at most its file limit
// in connections and parses events on whatever cores it gets, so the tool
// can split a run over N worker processes of its own binary. Each worker
// owns a share of the streams with their subscribers and publishing, and
// counts loss, duplicates and latency for them as a single run does. The
// parent reads the server's /metrics and the host's steal, lets every
// worker start publishing at once after all have connected, prints the
// live progress line for all of them from the counters they send once a
// second, and merges what they measured into one Result: counts summed, latency histograms
// merged, per-second series added. It reads the server's figures after
// every worker has drained and before any closes its connections, as a
// single run does.
//
// Parent and worker talk in JSON lines over the worker's stdin and stdout:
//
//	worker → parent  {"connected": n, "connect_errors": e}  (connected, settled)
//	parent → worker  go
//	worker → parent  {"progress": {...}}                    (once a second: its counters)
//	worker → parent  {"drained": true}                      (caught up, all still open)
//	parent → worker  count
//	worker → parent  {"result": {...}, "hist": {...}, "late": {...}}  (the worker's run)

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// connectedLine is a worker's report that its subscribers are connected.
type connectedLine struct {
	Connected     int `json:"connected"`
	ConnectErrors int `json:"connect_errors"`
}

// publishingLine is what a worker reports while it publishes and drains:
// its counters once a second, then that its subscribers have caught up.
type publishingLine struct {
	Progress *Counters `json:"progress,omitempty"`
	Drained  bool      `json:"drained,omitempty"`
}

// resultLine is a worker's whole run.
type resultLine struct {
	Result *Result    `json:"result"`
	Hist   *Histogram `json:"hist"`
	Late   *Histogram `json:"late"`
}

// shareOf is worker i's part of cfg when split n ways: its streams; the
// subscribers, publish rate and count in proportion to them (so each
// stream has the subscribers and the rate it would have in one process);
// the requests in flight; and every slow subscriber (in worker 0). Its
// streams are numbered on from the worker's before it.
func shareOf(cfg Config, i, n int) Config {
	s := cfg
	s.Streams = split(cfg.Streams, i, n)
	for j := range i {
		s.FirstStream += split(cfg.Streams, j, n)
	}
	s.Subscribers = partsByStreams(cfg.Subscribers, cfg.Streams, n)[i]
	s.Count = partsByStreams(cfg.Count, cfg.Streams, n)[i]
	s.Rate = cfg.Rate * float64(s.Streams) / float64(cfg.Streams)
	s.Concurrency = max(1, split(cfg.Concurrency, i, n))
	if i > 0 {
		s.Slow = 0
	}
	return s
}

// partsByStreams splits total over n workers in proportion to their
// streams (split(streams, i, n)): each part rounded down, what that leaves
// over going one each to the parts that lost the most to rounding, so that
// the parts add up to total. When total is at least n every part is at
// least 1, taken from the largest: a worker given a count of 0 would have
// no end to its run (0 means no limit), and one given no subscribers would
// publish to streams nobody reads.
func partsByStreams(total, streams, n int) []int {
	parts := make([]int, n)
	lostToRounding := make([]int, n)
	left := total
	for i := range n {
		s := split(streams, i, n)
		parts[i] = total * s / streams
		lostToRounding[i] = total * s % streams
		left -= parts[i]
	}
	// Each part lost less than 1 to rounding, so fewer than n are left.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return lostToRounding[order[a]] > lostToRounding[order[b]] })
	for _, i := range order[:left] {
		parts[i]++
	}
	if total < n {
		return parts
	}
	for i := range parts {
		for parts[i] == 0 { // the largest has at least 2: n-1 parts hold total >= n
			parts[largest(parts)]--
			parts[i]++
		}
	}
	return parts
}

// largest is the index of the largest of parts (the first such).
func largest(parts []int) int {
	at := 0
	for i, v := range parts {
		if v > parts[at] {
			at = i
		}
	}
	return at
}

// split is part i of total shared n ways, the remainder going to the
// first parts.
func split(total, i, n int) int {
	v := total / n
	if i < total%n {
		v++
	}
	return v
}

// workerArgs are the command-line arguments of a worker running share.
func workerArgs(share Config, gcPct int) []string {
	args := []string{
		"-worker",
		"-url", share.URL, "-target", share.Target, "-scenario", share.Scenario,
		"-subscribers", strconv.Itoa(share.Subscribers), "-streams", strconv.Itoa(share.Streams), "-first-stream", strconv.Itoa(share.FirstStream),
		"-rate", strconv.FormatFloat(share.Rate, 'g', -1, 64),
		"-duration", share.Duration.String(), "-count", strconv.Itoa(share.Count),
		"-payload", strconv.Itoa(share.Payload), "-concurrency", strconv.Itoa(share.Concurrency),
		"-batch", strconv.Itoa(share.Batch), "-gogc", strconv.Itoa(gcPct),
		"-slow", strconv.Itoa(share.Slow), "-settle", share.Settle.String(),
		"-drain", share.Drain.String(), "-drain-timeout", share.DrainTimeout.String(),
		"-resume=" + strconv.FormatBool(!share.NoResume), "-resume-wait", share.ResumeWait.String(),
	}
	if len(share.Sources) > 0 {
		args = append(args, "-sources", strings.Join(share.Sources, ","))
	}
	return args
}

// worker is one running worker process, seen from the parent.
type worker struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	waited bool
}

// wait waits for the worker to exit (once).
func (w *worker) wait() error {
	if w.waited {
		return nil
	}
	w.waited = true
	return w.cmd.Wait()
}

// readLine decodes the worker's next stdout line into v.
func (w *worker) readLine(v any) error {
	if !w.lines.Scan() {
		if err := w.lines.Err(); err != nil {
			return err
		}
		return errors.New("the worker ended early (its error is above)")
	}
	return json.Unmarshal(w.lines.Bytes(), v)
}

// readUntilDrained reads the worker's lines until it reports it has
// drained, handing each second's counters to onProgress.
func (w *worker) readUntilDrained(onProgress func(Counters)) error {
	for {
		var l publishingLine
		if err := w.readLine(&l); err != nil {
			return err
		}
		switch {
		case l.Drained:
			return nil
		case l.Progress != nil:
			onProgress(*l.Progress)
		default:
			return errors.New("want its progress or its drained line")
		}
	}
}

// awaitDrained waits until every worker has drained. Meanwhile, when
// cfg.Progress is set, it prints the live progress line a single run
// prints, once every worker has sent its counters of the next second: their
// sum (the p99: the highest of theirs).
func awaitDrained(workers []*worker, cfg Config) error {
	type second struct {
		worker   int
		counters Counters
	}
	seconds := make(chan second)
	drained := make(chan error, len(workers)) // buffered: a reader never waits for a parent that returned
	stop := make(chan struct{})
	defer close(stop)
	for i, w := range workers {
		go func() {
			err := w.readUntilDrained(func(c Counters) {
				select {
				case seconds <- second{i, c}:
				case <-stop:
				}
			})
			if err != nil {
				err = fmt.Errorf("worker %d, publishing: %w", i, err)
			}
			drained <- err
		}()
	}
	p := newProcsProgress(len(workers), cfg)
	for waiting := len(workers); waiting > 0; {
		select {
		case s := <-seconds:
			p.add(s.worker, s.counters)
		case err := <-drained:
			if err != nil {
				return err
			}
			waiting--
		}
	}
	p.end()
	return nil
}

// procsProgress is the live progress line of a run split over processes.
type procsProgress struct {
	cfg     Config
	each    []Counters // each worker's latest
	seconds []int      // how many seconds each worker has reported
	printed int        // seconds printed
	last    Counters   // the sum printed last
}

func newProcsProgress(workers int, cfg Config) *procsProgress {
	return &procsProgress{cfg: cfg, each: make([]Counters, workers), seconds: make([]int, workers)}
}

// add takes a worker's counters of its next second, and prints the sum
// of all once every worker has reported that second (when Progress is set).
func (p *procsProgress) add(worker int, c Counters) {
	p.each[worker] = c
	p.seconds[worker]++
	if p.cfg.Progress == nil || slices.Min(p.seconds) == p.printed {
		return
	}
	p.printed = slices.Min(p.seconds)
	var now Counters
	for _, c := range p.each {
		now = now.add(c)
	}
	elapsed := time.Duration(p.printed) * time.Second
	fmt.Fprint(p.cfg.Progress, progressText(elapsed, p.cfg.Target, p.cfg.Scenario, now, p.last, "p99 (highest process)", ""))
	p.last = now
}

// end ends the progress line, if one was printed.
func (p *procsProgress) end() {
	if p.printed > 0 {
		fmt.Fprintln(p.cfg.Progress)
	}
}

// runProcs runs cfg as n worker processes started with self (the program
// and the arguments before the tool's own) and merges their results.
func runProcs(ctx context.Context, self []string, cfg Config, n, gcPct int, stderr io.Writer) (*Result, error) {
	// Each worker's stderr is copied into stderr by a goroutine of its own
	// (exec.Cmd does so for any writer but an *os.File).
	stderr = &lockedWriter{w: stderr}
	switch {
	case len(self) == 0:
		return nil, errors.New("-procs: this build cannot start itself again")
	case cfg.Streams < n:
		return nil, fmt.Errorf("-procs %d needs at least %d streams (each process publishes to streams of its own); this run has %d", n, n, cfg.Streams)
	case cfg.Subscribers < n:
		return nil, fmt.Errorf("-procs %d needs at least %d subscribers; this run has %d", n, n, cfg.Subscribers)
	case cfg.Count > 0 && cfg.Count < n:
		return nil, fmt.Errorf("-procs %d needs a -count of at least %d (each process publishes its own share, and a share of 0 would have no end); this run has %d", n, n, cfg.Count)
	}
	if err := cfg.checkEnd(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	client := &http.Client{}
	defer client.CloseIdleConnections()
	server := &serverMeter{client: client, url: cfg.URL, timeout: cfg.ResponseTimeout, pid: cfg.ServerPID}
	before := server.sample(ctx)

	ctx, cancel := context.WithCancel(ctx)
	var workers []*worker
	defer func() { // on an early return: end the workers still running
		cancel()
		for _, w := range workers {
			_ = w.wait()
		}
	}()
	for i := range n {
		cmd := exec.CommandContext(ctx, self[0], append(append([]string(nil), self[1:]...), workerArgs(shareOf(cfg, i, n), gcPct)...)...)
		cmd.Stderr = stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, fmt.Errorf("worker %d: %w", i, err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, fmt.Errorf("worker %d: %w", i, err)
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("worker %d: start %s: %w", i, self[0], err)
		}
		lines := bufio.NewScanner(stdout)
		lines.Buffer(make([]byte, 64<<10), 64<<20)
		workers = append(workers, &worker{cmd: cmd, stdin: stdin, lines: lines})
	}

	connected, connectErrors := 0, 0
	for i, w := range workers {
		var c connectedLine
		if err := w.readLine(&c); err != nil {
			return nil, fmt.Errorf("worker %d, connecting: %w", i, err)
		}
		connected += c.Connected
		connectErrors += c.ConnectErrors
	}
	fmt.Fprintf(stderr, "ssebench: %d processes connected %d subscribers (%d errors); publishing\n", n, connected, connectErrors)
	atConnect := server.sample(ctx)
	steal := startSteal()
	tell := func(line string) error {
		for i, w := range workers {
			if _, err := io.WriteString(w.stdin, line+"\n"); err != nil {
				return fmt.Errorf("worker %d: %w", i, err)
			}
		}
		return nil
	}
	if err := tell("go"); err != nil {
		return nil, err
	}
	if err := awaitDrained(workers, cfg); err != nil {
		return nil, err
	}
	stealPct := steal.percent()
	after := server.sample(ctx)
	if err := tell("count"); err != nil {
		return nil, err
	}
	parts := make([]resultLine, n)
	for i, w := range workers {
		if err := w.readLine(&parts[i]); err != nil {
			return nil, fmt.Errorf("worker %d, counting: %w", i, err)
		}
		if parts[i].Result == nil || parts[i].Hist == nil || parts[i].Late == nil {
			return nil, fmt.Errorf("worker %d: no result", i)
		}
		parts[i].Result.hist, parts[i].Result.late = parts[i].Hist, parts[i].Late
	}
	for i, w := range workers {
		_ = w.stdin.Close()
		if err := w.wait(); err != nil {
			return nil, fmt.Errorf("worker %d: %w", i, err)
		}
	}

	results := make([]*Result, n)
	for i := range parts {
		results[i] = parts[i].Result
	}
	res := mergeResults(cfg, results)
	res.HostStealPct = stealPct
	res.setServerFigures(before, atConnect, after, server.err)
	return res, nil
}

// mergeResults is the run of cfg made of the workers' parts, without the
// server's metrics and the host's steal (the parent's to read).
func mergeResults(cfg Config, parts []*Result) *Result {
	res := &Result{
		Time: time.Now().UTC().Format(time.RFC3339), Tag: cfg.Tag, Target: cfg.Target, Scenario: cfg.Scenario,
		URL: cfg.URL, Subscribers: cfg.Subscribers, Streams: cfg.Streams, Rate: cfg.Rate, Payload: cfg.Payload,
		Batch: cfg.Batch, Resume: !cfg.NoResume, DrainEnd: "caught_up", Procs: len(parts),
		hist: &Histogram{}, late: &Histogram{},
	}
	addSeries := func(dst *[]float64, src []float64) {
		for i, v := range src {
			if i == len(*dst) {
				*dst = append(*dst, 0)
			}
			(*dst)[i] += v
		}
	}
	for i, p := range parts {
		res.Connected += p.Connected
		res.ConnectErrors += p.ConnectErrors
		res.ConnectSeconds = max(res.ConnectSeconds, p.ConnectSeconds)
		res.Published += p.Published
		res.PublishErrors += p.PublishErrors
		res.PublishPerSec += p.PublishPerSec
		res.Delivered += p.Delivered
		res.Expected += p.Expected
		res.Lost += p.Lost
		res.Duplicated += p.Duplicated
		res.Unexpected += p.Unexpected
		res.Reordered += p.Reordered
		res.SubscribersLosing += p.SubscribersLosing
		res.Dropped += p.Dropped
		res.SlowCutOff += p.SlowCutOff
		res.Reconnects += p.Reconnects
		res.ReconnectsEOF += p.ReconnectsEOF
		res.ReconnectsError += p.ReconnectsError
		res.ReconnectFailures += p.ReconnectFailures
		res.ResumeRefused += p.ResumeRefused
		res.Resume204 += p.Resume204
		res.SubscribersResumed += p.SubscribersResumed
		res.Gaps += p.Gaps
		res.DeliveredAfterResume += p.DeliveredAfterResume
		res.Duration = max(res.Duration, p.Duration)
		res.DrainSeconds = max(res.DrainSeconds, p.DrainSeconds)
		if p.ToolSchedUS != nil && (res.ToolSchedUS == nil || p.ToolSchedUS.P99 > res.ToolSchedUS.P99) {
			res.ToolSchedUS = p.ToolSchedUS // the worker that waited longest
		}
		if p.DrainEnd != "caught_up" && res.DrainEnd == "caught_up" {
			res.DrainEnd = p.DrainEnd // the first worker that did not catch up says why
		}
		if i == 0 || p.FileLimit < res.FileLimit {
			res.FileLimit = p.FileLimit
		}
		addSeries(&res.PerSecond, p.PerSecond)
		addSeries(&res.PublishedPerSec, p.PublishedPerSec)
		res.hist.merge(p.hist)
		if p.late != nil {
			res.late.merge(p.late)
		}
	}
	if res.Duration > 0 {
		res.DeliveredPerSec = float64(res.Delivered) / res.Duration
	}
	res.LatencyUS = latencyOf(res.hist)
	res.PublishLateUS = latencyOf(res.late)
	return res
}

// workerMain is the worker's side of -procs: run cfg, report once
// connected, publish when the parent says go, report once drained, count
// when the parent says so, then hand over the result.
func workerMain(ctx context.Context, cfg Config, stdin io.Reader, stdout io.Writer) error {
	enc := json.NewEncoder(stdout)
	in := bufio.NewReader(stdin)
	// await waits for the parent's next line, which must be want.
	await := func(ctx context.Context, want string) error {
		got := make(chan error, 1)
		go func() {
			line, err := in.ReadString('\n')
			if err == nil && line != want+"\n" {
				err = fmt.Errorf("worker: want %s from the parent, got %q", want, line)
			}
			got <- err
		}()
		select {
		case err := <-got:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cfg.NoServerMetrics = true
	cfg.Progress = nil
	cfg.EachSecond = func(c Counters) {
		// A write that fails (the parent gone) fails the drained line too,
		// which ends the worker.
		_ = enc.Encode(publishingLine{Progress: &c})
	}
	cfg.AfterConnect = func(ctx context.Context, connected, connectErrors int) error {
		if err := enc.Encode(connectedLine{Connected: connected, ConnectErrors: connectErrors}); err != nil {
			return fmt.Errorf("worker: report connected: %w", err)
		}
		return await(ctx, "go")
	}
	cfg.AfterDrain = func(ctx context.Context) error {
		if err := enc.Encode(publishingLine{Drained: true}); err != nil {
			return fmt.Errorf("worker: report drained: %w", err)
		}
		return await(ctx, "count")
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	return enc.Encode(resultLine{Result: res, Hist: res.hist, Late: res.late})
}

// lockedWriter serializes the writes of several goroutines to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

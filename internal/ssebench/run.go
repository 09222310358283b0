package ssebench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sse-broker/broker/internal/ctxtime"
	"github.com/sse-broker/broker/internal/rlimit"
)

// Config is one run of the tool.
type Config struct {
	URL         string
	Target      string // "broker", "baseline" or "floor" (bench/floor, the baseline's protocol)
	Scenario    string
	Subscribers int
	Streams     int
	Rate        float64 // events/s over all streams; 0: flat out
	Duration    time.Duration
	Count       int // events to publish in all; 0: until Duration ends
	Payload     int // bytes of data per event (at least the header)
	// FirstStream is the number of the run's first stream, carried in every
	// payload so that a subscriber can tell an event of another stream from
	// its own; with -procs each worker's streams are numbered on from the
	// worker before it, so that no two streams of the run share a number.
	FirstStream int
	Concurrency int // publish requests in flight
	// Batch is the number of events per publish request to the broker (a
	// JSON array of {"data": ...}; 0 or 1: one raw event per request). The baseline has no
	// batch publish, so it always gets one event per request.
	Batch    int
	Sources  []string
	Slow     int           // subscribers that stop reading (scenario slow)
	Settle   time.Duration // wait after all connected before measuring RSS
	Drain    time.Duration // how long delivery may stall after the last publish
	Tag      string
	Progress io.Writer // live progress line (nil: quiet)

	// DrainTimeout bounds the whole wait after the last publish for every
	// subscriber to catch up (0: 30 s).
	DrainTimeout time.Duration
	// ResponseTimeout bounds the wait for the server's answer to a
	// subscribe request (its headers; the events may then take as long as
	// they take) and to a /metrics read (0: 10 s). A server that accepts
	// the connection and never answers would otherwise hold the run for
	// good; a subscribe that times out counts as a connect error.
	ResponseTimeout time.Duration
	// NoResume turns resuming off: a subscriber whose response the server
	// ends stays ended (the tool's behaviour before resume existed).
	NoResume bool
	// ResumeWait is the pause before a resume (0: none); negative: the
	// server's "retry:" (see resumeWait for why that is not the default).
	ResumeWait time.Duration

	// AfterConnect, when set, is called once the subscribers have
	// connected (and Settle has passed), before the first publish; an
	// error ends the run. A worker of -procs waits there for the others.
	AfterConnect func(ctx context.Context, connected, connectErrors int) error
	// AfterDrain, when set, is called once every subscriber has caught up
	// (or the drain gave up), before anything is closed: where a single run
	// reads the server's figures, a worker of -procs lets the parent read
	// them for all workers.
	AfterDrain func(ctx context.Context) error
	// EachSecond, when set, is given the run's counters once a second from
	// the first publish to the end of the drain: a worker of -procs sends
	// them to the parent, which prints the live progress line for all.
	EachSecond func(Counters)
	// NoServerMetrics leaves the server's /metrics and the host's steal
	// unread: with -procs the parent reads them once for all workers.
	NoServerMetrics bool
	// ServerPID, when not 0, is the server's process id on this host: its
	// CPU time is then also read from /proc/<pid>/stat, split into user
	// and system time (Result.CPUSplit), which /metrics does not tell.
	ServerPID int
}

// Result is what one run measured; it is the JSON line of the run.
type Result struct {
	Time              string  `json:"time"`
	Tag               string  `json:"tag,omitempty"`
	Target            string  `json:"target"`
	Scenario          string  `json:"scenario"`
	URL               string  `json:"url"`
	Subscribers       int     `json:"subscribers"`
	Streams           int     `json:"streams"`
	Rate              float64 `json:"rate"`
	Duration          float64 `json:"duration_s"`
	Payload           int     `json:"payload"`
	Batch             int     `json:"batch"`
	Connected         int     `json:"connected"`
	ConnectErrors     int     `json:"connect_errors"`
	ConnectSeconds    float64 `json:"connect_s"`
	Published         uint64  `json:"published"`
	PublishErrors     uint64  `json:"publish_errors"`
	PublishPerSec     float64 `json:"publish_per_s"`
	Delivered         uint64  `json:"delivered"`
	DeliveredPerSec   float64 `json:"delivered_per_s"` // delivered / duration_s: from the first publish until every subscriber caught up (drain_end), catching up after resumes included
	Expected          uint64  `json:"expected"`
	Lost              uint64  `json:"lost"`
	Duplicated        uint64  `json:"duplicated"`
	Unexpected        uint64  `json:"unexpected"`
	Reordered         uint64  `json:"reordered"`
	SubscribersLosing int     `json:"subscribers_losing"`
	Dropped           int     `json:"dropped"` // reading subscribers whose response ended early and stayed ended (resume off, or refused)
	SlowCutOff        int     `json:"slow_cut_off"`
	LatencyUS         Latency `json:"latency_us"`
	PublishLateUS     Latency `json:"publish_late_us"`
	// The server's figures from its /metrics: each is absent (NaN in Go)
	// when a sample it is computed from could not be read.
	RSSBefore       Measured  `json:"rss_before,omitzero"`
	RSSConnected    Measured  `json:"rss_connected,omitzero"`
	RSSAfter        Measured  `json:"rss_after,omitzero"`
	RSSPerConn      Measured  `json:"rss_per_conn,omitzero"`
	CPUConnect      Measured  `json:"cpu_connect_s,omitzero"`
	CPUPublish      Measured  `json:"cpu_publish_s,omitzero"`
	CPUPerMillion   Measured  `json:"cpu_s_per_million_delivered,omitzero"`
	PerSecond       []float64 `json:"delivered_per_second"`
	PublishedPerSec []float64 `json:"published_per_second"`
	FileLimit       uint64    `json:"file_limit"`
	MetricsError    string    `json:"metrics_error,omitempty"`
	// HostStealPct is the share of the host's CPU time the hypervisor
	// stole from the first publish to the end of the drain, in percent
	// (-1: not measured; see steal.go for why it matters).
	HostStealPct float64 `json:"host_steal_pct"`
	// CPUSplit is the server's CPU from the first publish to the end of
	// the drain split into user and system (kernel) time, per million
	// delivered events; nil without -server-pid.
	CPUSplit *CPUSplit `json:"cpu_split_s_per_million_delivered,omitempty"`
	// StealPerSecond is the host's steal in each second of the run, in
	// percent (-1: not read), and P99PerSecondUS the p99 latency of the
	// events sent in that second (0: none received). QuietSeconds counts the
	// seconds without any steal, and QuietLatencyUS is the latency of the
	// events sent in them (see quiet.go). All absent with -procs, and when
	// the steal could not be read.
	StealPerSecond []float64 `json:"steal_per_second_pct,omitempty"`
	P99PerSecondUS []float64 `json:"p99_per_second_us,omitempty"`
	QuietSeconds   *int      `json:"quiet_seconds,omitempty"`
	QuietLatencyUS *Latency  `json:"quiet_latency_us,omitempty"`
	// ToolSchedUS is how long this process's goroutines waited, runnable,
	// for a CPU from the first publish to the end of the drain (the Go
	// runtime's /sched/latencies; see selfsched.go). With -procs: the
	// worker whose p99 was highest.
	ToolSchedUS *Latency `json:"tool_sched_latency_us,omitempty"`

	// Resume is true when subscribers reconnect with Last-Event-ID after
	// the server ended their response (the default; -resume=false: off).
	Resume bool `json:"resume"`
	// Reconnects counts responses that ended before the run did and that
	// the subscriber then resumed (reconnected with Last-Event-ID):
	// ReconnectsEOF those the server ended cleanly, ReconnectsError those
	// ended by a read error (reset, truncated chunk).
	Reconnects      uint64 `json:"reconnects"`
	ReconnectsEOF   uint64 `json:"reconnects_eof"`
	ReconnectsError uint64 `json:"reconnects_error"`
	// ReconnectFailures counts resume attempts that did not connect
	// (network error) and were tried again after the same pause.
	ReconnectFailures uint64 `json:"reconnect_failures"`
	// ResumeRefused counts resumes answered with a status other than 200
	// or 204; that subscriber stops (and counts in dropped).
	ResumeRefused uint64 `json:"resume_refused"`
	// Resume204 counts resumes answered 204 (stream closed); that
	// subscriber stops, as EventSource does.
	Resume204 uint64 `json:"resume_204"`
	// SubscribersResumed counts subscribers that reconnected at least once.
	SubscribersResumed int `json:"subscribers_resumed"`
	// Gaps counts "gap" events received (the server no longer had events
	// after the resume point); the ids they skipped count in lost.
	Gaps uint64 `json:"gaps"`
	// DeliveredAfterResume counts the events of delivered that arrived on a
	// resumed connection (replayed from history, then live). latency_us
	// includes them: their latency is what a client that was cut off sees.
	DeliveredAfterResume uint64 `json:"delivered_after_resume"`
	// DrainSeconds is the time from the end of publishing to the end of
	// the drain; DrainEnd says why it ended: "caught_up" (every reading
	// subscriber had every acknowledged event, or had stopped, or had the
	// last acknowledged id and nothing more came for lastIDGrace), "stalled" (nothing arrived for -drain while no
	// subscriber was waiting to resume), "timeout" (-drain-timeout) or
	// "canceled".
	DrainSeconds float64 `json:"drain_s"`
	DrainEnd     string  `json:"drain_end"`
	// Procs is the number of worker processes the run was split over
	// (-procs); 0: one process.
	Procs int `json:"procs,omitempty"`

	// hist holds every latency recorded and late every publish lateness,
	// for merging the workers' runs.
	hist, late *Histogram
}

// Measured is one of the server's figures, computed from its /metrics
// samples: NaN when a sample it needs could not be read. A failed read
// used to count as 0 bytes and 0 s, which made the differences look
// measured (rss_per_conn the whole RSS, a negative CPU time).
type Measured float64

// IsZero reports whether the figure was not measured: encoding/json's
// omitzero then leaves it out of the JSON line (a measured 0 stays).
func (m Measured) IsZero() bool { return math.IsNaN(float64(m)) }

// notMeasured is the value of a figure whose samples were not read.
func notMeasured() Measured { return Measured(math.NaN()) }

// text formats the figure divided by unit, "-" when it was not measured.
func (m Measured) text(unit float64, format string) string {
	if m.IsZero() {
		return "-"
	}
	return fmt.Sprintf(format, float64(m)/unit)
}

// Latency holds publish→delivery percentiles in microseconds.
type Latency struct {
	P50, P90, P99, P999, Max float64
}

// MarshalJSON names the percentiles the way the issue does.
func (l Latency) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]float64{"p50": l.P50, "p90": l.P90, "p99": l.P99, "p999": l.P999, "max": l.Max})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (l *Latency) UnmarshalJSON(b []byte) error {
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*l = Latency{m["p50"], m["p90"], m["p99"], m["p999"], m["max"]}
	return nil
}

func latencyOf(h *Histogram) Latency {
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return Latency{us(h.Quantile(0.5)), us(h.Quantile(0.9)), us(h.Quantile(0.99)), us(h.Quantile(0.999)), us(h.Max())}
}

// stream is one stream of the run, shared by its publishers and subscribers.
type stream struct {
	name      string
	number    uint64        // in every payload (Config.FirstStream + its index)
	seq       atomic.Uint64 // next payload sequence number (every one below it was handed to a publisher)
	published atomic.Uint64 // events the server acknowledged
	acked     ackedSet      // their sequence numbers
	lastID    atomic.Uint64 // highest id the server acknowledged (broker)
}

// acknowledged raises the stream's last acknowledged id to id.
func (st *stream) acknowledged(id uint64) {
	for {
		cur := st.lastID.Load()
		if id <= cur || st.lastID.CompareAndSwap(cur, id) {
			return
		}
	}
}

type runner struct {
	cfg     Config
	start   time.Time // the zero of the payloads' send times (see clock)
	streams []*stream
	subs    []*subscriber
	hist    Histogram // publish→delivery latency
	// bySecond is the same latency per second of publishing, and
	// stealReadings the host's steal read once a second (written by
	// progress; nil when not measured): see quiet.go.
	bySecond      secondHistograms
	stealReadings []stealReading
	// late is how far behind the fixed rate's schedule each publish request
	// was sent. Latency is measured from the send, so a publisher held up by
	// the server (every request in flight stalled) leaves the wait out of
	// the latency; late shows it.
	late      Histogram
	delivered atomic.Uint64
	stopped   atomic.Bool // set once the run is counted: readers record nothing more
	pubErrs   atomic.Uint64
	published atomic.Uint64
	clients   []*http.Client
	pubClient *http.Client

	// Resume counters (rare events: shared atomics are cheap enough).
	reconnectsEOF     atomic.Uint64
	reconnectsErr     atomic.Uint64
	reconnectFailures atomic.Uint64
	resumeRefused     atomic.Uint64
	resume204         atomic.Uint64
	gaps              atomic.Uint64
	resuming          atomic.Int64 // subscribers now between a cut and their new response
}

// clock is the time since the run started, in nanoseconds, from the
// monotonic clock: the send time in each payload and the receive time it is
// subtracted from, both read in this process, so that a wall-clock step
// during a run cannot skew the latency.
func (r *runner) clock() int64 { return int64(time.Since(r.start)) }

func transportFrom(source string, conns int) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	return &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// baselineProtocol says whether the target speaks the baseline's
// protocol (GET /events?stream=, POST /publish?stream=, one event per
// request, no ids in the answer): bench/baseline and bench/floor do.
func (c Config) baselineProtocol() bool { return c.Target != "broker" }

func (r *runner) subscribeURL(st *stream) string {
	if r.cfg.baselineProtocol() {
		return r.cfg.URL + "/events?stream=" + url.QueryEscape(st.name)
	}
	return r.cfg.URL + "/v1/streams/" + url.PathEscape(st.name) + "/events"
}

func (r *runner) publishURL(st *stream) string {
	if r.cfg.baselineProtocol() {
		return r.cfg.URL + "/publish?stream=" + url.QueryEscape(st.name)
	}
	return r.cfg.URL + "/v1/streams/" + url.PathEscape(st.name) + "/messages"
}

// defaultResponseTimeout is Config.ResponseTimeout's default: far above
// what a server that works takes to answer, even with thousands of
// subscribers connecting at once.
const defaultResponseTimeout = 10 * time.Second

// withDefaults is c as a run uses it: the URL without a trailing slash,
// the payload at least its header, one event per request for the
// baseline's protocol, and the waits' defaults. -procs applies them too,
// so that the merged result records what the workers did.
func (c Config) withDefaults() Config {
	c.URL = strings.TrimRight(c.URL, "/")
	c.Payload = max(c.Payload, 48)
	if c.Batch < 1 || c.baselineProtocol() {
		c.Batch = 1
	}
	if c.Drain <= 0 {
		c.Drain = 2 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.ResponseTimeout <= 0 {
		c.ResponseTimeout = defaultResponseTimeout
	}
	return c
}

// checkEnd refuses a run that would never stop publishing: Count 0 and
// Duration 0 each mean "no limit", so together they mean no end at all.
func (c Config) checkEnd() error {
	switch {
	case c.Count < 0 || c.Duration < 0:
		return fmt.Errorf("need -count >= 0 and -duration >= 0; this run has -count %d -duration %v", c.Count, c.Duration)
	case c.Count == 0 && c.Duration == 0:
		return errors.New("the run has no end: -count 0 and -duration 0 would publish until interrupted; give a -count or a -duration")
	}
	return nil
}

// Run performs one benchmark run.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Target != "broker" && cfg.Target != "baseline" && cfg.Target != "floor" {
		return nil, fmt.Errorf("unknown target %q (broker, baseline or floor)", cfg.Target)
	}
	if cfg.Subscribers < 0 || cfg.Streams < 1 || cfg.Concurrency < 1 {
		return nil, errors.New("need -streams >= 1, -subscribers >= 0 and -concurrency >= 1")
	}
	cfg = cfg.withDefaults()
	res := &Result{
		Time: time.Now().UTC().Format(time.RFC3339), Tag: cfg.Tag, Target: cfg.Target, Scenario: cfg.Scenario,
		URL: cfg.URL, Subscribers: cfg.Subscribers, Streams: cfg.Streams, Rate: cfg.Rate, Payload: cfg.Payload, Batch: cfg.Batch,
		Resume: !cfg.NoResume,
	}
	for _, src := range cfg.Sources {
		if src != "" && net.ParseIP(src) == nil {
			return nil, fmt.Errorf("source address %q is not an IP address", src)
		}
	}
	if err := cfg.checkEnd(); err != nil {
		return nil, err
	}
	res.FileLimit, _ = rlimit.Raise()
	r := &runner{cfg: cfg, start: time.Now()}
	// Unique per process too: the workers of -procs start together.
	runID := strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.Itoa(os.Getpid())
	for i := range cfg.Streams {
		r.streams = append(r.streams, &stream{name: fmt.Sprintf("bench-%s-%d", runID, i), number: uint64(cfg.FirstStream + i)})
	}
	sources := cfg.Sources
	if len(sources) == 0 {
		sources = []string{""}
	}
	// A response the server ends cleanly leaves its connection idle (unless
	// the server closes it); room for one per subscriber lets the resume
	// reuse it, as a browser's keep-alive does, instead of dialling anew.
	perClient := cfg.Subscribers/len(sources) + 1
	for _, s := range sources {
		t := transportFrom(s, perClient)
		t.ResponseHeaderTimeout = cfg.ResponseTimeout
		c := &http.Client{Transport: t}
		r.clients = append(r.clients, c)
		defer c.CloseIdleConnections()
	}
	r.pubClient = &http.Client{Transport: transportFrom(sources[0], cfg.Concurrency), Timeout: 30 * time.Second}
	defer r.pubClient.CloseIdleConnections()

	server := &serverMeter{client: r.pubClient, url: cfg.URL, timeout: cfg.ResponseTimeout, off: cfg.NoServerMetrics, pid: cfg.ServerPID}
	before := server.sample(ctx)

	subCtx, cancelSubs := context.WithCancel(ctx)
	defer cancelSubs()
	start := time.Now()
	res.Connected, res.ConnectErrors = r.connect(subCtx)
	res.ConnectSeconds = time.Since(start).Seconds()
	defer func() {
		cancelSubs()
		for _, s := range r.subs {
			s.closeBody()
		}
	}()
	// An interrupt ends the settle; the run then stops publishing at once
	// and is not recorded (Main).
	_ = ctxtime.Sleep(ctx, cfg.Settle)
	if cfg.AfterConnect != nil {
		if err := cfg.AfterConnect(ctx, res.Connected, res.ConnectErrors); err != nil {
			return nil, err
		}
	}
	atConnect := server.sample(ctx)

	// Publish, with a progress line once a second.
	pubStart := time.Now()
	r.bySecond.first.Store(r.clock())
	toolSched := readSched()
	var steal stealMeter
	var stealEach *stealSeries // nil with -procs: the parent measures the host
	if !cfg.NoServerMetrics {
		steal = startSteal()
		stealEach = newStealSeries()
	}
	progDone := make(chan struct{})
	var progWG sync.WaitGroup
	progWG.Add(1)
	go func() {
		defer progWG.Done()
		r.progress(pubStart, progDone, res, stealEach)
	}()
	r.publish(ctx)
	pubElapsed := time.Since(pubStart)
	// Publishing is over: the acknowledged events are known.
	acked := make(map[*stream]seqSet, len(r.streams))
	for _, st := range r.streams {
		acked[st] = st.acked.snapshot()
	}
	var deliveryEnd time.Time
	res.DrainEnd, deliveryEnd = r.drain(ctx, acked)
	res.ToolSchedUS = schedLatencySince(toolSched)
	res.HostStealPct = -1 // with -procs the parent measures it, once for all workers
	if !cfg.NoServerMetrics {
		res.HostStealPct = steal.percent()
	}
	// delivered/s counts from the first publish until every subscriber
	// caught up (catching up from history after a resume is part of
	// delivering, not free time after the run) or, when the drain waited
	// for events that never came (it gave up, or its grace ran out), until
	// the last event arrived: that wait is not delivery time.
	elapsed := time.Since(pubStart)
	res.DrainSeconds = (elapsed - pubElapsed).Seconds()
	elapsed = deliveryEnd.Sub(pubStart)
	close(progDone)
	progWG.Wait()
	after := server.sample(ctx)
	// The run is over: the readers record nothing more (a worker of -procs
	// may wait a while for the others in AfterDrain; what arrives then is
	// not part of its run).
	r.stopped.Store(true)
	if cfg.AfterDrain != nil {
		if err := cfg.AfterDrain(ctx); err != nil {
			return nil, err
		}
	}

	// Count what each reading subscriber had, then look at the ones that
	// never read (reading them may unblock a server that stalled on them;
	// what arrives then no longer counts).
	for _, s := range r.subs {
		if s.slow && r.slowWasCut(s) {
			res.SlowCutOff++
		}
	}
	cancelSubs()
	for _, s := range r.subs {
		s.closeBody()
	}
	for _, s := range r.subs {
		if s.slow {
			continue
		}
		<-s.done
		// Never netted against each other: an event the server dropped is
		// lost even when another, never acknowledged, arrived instead.
		want := acked[s.st]
		if lost := want.countNotIn(s.seen); lost > 0 {
			res.Lost += lost
			res.SubscribersLosing++
		}
		res.Unexpected += s.seen.countNotIn(want) + s.notSent
		res.Expected += want.count()
		res.Duplicated += s.dup
		res.Reordered += s.reordered
		res.DeliveredAfterResume += s.afterResume
		if s.resumes > 0 {
			res.SubscribersResumed++
		}
		if s.ended != nil && !errors.Is(s.ended, context.Canceled) && !isClosedErr(s.ended) && !errors.Is(s.ended, errStreamClosed) {
			res.Dropped++
		}
	}
	res.ReconnectsEOF, res.ReconnectsError = r.reconnectsEOF.Load(), r.reconnectsErr.Load()
	res.Reconnects = res.ReconnectsEOF + res.ReconnectsError
	res.ReconnectFailures = r.reconnectFailures.Load()
	res.ResumeRefused, res.Resume204 = r.resumeRefused.Load(), r.resume204.Load()
	res.Gaps = r.gaps.Load()
	res.Published = r.published.Load()
	res.PublishErrors = r.pubErrs.Load()
	res.Delivered = r.delivered.Load()
	res.Duration = elapsed.Seconds()
	if pubElapsed > 0 {
		res.PublishPerSec = float64(res.Published) / pubElapsed.Seconds()
	}
	if elapsed > 0 {
		res.DeliveredPerSec = float64(res.Delivered) / elapsed.Seconds()
	}
	res.setServerFigures(before, atConnect, after, server.err)
	res.LatencyUS = latencyOf(&r.hist)
	res.setQuietFigures(r.stealReadings, &r.bySecond)
	res.PublishLateUS = latencyOf(&r.late)
	res.hist, res.late = &r.hist, &r.late
	return res, nil
}

// serverSample is the server's resident memory and CPU time at one point
// of a run, from its /metrics.
type serverSample struct {
	// rss and cpu are NaN when the read failed (or was not made), so that
	// every figure computed from them is NaN too: not measured.
	rss, cpu float64
	// user and sys are the server's CPU seconds from /proc/<pid>/stat;
	// NaN when not read (no -server-pid, or the read failed).
	user, sys float64
}

// CPUSplit is the server's CPU time split into user and system time, in
// seconds per million delivered events. On loopback most of a server's
// system time is the same for every server with the same traffic (each
// write(2) also does the receiving socket's TCP work), so the split shows
// how much of the CPU figure user-space work can change at all.
type CPUSplit struct {
	User float64 `json:"user"`
	Sys  float64 `json:"sys"`
}

// serverMeter reads the server's /metrics at the points of a run and
// keeps the first error for the result.
type serverMeter struct {
	client  *http.Client
	url     string
	timeout time.Duration // for each read (Config.ResponseTimeout)
	off     bool          // NoServerMetrics: every sample is not read
	pid     int           // Config.ServerPID
	err     string
}

func (m *serverMeter) sample(ctx context.Context) serverSample {
	s := serverSample{rss: math.NaN(), cpu: math.NaN(), user: math.NaN(), sys: math.NaN()}
	if m.off {
		return s
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	rss, cpu, err := readProcessMetrics(ctx, m.client, m.url+"/metrics")
	if err != nil && m.err == "" {
		m.err = err.Error()
	}
	if err == nil {
		s.rss, s.cpu = rss, cpu
	}
	if m.pid != 0 {
		if s.user, s.sys, err = readProcCPU(m.pid); err != nil && m.err == "" {
			m.err = err.Error()
		}
	}
	return s
}

// userHZ is the unit of the times in /proc/<pid>/stat: USER_HZ, 100 on
// every Linux architecture Go runs on (the kernel converts to it whatever
// its own tick rate).
const userHZ = 100

// readProcCPU reads a process's user and system CPU seconds from
// /proc/<pid>/stat.
func readProcCPU(pid int) (user, sys float64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return math.NaN(), math.NaN(), fmt.Errorf("server CPU split: %w", err)
	}
	return parseProcStat(string(b))
}

// parseProcStat takes utime and stime, the 14th and 15th fields of a
// /proc/<pid>/stat line (proc(5)). The second field, the command name in
// parentheses, may hold spaces and parentheses itself, so the fields are
// counted from the last ')'.
func parseProcStat(line string) (user, sys float64, err error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return math.NaN(), math.NaN(), errors.New("server CPU split: no command name in /proc/<pid>/stat")
	}
	f := strings.Fields(line[i+1:]) // from field 3, the state
	if len(f) < 13 {
		return math.NaN(), math.NaN(), errors.New("server CPU split: /proc/<pid>/stat too short")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return math.NaN(), math.NaN(), errors.New("server CPU split: utime or stime in /proc/<pid>/stat is not a number")
	}
	return float64(ut) / userHZ, float64(st) / userHZ, nil
}

// setServerFigures fills in the server's figures from its samples before
// the subscribers connected, once they had, and after the drain; Connected
// and Delivered must be counted already. A sample not read is NaN, and so
// is every figure computed from it: not measured.
func (res *Result) setServerFigures(before, connected, after serverSample, metricsErr string) {
	res.MetricsError = metricsErr
	res.RSSBefore, res.RSSConnected, res.RSSAfter = Measured(before.rss), Measured(connected.rss), Measured(after.rss)
	res.CPUConnect, res.CPUPublish = Measured(connected.cpu-before.cpu), Measured(after.cpu-connected.cpu)
	res.RSSPerConn, res.CPUPerMillion = notMeasured(), notMeasured()
	if res.Connected > 0 {
		res.RSSPerConn = Measured((connected.rss - before.rss) / float64(res.Connected))
	}
	if res.Delivered > 0 {
		res.CPUPerMillion = res.CPUPublish / Measured(float64(res.Delivered)/1e6)
	}
	user, sys := after.user-connected.user, after.sys-connected.sys
	if res.Delivered > 0 && !math.IsNaN(user) && !math.IsNaN(sys) {
		millions := float64(res.Delivered) / 1e6
		res.CPUSplit = &CPUSplit{User: user / millions, Sys: sys / millions}
	}
}

// isClosedErr reports whether err is what a reader gets when the run ends
// its connection: a read already blocked fails on the cancelled context or
// the closed socket; a reader that was busy with the last event and reads
// again after Close gets net/http's "read on closed response body".
func isClosedErr(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "use of closed") || strings.Contains(msg, "body closed") ||
		strings.Contains(msg, "closed response body") || strings.Contains(msg, "canceled")
}

// connect opens every subscriber, at most 256 handshakes at a time, and
// returns once each is connected or has failed.
func (r *runner) connect(ctx context.Context) (ok, failed int) {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, 256)
	)
	for i := range r.cfg.Subscribers {
		st := r.streams[i%len(r.streams)]
		client := r.clients[i%len(r.clients)]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s := &subscriber{st: st, client: client, done: make(chan struct{}), byID: r.cfg.Target == "broker"}
			resp, err := r.open(ctx, s, "")
			if err == nil && resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			ok++
			s.body = resp.Body
			s.slow = r.cfg.Slow > 0 && len(r.subs) < r.cfg.Slow
			r.subs = append(r.subs, s)
			if !s.slow {
				go r.read(ctx, s)
			}
		}()
	}
	wg.Wait()
	return ok, failed
}

// makePayload writes "<stream> <seq> <sent> " and pads to size with 'x';
// stream is the stream's number (every stream numbers its events from 0,
// so the sequence number alone would take another stream's event for the
// subscriber's own), and sent the runner's clock (nanoseconds since the run
// started).
func makePayload(buf []byte, stream, seq uint64, sent int64, size int) []byte {
	buf = strconv.AppendUint(buf[:0], stream, 10)
	buf = append(buf, ' ')
	buf = strconv.AppendUint(buf, seq, 10)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, sent, 10)
	buf = append(buf, ' ')
	for len(buf) < size {
		buf = append(buf, 'x')
	}
	return buf
}

// parsePayload reads what makePayload wrote.
func parsePayload(b []byte) (stream, seq uint64, sent int64, ok bool) {
	field := func() []byte {
		f, rest, _ := bytes.Cut(b, []byte{' '})
		b = rest
		return f
	}
	stream, err1 := strconv.ParseUint(string(field()), 10, 64)
	seq, err2 := strconv.ParseUint(string(field()), 10, 64)
	sent, err3 := strconv.ParseInt(string(field()), 10, 64)
	return stream, seq, sent, err1 == nil && err2 == nil && err3 == nil
}

// publish sends events round-robin over the streams from Concurrency
// workers, paced to Rate (0: flat out), until Duration or Count is reached.
// Each request carries Batch events of one stream (fewer in the last one
// when Count is not a multiple of Batch); every event's payload holds its
// sequence number and the time just before its request was sent. A paced
// request sent after its time in the schedule counts in r.late.
func (r *runner) publish(parent context.Context) {
	// Requests still in flight 5 s after the end are abandoned (a server
	// that blocks its publishers would otherwise hold the run).
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	type job struct {
		st     *stream
		events int
		due    time.Time // when the schedule called for it (zero: flat out)
	}
	jobs := make(chan job, r.cfg.Concurrency)
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf, body []byte
			for j := range jobs {
				if ctx.Err() != nil {
					continue // abandoned: never sent
				}
				n := uint64(j.events)
				seq := j.st.seq.Add(n) - n
				if !j.due.IsZero() {
					r.late.Record(time.Since(j.due))
				}
				now := r.clock()
				var err error
				if r.cfg.Batch == 1 {
					buf = makePayload(buf, j.st.number, seq, now, r.cfg.Payload)
					n, err = r.publishOne(ctx, j.st, buf, "text/plain")
				} else {
					body = body[:0]
					for i := range n {
						body = append(body, `,{"data":"`...)
						buf = makePayload(buf, j.st.number, seq+i, now, r.cfg.Payload)
						body = append(body, buf...) // digits, spaces and x: nothing to escape
						body = append(body, `"}`...)
					}
					body[0] = '['
					body = append(body, ']')
					n, err = r.publishOne(ctx, j.st, body, "application/json")
				}
				if err != nil {
					r.pubErrs.Add(1)
					continue
				}
				j.st.acked.add(seq, n)
				j.st.published.Add(n)
				r.published.Add(n)
			}
		}()
	}
	start := time.Now()
	deadline := start.Add(r.cfg.Duration)
	var stop <-chan time.Time // nil: no time limit
	if r.cfg.Duration > 0 {
		t := time.NewTimer(r.cfg.Duration)
		defer t.Stop()
		stop = t.C
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	batch := r.cfg.Batch
	issued, requests := 0, 0 // events and requests handed to the workers
	limit := r.cfg.Count
loop:
	for limit == 0 || issued < limit {
		now := time.Now()
		if r.cfg.Duration > 0 && now.After(deadline) {
			break
		}
		due := limit
		if r.cfg.Rate > 0 {
			due = int(now.Sub(start).Seconds() * r.cfg.Rate)
			if limit > 0 && due > limit {
				due = limit
			}
		} else if due == 0 {
			due = issued + r.cfg.Concurrency*batch
		}
		for {
			n := nextRequest(issued, due, limit, batch)
			if n == 0 {
				break
			}
			var at time.Time
			if r.cfg.Rate > 0 { // the request is due once its last event is
				at = start.Add(time.Duration(float64(issued+n) / r.cfg.Rate * float64(time.Second)))
			}
			select {
			case jobs <- job{r.streams[requests%len(r.streams)], n, at}:
				issued += n
				requests++
			case <-ctx.Done():
				break loop
			case <-stop:
				break loop
			}
		}
		if r.cfg.Rate > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				break loop
			}
		}
	}
	close(jobs)
	grace := time.AfterFunc(5*time.Second, cancel)
	defer grace.Stop()
	wg.Wait()
}

// nextRequest is the number of events the next publish request carries,
// with issued events handed out, due of them due by now and limit in all
// (0: no limit): a full batch once one is due, and the remainder of the
// limit at the very end; 0 when no request is due yet.
func nextRequest(issued, due, limit, batch int) int {
	switch {
	case due-issued >= batch:
		return batch
	case limit > 0 && due == limit:
		return max(due-issued, 0)
	}
	return 0
}

func (r *runner) publishOne(ctx context.Context, st *stream, data []byte, contentType string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.publishURL(st), bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := r.pubClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("publish: status %d", resp.StatusCode)
	}
	if r.cfg.baselineProtocol() {
		return 1, nil
	}
	var ans struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return 0, fmt.Errorf("publish: answer: %w", err)
	}
	for _, v := range ans.IDs {
		if id, err := strconv.ParseUint(v, 10, 64); err == nil {
			st.acknowledged(id)
		}
	}
	return uint64(len(ans.IDs)), nil
}

// lastIDGrace is how long the drain waits, once every subscriber missing
// events has the last acknowledged id, for those events before counting
// them lost: one the server sent late, after a later one, is reordered, not
// lost. A subscriber that resumed into a gap waits it out too (the ids the
// gap skipped never come).
const lastIDGrace = 500 * time.Millisecond

// drain waits until every reading subscriber has caught up: it has every
// acknowledged event of its stream, or it has stopped for good, or (broker)
// it has the last acknowledged id and nothing more came for lastIDGrace
// (at most half of Drain). It gives up when no event arrived for Drain
// while no subscriber was waiting to resume (a server that lost events),
// or after DrainTimeout in all. It returns why it ended (Result.DrainEnd)
// and when delivery ended: now when every event came, else when the last
// event arrived (or a subscriber was last seen waiting to resume).
func (r *runner) drain(ctx context.Context, acked map[*stream]seqSet) (string, time.Time) {
	start := time.Now()
	grace := min(lastIDGrace, r.cfg.Drain/2)
	last := r.delivered.Load()
	lastChange := start
	var atLastID time.Time // since when every subscriber missing events has had the last id
	for {
		now := time.Now()
		switch r.caughtUp(acked) {
		case hasEverything:
			return "caught_up", now
		case hasLastID:
			if atLastID.IsZero() {
				atLastID = now
			}
			if now.Sub(atLastID) >= grace && now.Sub(lastChange) >= grace {
				return "caught_up", lastChange
			}
		default:
			atLastID = time.Time{}
		}
		if d := r.delivered.Load(); d != last || r.resuming.Load() > 0 {
			last, lastChange = d, now
		} else if now.Sub(lastChange) > r.cfg.Drain {
			return "stalled", lastChange
		}
		if now.Sub(start) > r.cfg.DrainTimeout {
			return "timeout", lastChange
		}
		select {
		case <-ctx.Done():
			return "canceled", lastChange
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// catchUp is how far the reading subscribers have caught up.
type catchUp int

const (
	// behind: a subscriber still misses events before its stream's last
	// acknowledged id.
	behind catchUp = iota
	// hasLastID: every subscriber has every acknowledged event or has
	// stopped, except some that have the last acknowledged id with events
	// before it missing (sent late, or skipped by a gap).
	hasLastID
	// hasEverything: every subscriber has every acknowledged event or has
	// stopped.
	hasEverything
)

func (r *runner) caughtUp(acked map[*stream]seqSet) catchUp {
	state := hasEverything
	for _, s := range r.subs {
		if s.slow {
			continue
		}
		select {
		case <-s.done:
			continue // this reader has ended; it will get nothing more
		default:
		}
		// The count first (cheap); it can be reached with an acknowledged
		// event still missing when one never acknowledged came, so the sets
		// decide.
		if s.distinct.Load() >= s.st.published.Load() && s.hasAll(acked[s.st]) {
			continue
		}
		// With a gap some ids never come; reaching the last one is caught
		// up, after a grace for events sent late.
		if last := s.st.lastID.Load(); s.byID && last > 0 && s.lastID.Load() >= last {
			state = hasLastID
			continue
		}
		return behind
	}
	return state
}

// slowWasCut reads what the server left for a subscriber that never read:
// true when the server ended that response (it was cut off).
func (r *runner) slowWasCut(s *subscriber) bool {
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, s.body)
		done <- err
	}()
	select {
	case err := <-done:
		return err == nil || !isClosedErr(err)
	case <-time.After(2 * time.Second):
		s.body.Close()
		<-done
		return false
	}
}

// Counters are a run's running totals, for the live progress line.
type Counters struct {
	Subscribers   int    `json:"subscribers"`
	Published     uint64 `json:"published"`
	PublishErrors uint64 `json:"publish_errors"`
	Delivered     uint64 `json:"delivered"`
	Reconnects    uint64 `json:"reconnects"`
	// P99 is the latency's p99 so far; summed over the workers of -procs,
	// the highest of theirs.
	P99 time.Duration `json:"p99_ns"`
}

// add sums two runs' counters (the p99: the higher).
func (c Counters) add(o Counters) Counters {
	return Counters{
		Subscribers: c.Subscribers + o.Subscribers, Published: c.Published + o.Published, PublishErrors: c.PublishErrors + o.PublishErrors,
		Delivered: c.Delivered + o.Delivered, Reconnects: c.Reconnects + o.Reconnects, P99: max(c.P99, o.P99),
	}
}

func (r *runner) counters() Counters {
	return Counters{
		Subscribers: len(r.subs), Published: r.published.Load(), PublishErrors: r.pubErrs.Load(), Delivered: r.delivered.Load(),
		Reconnects: r.reconnectsEOF.Load() + r.reconnectsErr.Load(), P99: r.hist.Quantile(0.99),
	}
}

// progressText is the live progress line (it overwrites the one before)
// elapsed into a run of target and scenario, with the counters now and a
// second before; p99 names the latency figure, stolen is the host's steal
// in that second or empty.
func progressText(elapsed time.Duration, target, scenario string, now, last Counters, p99, stolen string) string {
	return fmt.Sprintf("\r\033[K%4.0fs %s/%s subs %d pub %d (%d/s) err %d delivered %d (%d/s) reconnects %d %s %s%s",
		elapsed.Seconds(), target, scenario, now.Subscribers, now.Published, now.Published-last.Published, now.PublishErrors,
		now.Delivered, now.Delivered-last.Delivered, now.Reconnects, p99, now.P99.Round(time.Microsecond), stolen)
}

// progress prints one line a second (when Progress is set), hands the
// counters to EachSecond (when set) and records the per-second series for
// the chart, and the host's steal in each second when steal is not nil.
func (r *runner) progress(start time.Time, done <-chan struct{}, res *Result, steal *stealSeries) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last Counters
	for {
		select {
		case <-done:
			if r.cfg.Progress != nil {
				fmt.Fprintln(r.cfg.Progress)
			}
			return
		case <-t.C:
		}
		stolen := ""
		if steal != nil {
			pct := steal.next()
			r.stealReadings = append(r.stealReadings, stealReading{until: time.Since(start), pct: pct})
			stolen = fmt.Sprintf(" steal %.1f%%", pct)
		}
		now := r.counters()
		res.PerSecond = append(res.PerSecond, float64(now.Delivered-last.Delivered))
		res.PublishedPerSec = append(res.PublishedPerSec, float64(now.Published-last.Published))
		if r.cfg.Progress != nil {
			fmt.Fprint(r.cfg.Progress, progressText(time.Since(start), r.cfg.Target, r.cfg.Scenario, now, last, "p99", stolen))
		}
		if r.cfg.EachSecond != nil {
			r.cfg.EachSecond(now)
		}
		last = now
	}
}

// readProcessMetrics reads process_resident_memory_bytes and
// process_cpu_seconds_total from a Prometheus text page.
func readProcessMetrics(ctx context.Context, c *http.Client, u string) (rss, cpu float64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("metrics: status %d", resp.StatusCode)
	}
	var foundR, foundC bool
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "process_resident_memory_bytes":
			rss, err = strconv.ParseFloat(f[1], 64)
			foundR = err == nil
		case "process_cpu_seconds_total":
			cpu, err = strconv.ParseFloat(f[1], 64)
			foundC = err == nil
		}
	}
	if !foundR || !foundC {
		return rss, cpu, errors.New("metrics: no process_resident_memory_bytes / process_cpu_seconds_total")
	}
	return rss, cpu, sc.Err()
}

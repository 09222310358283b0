//go:build unix

// Package hostile runs the real broker binary against thousands of
// malformed and abusive requests while a legitimate publisher and a
// legitimate subscriber use it, then checks that the broker is healthy, has
// let go of what the attackers held, and lost no accepted event.
package hostile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/brokerproc"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/sse"
)

const (
	legitStream   = "legit"
	legitEvents   = 2000
	maxBody       = 64 << 10 // publish.max_body in the config below
	workers       = 64       // concurrent attack requests
	slowConns     = 200      // slowloris connections
	halfOpenConns = 200      // subscribers that never read
	// A stream flooded with more than the kernel can buffer
	// (net.ipv4.tcp_wmem allows at most 4 MiB per socket) for subscribers
	// that never read and have a tiny receive window: the broker must cut
	// them off rather than hold the events or block.
	firehoseStream = "firehose"
	firehoseConns  = 10
	floodPublishes = 400
	floodSize      = 16 << 10
	// clientTimeout bounds every attack request: a broker that hangs on
	// one shows up as an error, never as a hung test.
	clientTimeout = 20 * time.Second
	// slowHold is how long a slowloris connection keeps trickling bytes
	// before the test gives up on the server closing it. The server's
	// ReadHeaderTimeout is 10 s; the margin is for a loaded machine.
	slowHold = 30 * time.Second
	// settle bounds the wait for the broker to come back to its baseline.
	settle = 90 * time.Second
	// Bounds of "back near the baseline", checked after the broker has run
	// two garbage collections past the attack (the test makes it allocate:
	// an idle Go program does not collect, so before that the heap figures
	// still count the attack's garbage).
	//
	// Goroutines: every connection still open costs one or two; 50 is far
	// below the 400 attack connections and far above the jitter of an idle
	// broker.
	//
	// Heap in use: live data plus the garbage of one GC cycle. The broker
	// keeps the legitimate stream's history and a few hundred small junk
	// events (about 1 MiB); 16 MiB over the baseline leaves room for GC
	// pacing while catching what a leak of the attack would keep: the
	// flooded stream's 13 MiB of history (deleted), the refused headers
	// (100 × 100 KiB) and bodies, the 400 connections' buffers.
	//
	// RSS: Go returns freed memory to the OS only gradually (the
	// background scavenger, down to about 110% of the heap goal), so RSS
	// lags the heap; it peaks around baseline + 50 MiB during the attack.
	// 64 MiB over the baseline is a coarse bound that holds once the
	// scavenger caught up and fails when memory stays at the attack's
	// level.
	maxExtraGoroutines = 50
	maxExtraRSS        = 64 << 20
	maxExtraHeap       = 16 << 20
)

const config = `# hostile test: small body limit, deep history so the legitimate
# subscriber can always resume without a gap, a short queue and heartbeat so
# subscribers that never read are found out quickly.
store: memory
history:
  max_events: 10000
subscribers:
  queue: 64
sse:
  heartbeat: 2s
publish:
  max_body: 64KiB
demo:
  enabled: false
`

func TestHostileClients(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary under attack for about a minute")
	}
	cfg := filepath.Join(t.TempDir(), "broker.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := brokerproc.Start(t, "--config", cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	ops := &opsClient{base: p.URL, client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}

	// The legitimate subscriber is part of the baseline.
	fol := &follower{url: p.URL + "/v1/streams/" + legitStream + "/events", done: make(chan struct{})}
	go fol.run(ctx)
	waitFor(t, 30*time.Second, "the legitimate subscriber to connect", func() bool {
		m, err := ops.scrape()
		return err == nil && m["sseb_subscribers"] == 1
	})
	warmUp(t, p.URL)
	// A parked subscription (see pkg/api/parked.go) whose client hung up
	// is let go at its next heartbeat (2s here), not at once.
	waitFor(t, 30*time.Second, "the warm-up subscriber to be let go", func() bool {
		m, err := ops.scrape()
		return err == nil && m["sseb_subscribers"] == 1
	})
	time.Sleep(time.Second)
	base := ops.mustScrape(t)
	t.Logf("baseline: RSS %s, heap in use %s, %d goroutines, %d subscribers",
		mib(base["process_resident_memory_bytes"]), mib(base["go_memstats_heap_inuse_bytes"]),
		int(base["go_goroutines"]), int(base["sseb_subscribers"]))

	// Peaks while under attack.
	var peak struct {
		sync.Mutex
		rss, heap, goroutines, subscribers float64
	}
	sampling, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for sampling.Err() == nil {
			if m, err := ops.scrape(); err == nil {
				peak.Lock()
				peak.rss = max(peak.rss, m["process_resident_memory_bytes"])
				peak.heap = max(peak.heap, m["go_memstats_heap_inuse_bytes"])
				peak.goroutines = max(peak.goroutines, m["go_goroutines"])
				peak.subscribers = max(peak.subscribers, m["sseb_subscribers"])
				peak.Unlock()
			}
			select {
			case <-sampling.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()

	start := time.Now()
	// The legitimate publisher runs through the whole attack.
	pub := &publisher{base: p.URL, client: &http.Client{Timeout: clientTimeout}}
	pubDone := make(chan error, 1)
	go func() { pubDone <- pub.run(ctx) }()

	// Subscribers that never read, some cut abruptly halfway.
	half := openHalfOpen(t, p.Addr)
	firehose := openFirehose(t, p.Addr)
	waitFor(t, 30*time.Second, "the subscribers that never read to connect", func() bool {
		m, err := ops.scrape()
		return err == nil && m["sseb_subscribers"] == base["sseb_subscribers"]+float64(half.opened+firehoseConns)
	})
	// Slowloris.
	slow := make(chan slowResult, slowConns)
	for i := range slowConns {
		go func() { slow <- slowloris(ctx, p.Addr, i) }()
	}
	// Thousands of malformed requests, 64 at a time.
	attackTransport := &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}
	attack := &http.Client{Timeout: clientTimeout, Transport: attackTransport}
	jobs := attackJobs(p.URL, p.Addr, attack)
	tallies := runJobs(ctx, jobs)
	half.cutSome()

	slowResults := make([]slowResult, 0, slowConns)
	for range slowConns {
		slowResults = append(slowResults, <-slow)
	}
	if err := <-pubDone; err != nil {
		t.Errorf("legitimate publisher: %v", err)
	}
	attackTime := time.Since(start)
	half.closeAll()
	cutOff, firehoseErrs := drainFirehose(firehose)
	for _, err := range firehoseErrs {
		t.Error(err)
	}
	for _, c := range firehose {
		_ = c.Close()
	}
	if status := ops.do(http.MethodDelete, "/v1/streams/"+firehoseStream); status != http.StatusNoContent {
		t.Errorf("DELETE the flooded stream: %d", status)
	}
	attackTransport.CloseIdleConnections()
	pub.client.CloseIdleConnections()
	stopSampling()
	<-sampled

	// Figures of the attack.
	total, mismatches := 0, 0
	for _, k := range slices.Sorted(maps.Keys(tallies)) {
		tl := tallies[k]
		total += tl.n
		mismatches += len(tl.bad)
		t.Logf("%-22s %5d requests, answers %v", k, tl.n, tl.statuses)
		for i, b := range tl.bad {
			if i == 5 {
				t.Errorf("%s: ... %d more unexpected answers", k, len(tl.bad)-5)
				break
			}
			t.Errorf("%s: unexpected answer: %s", k, b)
		}
	}
	closedBy, longest, shortest := 0, time.Duration(0), slowHold
	for _, r := range slowResults {
		if r.err != nil {
			t.Errorf("slowloris %d: %v", r.i, r.err)
			continue
		}
		if r.closedByServer {
			closedBy++
		}
		longest, shortest = max(longest, r.after), min(shortest, r.after)
	}
	t.Logf("%d requests in %d kinds, %d unexpected; %d slowloris connections, %d closed by the server after %s to %s; "+
		"%d subscribers that never read (%d of them on the legitimate stream, %d cut abruptly halfway); attack took %s",
		total, len(tallies), mismatches, slowConns, closedBy, shortest.Round(100*time.Millisecond), longest.Round(100*time.Millisecond),
		half.opened, half.onLegit, half.cut, attackTime.Round(100*time.Millisecond))
	t.Logf("%d of %d subscribers that never read a flooded stream (%d × %d KiB) were cut off by the broker",
		cutOff, len(firehose), floodPublishes, floodSize>>10)
	if cutOff != firehoseConns {
		t.Errorf("only %d of %d subscribers that never read were cut off by the broker", cutOff, firehoseConns)
	}
	if closedBy != slowConns {
		t.Errorf("only %d of %d slowloris connections were closed by the server within %s", closedBy, slowConns, slowHold)
	}
	peak.Lock()
	t.Logf("peak under attack: RSS %s, heap in use %s, %d goroutines, %d subscribers",
		mib(peak.rss), mib(peak.heap), int(peak.goroutines), int(peak.subscribers))
	peak.Unlock()

	// Back to the baseline: only the legitimate subscriber is connected,
	// goroutines and memory are back near their baseline.
	var after map[string]float64
	gcStart := -1.0
	settled := waitUntil(settle, func() bool {
		// Make the broker allocate (history pages of the legitimate
		// stream, about 1 MiB of JSON each) so that it collects garbage.
		for range 4 {
			ops.do(http.MethodGet, "/v1/streams/"+legitStream+"/messages?limit=1000")
		}
		m, err := ops.scrape()
		if err != nil {
			return false
		}
		after = m
		if gcStart < 0 {
			gcStart = m["go_gc_duration_seconds_count"]
		}
		return m["go_gc_duration_seconds_count"] >= gcStart+2 &&
			m["sseb_subscribers"] == base["sseb_subscribers"] &&
			m["go_goroutines"] <= base["go_goroutines"]+maxExtraGoroutines &&
			m["process_resident_memory_bytes"] <= base["process_resident_memory_bytes"]+maxExtraRSS &&
			m["go_memstats_heap_inuse_bytes"] <= base["go_memstats_heap_inuse_bytes"]+maxExtraHeap
	})
	if after == nil {
		t.Fatalf("no /metrics after the attack\n%s", tail(p.Logs(), 40))
	}
	t.Logf("after the attack (settled %v, %d GCs later): RSS %s, heap in use %s, %d goroutines, %d subscribers, %d slow-subscriber disconnects",
		settled, int(after["go_gc_duration_seconds_count"]-gcStart), mib(after["process_resident_memory_bytes"]), mib(after["go_memstats_heap_inuse_bytes"]),
		int(after["go_goroutines"]), int(after["sseb_subscribers"]), int(after["sseb_slow_subscriber_disconnects_total"]))
	if got, want := after["sseb_subscribers"], base["sseb_subscribers"]; got != want {
		t.Errorf("sseb_subscribers = %v after the attackers left, want %v (the legitimate subscriber)", got, want)
	}
	if got, limit := after["go_goroutines"], base["go_goroutines"]+maxExtraGoroutines; got > limit {
		t.Errorf("go_goroutines = %v after the attack, baseline %v: goroutines leaked", got, base["go_goroutines"])
	}
	if got, limit := after["process_resident_memory_bytes"], base["process_resident_memory_bytes"]+maxExtraRSS; got > limit {
		t.Errorf("RSS %s after the attack, baseline %s: more than %s above", mib(got), mib(base["process_resident_memory_bytes"]), mib(maxExtraRSS))
	}
	if got, limit := after["go_memstats_heap_inuse_bytes"], base["go_memstats_heap_inuse_bytes"]+maxExtraHeap; got > limit {
		t.Errorf("heap in use %s after the attack, baseline %s: more than %s above", mib(got), mib(base["go_memstats_heap_inuse_bytes"]), mib(maxExtraHeap))
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if status := ops.status(path); status != http.StatusOK {
			t.Errorf("GET %s = %d after the attack", path, status)
		}
	}

	// No accepted event lost: the legitimate subscriber got every
	// acknowledged id exactly once, in order, with its data; then the stop.
	acked := pub.acked()
	if len(acked) > 0 {
		last := acked[len(acked)-1].id
		if !waitUntil(60*time.Second, func() bool { return fol.lastID() >= last }) {
			t.Errorf("the legitimate subscriber did not get the last acknowledged id %d within a minute", last)
		}
	}
	stopID := closeLegit(t, p.URL)
	select {
	case <-fol.done:
	case <-time.After(60 * time.Second):
		t.Errorf("the legitimate subscriber did not end after stop")
		cancel()
		<-fol.done
	}
	got, gaps, conns, statuses := fol.result()
	t.Logf("legitimate publisher: %d events acknowledged in %d requests (%d retried); subscriber: %d events over %d connections %v",
		len(acked), pub.requests.Load(), pub.retries.Load(), len(got), conns, statuses)
	if len(gaps) > 0 {
		t.Errorf("the legitimate subscriber got gap events %v", gaps)
	}
	want := append(acked, received{id: stopID, typ: broker.EventStop})
	if len(got) != len(want) {
		t.Errorf("the legitimate subscriber got %d events, %d were acknowledged (plus stop)", len(got), len(acked))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("event %d: subscriber got %+v, acknowledged %+v", i, got[i], want[i])
			break
		}
	}

	// The broker never answered 500 nor panicked.
	logs := p.Logs()
	for _, bad := range []string{`"message":"handler panicked"`, `"message":"internal error"`, "panic:"} {
		if n := strings.Count(logs, bad); n > 0 {
			t.Errorf("the broker logged %s %d times", bad, n)
		}
	}
	if t.Failed() {
		t.Logf("broker log (tail):\n%s", tail(logs, 30))
	}
}

// ---- attack jobs ----

type answer struct {
	status int
	code   string // "error" of a JSON error body
}

type job struct {
	kind  string
	desc  string   // what was sent, for the failure message; "" for random input
	want  []int    // acceptable statuses (of every answer, for pipelined requests)
	codes []string // acceptable JSON error codes; nil: not checked
	n     int      // answers expected (pipelining); 0 means 1
	run   func(ctx context.Context) ([]answer, error)
}

type tally struct {
	n        int
	statuses map[int]int
	bad      []string
}

func runJobs(ctx context.Context, jobs []job) map[string]*tally {
	var mu sync.Mutex
	tallies := map[string]*tally{}
	ch := make(chan job)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range ch {
				answers, err := j.run(ctx)
				mu.Lock()
				tl := tallies[j.kind]
				if tl == nil {
					tl = &tally{statuses: map[int]int{}}
					tallies[j.kind] = tl
				}
				tl.n++
				for _, a := range answers {
					tl.statuses[a.status]++
				}
				if msg := check(j, answers, err); msg != "" {
					tl.bad = append(tl.bad, msg)
				}
				mu.Unlock()
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	return tallies
}

func check(j job, answers []answer, err error) string {
	msg := checkAnswers(j, answers, err)
	if msg != "" && j.desc != "" {
		msg += " for " + j.desc
	}
	return msg
}

func checkAnswers(j job, answers []answer, err error) string {
	n := max(j.n, 1)
	if err != nil {
		return fmt.Sprintf("after %d of %d answers %v: %v", len(answers), n, answers, err)
	}
	if len(answers) != n {
		return fmt.Sprintf("%d answers %v, want %d", len(answers), answers, n)
	}
	for _, a := range answers {
		if !slices.Contains(j.want, a.status) {
			return fmt.Sprintf("status %d (%s), want one of %v", a.status, a.code, j.want)
		}
		if a.status >= 400 && j.codes != nil && !slices.Contains(j.codes, a.code) {
			return fmt.Sprintf("status %d with error code %q, want one of %q", a.status, a.code, j.codes)
		}
	}
	return ""
}

// attackJobs builds the attack, deterministically, shuffled so that every
// kind runs all along the attack.
func attackJobs(base, addr string, c *http.Client) []job {
	rng := rand.New(rand.NewPCG(1, 2))
	var jobs []job
	add := func(count int, kind string, want []int, codes []string, mk func(i int, rng *rand.Rand) func(context.Context) ([]answer, error)) {
		for i := range count {
			jobs = append(jobs, job{kind: kind, want: want, codes: codes, run: mk(i, rand.New(rand.NewPCG(uint64(len(jobs)), 7)))})
		}
	}
	legit := "/v1/streams/" + legitStream
	const jsonType = "application/json"
	s400, s201 := []int{400}, []int{201}

	// Bodies that are no JSON at all (a control byte is never valid JSON).
	add(600, "garbage-json", s400, []string{"invalid_json"}, func(i int, rng *rand.Rand) func(context.Context) ([]answer, error) {
		body := make([]byte, 1+rng.IntN(2000))
		for k := range body {
			body[k] = byte(rng.IntN(256))
		}
		body[rng.IntN(len(body))] = 0x01
		return apiRequest(c, http.MethodPost, base+legit+"/messages", jsonType, body, nil)
	})
	// Valid JSON mutated a little: sometimes still valid (to junk streams).
	add(400, "mutated-json", []int{201, 400}, []string{"invalid_json", "invalid_event"}, func(i int, rng *rand.Rand) func(context.Context) ([]answer, error) {
		body := []byte(`[{"event":"token","data":"x\ny"},{"data":{"k":[1,2.5,null,true]}},{"event":"é","data":""}]`)
		for range 1 + rng.IntN(3) {
			k := rng.IntN(len(body))
			switch rng.IntN(3) {
			case 0:
				body[k] = byte(rng.IntN(128))
			case 1:
				body = append(body[:k], body[k+1:]...)
			default:
				body = slices.Insert(body, k, `{}[]":,\ `[rng.IntN(9)])
			}
		}
		return apiRequest(c, http.MethodPost, fmt.Sprintf("%s/v1/streams/junk-%d/messages", base, i%20), jsonType, body, nil)
	})
	// Valid JSON of the wrong shape, each refusing the whole request (an
	// array of objects means no null element either).
	shapes := []string{
		`5`, `"x"`, `null`, `true`, `[1]`, `[[]]`, `[null]`, `{"data":"x","extra":1}`, `{"event":"stop","data":"x"}`,
		`{"event":"gap"}`, `{"event":"","data":"x"}`, `{"event":5}`, `{"event":"a\nb"}`, `{"event":"` + strings.Repeat("e", 65) + `"}`,
		`[{"data":"ok"},{"event":"stop"}]`, `[{"data":"ok"},7]`, `[` + strings.Repeat(`{"data":"x"},`, 1000) + `{"data":"x"}]`,
	}
	for i := range 200 {
		body := shapes[i%len(shapes)]
		jobs = append(jobs, job{kind: "wrong-shape-json", desc: fmt.Sprintf("body %.60q", body), want: s400, codes: []string{"invalid_event"},
			run: apiRequest(c, http.MethodPost, base+legit+"/messages", jsonType, []byte(body), nil)})
	}
	add(200, "invalid-utf8-raw", s400, []string{"invalid_event"}, func(i int, rng *rand.Rand) func(context.Context) ([]answer, error) {
		bad := []string{"\xff", "\xfe", "\xc3(", "\xed\xa0\x80", "\xf8\x88\x80\x80\x80", "\xe2\x82", "\xc0\xaf", "\x80"}[i%8]
		body := []byte("ok " + bad + " ok")
		return apiRequest(c, http.MethodPost, base+legit+"/messages", "text/plain", body, nil)
	})
	add(200, "invalid-utf8-json", s400, []string{"invalid_json"}, func(i int, rng *rand.Rand) func(context.Context) ([]answer, error) {
		bad := []string{"\xff", "\xc3\x28", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80"}[i%5]
		body := []byte(`{"event":"t` + bad[:i%2*len(bad)] + `","data":"` + bad + `"}`)
		return apiRequest(c, http.MethodPost, base+legit+"/messages", jsonType, body, nil)
	})
	badNames := []string{"stop", "gap", strings.Repeat("n", 65), "a%0Ab", "a%0Db", "a%00b", "", "%FF", strings.Repeat("%C3%A9", 65)}
	add(200, "invalid-event-name", s400, []string{"invalid_event"}, func(i int, rng *rand.Rand) func(context.Context) ([]answer, error) {
		return apiRequest(c, http.MethodPost, base+legit+"/messages?event="+badNames[i%len(badNames)], "text/plain", []byte("x"), nil)
	})
	add(300, "many-event-names", s201, nil, func(i int, rng *rand.Rand) func(context.Context) ([]answer, error) {
		name := fmt.Sprintf("name-%d-%x-é世", i, rng.Uint64())
		return apiRequest(c, http.MethodPost, fmt.Sprintf("%s/v1/streams/names-%d/messages?event=%s", base, i%30, url.QueryEscape(name)), "text/plain", []byte("x"), nil)
	})
	badIDs := []string{"..", ".", "%2E%2E", "%2e", "a%2Fb", "a%20b", "%C3%A9", strings.Repeat("x", 129), "a+b", "a%00b", "a%0Ab", "*", "a;b", "%FF", "a%25"}
	routes := []struct{ method, suffix string }{
		{http.MethodGet, "/events"}, {http.MethodPost, "/messages"}, {http.MethodGet, ""}, {http.MethodGet, "/messages"},
		{http.MethodPost, "/close"}, {http.MethodDelete, ""},
	}
	add(300, "invalid-stream-id", s400, []string{"invalid_stream_id"}, func(i int, rng *rand.Rand) func(context.Context) ([]answer, error) {
		r := routes[i%len(routes)]
		return apiRequest(c, r.method, base+"/v1/streams/"+badIDs[i%len(badIDs)]+r.suffix, "text/plain", []byte("x"), nil)
	})
	badResume := []string{"abc", "007", "00", "-1", "+5", "18446744073709551616", "99999999999999999999999", "1.5", "0x10", "1 2", "１", "1e3"}
	add(300, "invalid-last-event-id", s400, []string{"invalid_last_event_id"}, func(i int, rng *rand.Rand) func(context.Context) ([]answer, error) {
		v := badResume[i%len(badResume)]
		if i%2 == 0 {
			return apiRequest(c, http.MethodGet, base+legit+"/events", "", nil, http.Header{"Last-Event-Id": {v}})
		}
		return apiRequest(c, http.MethodGet, base+legit+"/events?lastEventId="+url.QueryEscape(v), "", nil, nil)
	})
	add(100, "bad-parameters", s400, []string{"invalid_request", "invalid_last_event_id"}, func(i int, rng *rand.Rand) func(context.Context) ([]answer, error) {
		switch i % 4 {
		case 0:
			return apiRequest(c, http.MethodGet, base+legit+"/messages?limit=abc", "", nil, nil)
		case 1:
			return apiRequest(c, http.MethodGet, base+legit+"/messages?limit=-1", "", nil, nil)
		case 2:
			return apiRequest(c, http.MethodGet, base+legit+"/messages?after=x1", "", nil, nil)
		default: // would publish to the legitimate stream if the key were not checked first
			return apiRequest(c, http.MethodPost, base+legit+"/messages", "text/plain", []byte("x"), http.Header{"Idempotency-Key": {strings.Repeat("k", 129)}})
		}
	})
	add(100, "wrong-route-or-method", []int{404, 405}, []string{"not_found", "method_not_allowed"}, func(i int, rng *rand.Rand) func(context.Context) ([]answer, error) {
		r := []struct{ method, path string }{
			{http.MethodPut, legit + "/messages"}, {http.MethodPatch, "/v1/streams"}, {http.MethodGet, "/v1/nope"},
			{http.MethodPost, legit + "/events"}, {http.MethodGet, "/v1/streams/a/b/c"},
		}[i%5]
		return apiRequest(c, r.method, base+r.path, "text/plain", []byte("x"), nil)
	})
	// The flood of a stream whose subscribers never read.
	flood := bytes.Repeat([]byte("f"), floodSize)
	add(floodPublishes, "flood", s201, nil, func(i int, rng *rand.Rand) func(context.Context) ([]answer, error) {
		return apiRequest(c, http.MethodPost, base+"/v1/streams/"+firehoseStream+"/messages", "text/plain", flood, nil)
	})
	// Subscribers that connect and leave at once.
	add(200, "subscribe-and-leave", []int{200}, nil, func(i int, rng *rand.Rand) func(context.Context) ([]answer, error) {
		return apiRequest(c, http.MethodGet, base+legit+"/events", "", nil, nil)
	})

	// Raw TCP: what an HTTP client library would never send.
	raw := func(count int, kind string, want []int, codes []string, mk func(i int) []byte) {
		for i := range count {
			req := mk(i)
			jobs = append(jobs, job{kind: kind, want: want, codes: codes, run: func(ctx context.Context) ([]answer, error) {
				return rawRequest(ctx, addr, req, 1, false)
			}})
		}
	}
	const host = "Host: broker\r\n"
	raw(100, "huge-header", []int{431}, nil, func(i int) []byte {
		return []byte("GET /healthz HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", 100<<10+i) + "\r\n\r\n")
	})
	raw(50, "many-headers", []int{431}, nil, func(i int) []byte {
		var b strings.Builder
		b.WriteString("GET " + legit + "/events HTTP/1.1\r\n" + host)
		for k := range 3000 { // about 100 KiB
			fmt.Fprintf(&b, "X-H-%d: %020d\r\n", k, i)
		}
		return []byte(b.String() + "\r\n")
	})
	raw(100, "huge-body", []int{413}, []string{"body_too_large"}, func(i int) []byte {
		n := maxBody + 1 + i*600
		ct := []string{"text/plain", "application/json"}[i%2]
		return []byte(fmt.Sprintf("POST %s/messages HTTP/1.1\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", legit, host, ct, n, strings.Repeat("b", n)))
	})
	raw(50, "huge-body-chunked", []int{413}, []string{"body_too_large"}, func(i int) []byte {
		var b strings.Builder
		b.WriteString("POST " + legit + "/messages HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n")
		for range 20 {
			b.WriteString("1000\r\n" + strings.Repeat("c", 0x1000) + "\r\n") // 20 × 4 KiB
		}
		return []byte(b.String() + "0\r\n\r\n")
	})
	badLengths := []string{"abc", "-1", "1\r\nContent-Length: 2", "99999999999999999999999", "0x10", "1 1"}
	raw(60, "bad-content-length", []int{400}, nil, func(i int) []byte {
		return []byte("POST " + legit + "/messages HTTP/1.1\r\n" + host + "Content-Length: " + badLengths[i%len(badLengths)] + "\r\n\r\nx")
	})
	badChunks := []string{"zz\r\nabc\r\n0\r\n\r\n", "fffffffffffffffffff\r\nabc\r\n0\r\n\r\n", "3\r\nabcXX0\r\n\r\n", "-1\r\nabc\r\n0\r\n\r\n", "3\r\nabcdef\r\n0\r\n\r\n"}
	raw(100, "bad-chunked", []int{400}, []string{"invalid_request"}, func(i int) []byte {
		return []byte("POST " + legit + "/messages HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" + badChunks[i%len(badChunks)])
	})
	raw(30, "unsupported-encoding", []int{501}, nil, func(i int) []byte {
		te := []string{"gzip, chunked", "chunked, gzip", "identity", "compress"}[i%4]
		return []byte("POST " + legit + "/messages HTTP/1.1\r\n" + host + "Transfer-Encoding: " + te + "\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	})
	// Both lengths (a smuggling classic): Transfer-Encoding wins (RFC 9112);
	// to a junk stream, so either answer is harmless.
	raw(30, "length-and-chunked", []int{201, 400}, nil, func(i int) []byte {
		return []byte(fmt.Sprintf("POST /v1/streams/junk-te/messages HTTP/1.1\r\n%sContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", host, i%20))
	})
	badLines := []struct {
		req  string
		want int
	}{
		{"GARBAGE\r\n\r\n", 400},
		{"GET\r\n\r\n", 400},
		{"G\xffT /healthz HTTP/1.1\r\n" + host + "\r\n", 400},
		{"GET /healthz HTTP/9.9\r\n" + host + "\r\n", 505},
		{"GET /healthz HTTP/1.1\r\n\r\n", 400},
		{"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"GET /healthz HTTP/1.1\r\n" + host + "NoColon\r\n\r\n", 400},
		{"GET /healthz HTTP/1.1\r\n" + host + "X-A: b\x00c\r\n\r\n", 400},
		{"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400},
		{"GET healthz HTTP/1.1\r\n" + host + "\r\n", 400},
		{"GET /v1/streams/\xff\xfe/events HTTP/1.1\r\n" + host + "\r\n", 400},
		{"GET " + legit + "/events HTTP/1.1\r\n" + host + "Last-Event-ID: \xff\r\n\r\n", 400},
	}
	for i := range 120 {
		bl := badLines[i%len(badLines)]
		jobs = append(jobs, job{kind: "bad-request-line", desc: fmt.Sprintf("%.60q", bl.req), want: []int{bl.want}, run: func(ctx context.Context) ([]answer, error) {
			return rawRequest(ctx, addr, []byte(bl.req), 1, false)
		}})
	}
	// A body shorter than its Content-Length, then the client stops sending.
	for i := range 50 {
		req := fmt.Sprintf("POST %s/messages HTTP/1.1\r\n%sContent-Length: %d\r\n\r\nshort", legit, host, 100+i)
		jobs = append(jobs, job{kind: "truncated-body", want: s400, codes: []string{"invalid_request"}, run: func(ctx context.Context) ([]answer, error) {
			return rawRequest(ctx, addr, []byte(req), 1, true)
		}})
	}
	// Pipelined requests are answered in order, each on its own.
	for i := range 50 {
		req := fmt.Sprintf("POST /v1/streams/junk-pipe/messages HTTP/1.1\r\n%sContent-Length: 5\r\n\r\nhello"+
			"POST %s/messages HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: 1\r\n\r\n{"+
			"GET /healthz?%d HTTP/1.1\r\n%s\r\n", host, legit, host, i, host)
		jobs = append(jobs, job{kind: "pipelined", want: []int{201, 400, 200}, n: 3, run: func(ctx context.Context) ([]answer, error) {
			answers, err := rawRequest(ctx, addr, []byte(req), 3, false)
			if err == nil && (answers[0].status != 201 || answers[1].status != 400 || answers[2].status != 200) {
				err = fmt.Errorf("pipelined answers out of order: %v", answers)
			}
			return answers, err
		}})
	}
	rng.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	return jobs
}

// apiRequest sends one request with the Go client and reads the answer:
// an error answer of the API must be JSON with an error code.
func apiRequest(c *http.Client, method, target, contentType string, body []byte, h http.Header) func(context.Context) ([]answer, error) {
	return func(ctx context.Context) ([]answer, error) {
		req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		for k, v := range h {
			req.Header[k] = v
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		res, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		if res.StatusCode == http.StatusOK && strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
			// A subscription: read its first block, then leave.
			_, err := bufio.NewReader(res.Body).ReadString('\n')
			return []answer{{status: res.StatusCode}}, err
		}
		a, err := readAnswer(res, true)
		return []answer{a}, err
	}
}

// readAnswer reads an answer's body. An error answer of the API (all of
// them when api is set) must be JSON with an error code and a message; the
// HTTP server's own answers to broken requests (431, 501, ...) are text.
func readAnswer(res *http.Response, api bool) (answer, error) {
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	a := answer{status: res.StatusCode}
	if res.StatusCode < 400 {
		return a, err
	}
	isJSON := strings.HasPrefix(res.Header.Get("Content-Type"), "application/json")
	if api && !isJSON {
		return a, fmt.Errorf("status %d with Content-Type %q: %q", res.StatusCode, res.Header.Get("Content-Type"), data)
	}
	if isJSON {
		var body struct{ Error, Message string }
		if jerr := json.Unmarshal(data, &body); jerr != nil || body.Error == "" || body.Message == "" {
			return a, fmt.Errorf("status %d with a JSON body that is no API error: %q", res.StatusCode, data)
		}
		a.code = body.Error
	}
	return a, err
}

// rawRequest writes req on a new TCP connection (while reading, so a
// server that answers before the end of a huge request is heard) and reads
// n answers. halfClose ends the client's side after req.
func rawRequest(ctx context.Context, addr string, req []byte, n int, halfClose bool) ([]answer, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(clientTimeout))
	go func() {
		if _, err := conn.Write(req); err == nil && halfClose {
			_ = conn.(*net.TCPConn).CloseWrite()
		}
	}()
	br := bufio.NewReader(conn)
	var answers []answer
	for range n {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return answers, err
		}
		a, err := readAnswer(res, false)
		res.Body.Close()
		answers = append(answers, a)
		if err != nil && !isReset(err) {
			// An answer without Content-Length ends with the connection:
			// a reset after its status line is fine.
			return answers, err
		}
	}
	return answers, nil
}

func isReset(err error) bool {
	var op *net.OpError
	return (errors.As(err, &op) && !op.Timeout()) || errors.Is(err, io.ErrUnexpectedEOF)
}

// ---- slowloris ----

type slowResult struct {
	i              int
	after          time.Duration
	closedByServer bool
	err            error
}

// slowloris sends a request's headers one byte a second, never ending
// them, until the server closes the connection (or slowHold passes).
func slowloris(ctx context.Context, addr string, i int) slowResult {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return slowResult{i: i, err: err}
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(slowHold + 10*time.Second))
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: broker\r\nX-Slow-" + strconv.Itoa(i) + ": ")); err != nil {
		return slowResult{i: i, err: err}
	}
	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, conn) // returns when the server closes
		closed <- err
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-closed:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return slowResult{i: i, after: time.Since(start), err: fmt.Errorf("not closed by the server after %s", time.Since(start))}
			}
			return slowResult{i: i, after: time.Since(start), closedByServer: true}
		case <-tick.C:
			if time.Since(start) > slowHold {
				return slowResult{i: i, after: time.Since(start), err: fmt.Errorf("still open after %s", slowHold)}
			}
			_, _ = conn.Write([]byte{'a' + byte(i%26)})
		case <-ctx.Done():
			return slowResult{i: i, err: ctx.Err()}
		}
	}
}

// ---- subscribers that never read ----

type halfOpenSet struct {
	conns           []*net.TCPConn
	opened, onLegit int
	cut             int
}

// openHalfOpen opens halfOpenConns subscriptions over raw TCP that read
// their status line and then nothing: half on the legitimate stream with a
// tiny receive buffer (the broker's writes to them block), half on streams
// of their own.
func openHalfOpen(t *testing.T, addr string) *halfOpenSet {
	t.Helper()
	h := &halfOpenSet{}
	for i := range halfOpenConns {
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Errorf("half-open subscriber %d: %v", i, err)
			continue
		}
		tc := conn.(*net.TCPConn)
		stream := fmt.Sprintf("idle-%d", i)
		if i%2 == 0 {
			stream = legitStream
			_ = tc.SetReadBuffer(4096)
			h.onLegit++
		}
		_ = tc.SetDeadline(time.Now().Add(clientTimeout))
		_, err = fmt.Fprintf(tc, "GET /v1/streams/%s/events HTTP/1.1\r\nHost: broker\r\n\r\n", stream)
		status := make([]byte, len("HTTP/1.1 200"))
		if err == nil {
			_, err = io.ReadFull(tc, status)
		}
		_ = tc.SetDeadline(time.Time{})
		if err != nil || string(status) != "HTTP/1.1 200" {
			t.Errorf("half-open subscriber %d: %q %v", i, status, err)
			tc.Close()
			continue
		}
		h.conns = append(h.conns, tc)
		h.opened++
	}
	return h
}

// cutSome resets a quarter of the connections (RST, no FIN), as a client
// that vanished would.
func (h *halfOpenSet) cutSome() {
	for i, c := range h.conns {
		if i%4 == 1 {
			_ = c.SetLinger(0)
			_ = c.Close()
			h.cut++
		}
	}
}

// openFirehose subscribes firehoseConns raw connections to the flooded
// stream with a 4 KiB receive buffer set before connecting (so the window
// they advertise stays tiny), and reads nothing.
func openFirehose(t *testing.T, addr string) []*net.TCPConn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	var conns []*net.TCPConn
	for i := range firehoseConns {
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("firehose subscriber %d: %v", i, err)
		}
		tc := conn.(*net.TCPConn)
		if _, err = fmt.Fprintf(tc, "GET /v1/streams/%s/events HTTP/1.1\r\nHost: broker\r\n\r\n", firehoseStream); err != nil {
			t.Fatalf("firehose subscriber %d: %v", i, err)
		}
		conns = append(conns, tc)
	}
	return conns
}

// drainFirehose reads, at last, each flooded subscriber's response and
// reports how many of them the broker had ended (the stream is neither
// closed nor deleted yet, so only the broker cutting a subscriber that
// cannot keep up ends it): the response ends, cleanly or not, after less
// than the flood. A subscriber the broker had kept would get the whole
// flood and then wait for more, until the read deadline.
func drainFirehose(conns []*net.TCPConn) (cut int, errs []error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			// The broker gives a blocked write 10 s; 40 s covers that on a
			// loaded machine.
			_ = c.SetReadDeadline(time.Now().Add(40 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil && res.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", res.StatusCode)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("firehose subscriber %d: %w", i, err))
				mu.Unlock()
				return
			}
			n, err := io.Copy(io.Discard, res.Body)
			var ne net.Error
			if !(errors.As(err, &ne) && ne.Timeout()) && n < int64(floodPublishes*floodSize) {
				mu.Lock()
				cut++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return cut, errs
}

func (h *halfOpenSet) closeAll() {
	for _, c := range h.conns {
		_ = c.Close()
	}
}

// ---- the legitimate publisher and subscriber ----

type received struct {
	id   uint64
	typ  string
	data string
}

type publisher struct {
	base     string
	client   *http.Client
	requests atomic.Int64
	retries  atomic.Int64
	mu       sync.Mutex
	events   []received
}

func (p *publisher) acked() []received {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// run publishes legitEvents events, one per request and every tenth
// request a batch of five, retrying each request with its Idempotency-Key
// on network errors and 5xx as a careful publisher does.
func (p *publisher) run(ctx context.Context) error {
	for n, req := 0, 0; n < legitEvents; req++ {
		size := 1
		if req%10 == 9 {
			size = min(5, legitEvents-n)
		}
		parts := make([]string, size)
		datas := make([]string, size)
		for k := range size {
			datas[k] = fmt.Sprintf("legit %d: é世🎉\nsecond line", n+k)
			b, _ := json.Marshal(datas[k])
			parts[k] = `{"event":"token","data":` + string(b) + `}`
		}
		body := "[" + strings.Join(parts, ",") + "]"
		ids, err := p.publish(ctx, body, fmt.Sprintf("legit-%d", req))
		if err != nil {
			return fmt.Errorf("request %d: %w", req, err)
		}
		if len(ids) != size {
			return fmt.Errorf("request %d: %d ids for %d events", req, len(ids), size)
		}
		p.mu.Lock()
		for k, id := range ids {
			p.events = append(p.events, received{id: id, typ: "token", data: datas[k]})
		}
		p.mu.Unlock()
		n += size
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func (p *publisher) publish(ctx context.Context, body, key string) ([]uint64, error) {
	deadline := time.Now().Add(60 * time.Second)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			p.retries.Add(1)
			time.Sleep(200 * time.Millisecond)
		}
		p.requests.Add(1)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/streams/"+legitStream+"/messages", strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		res, err := p.client.Do(req)
		if err != nil {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return nil, err
			}
			continue
		}
		data, err := io.ReadAll(res.Body)
		res.Body.Close()
		switch {
		case err == nil && res.StatusCode == http.StatusCreated:
			var ans struct{ IDs []string }
			if err := json.Unmarshal(data, &ans); err != nil {
				return nil, fmt.Errorf("answer %q: %w", data, err)
			}
			ids := make([]uint64, len(ans.IDs))
			for i, s := range ans.IDs {
				if ids[i], err = broker.ParseID(s); err != nil {
					return nil, err
				}
			}
			return ids, nil
		case err == nil && res.StatusCode < 500:
			return nil, fmt.Errorf("status %d: %s", res.StatusCode, data)
		case time.Now().After(deadline):
			return nil, fmt.Errorf("status %d after retries for a minute: %s", res.StatusCode, data)
		}
	}
}

// follower is the legitimate subscriber: it reads everything, and resumes
// with Last-Event-ID whenever its connection ends before stop.
type follower struct {
	url      string
	done     chan struct{}
	mu       sync.Mutex
	events   []received
	gaps     []string
	conns    int
	statuses map[int]int
	last     string
}

func (f *follower) run(ctx context.Context) {
	defer close(f.done)
	client := &http.Client{}
	f.statuses = map[int]int{}
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
		if err != nil {
			return
		}
		f.mu.Lock()
		if f.last != "" {
			req.Header.Set("Last-Event-ID", f.last)
		}
		f.mu.Unlock()
		res, err := client.Do(req)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		f.mu.Lock()
		f.conns++
		f.statuses[res.StatusCode]++
		f.mu.Unlock()
		if res.StatusCode == http.StatusNoContent {
			res.Body.Close()
			return
		}
		if res.StatusCode != http.StatusOK {
			res.Body.Close()
			time.Sleep(200 * time.Millisecond)
			continue
		}
		stopped := f.read(sse.NewDecoder(res.Body))
		res.Body.Close()
		if stopped {
			return
		}
	}
}

func (f *follower) read(dec *sse.Decoder) (stopped bool) {
	for {
		ev, err := dec.Next()
		if err != nil {
			return false
		}
		f.mu.Lock()
		if ev.Type == broker.EventGap {
			f.gaps = append(f.gaps, ev.Data)
		} else {
			id, err := broker.ParseID(ev.ID)
			if err != nil {
				f.gaps = append(f.gaps, "bad id "+ev.ID)
			}
			r := received{id: id, typ: ev.Type, data: ev.Data}
			if ev.Type == broker.EventStop {
				r.data = ""
			}
			f.events = append(f.events, r)
			f.last = ev.ID
		}
		f.mu.Unlock()
		if ev.Type == broker.EventStop {
			return true
		}
	}
}

func (f *follower) lastID() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) == 0 {
		return 0
	}
	return f.events[len(f.events)-1].id
}

func (f *follower) result() ([]received, []string, int, map[int]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events), slices.Clone(f.gaps), f.conns, f.statuses
}

func closeLegit(t *testing.T, base string) uint64 {
	t.Helper()
	res, err := http.Post(base+"/v1/streams/"+legitStream+"/close", "application/json", nil)
	if err != nil {
		t.Fatalf("close: %v", err)
	}
	defer res.Body.Close()
	var ans struct{ IDs []string }
	if err := json.NewDecoder(res.Body).Decode(&ans); err != nil || res.StatusCode != http.StatusOK || len(ans.IDs) != 1 {
		t.Fatalf("close: %d %v %v", res.StatusCode, ans, err)
	}
	id, err := broker.ParseID(ans.IDs[0])
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// warmUp runs each kind of request a few times so that the baseline is
// that of a broker that has served, not of a fresh process.
func warmUp(t *testing.T, base string) {
	t.Helper()
	c := &http.Client{Timeout: clientTimeout}
	defer c.CloseIdleConnections()
	for i := range 50 {
		res, err := c.Post(base+"/v1/streams/warm-up/messages", "text/plain", strings.NewReader("warm "+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		res, err = c.Post(base+"/v1/streams/warm-up/messages", "application/json", strings.NewReader("{"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/streams/warm-up/events", nil)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	dec := sse.NewDecoder(res.Body)
	for range 50 {
		if _, err := dec.Next(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	res.Body.Close()
}

// ---- /metrics and helpers ----

type opsClient struct {
	base   string
	client *http.Client
}

// scrape reads the unlabelled samples of /metrics.
func (o *opsClient) scrape() (map[string]float64, error) {
	res, err := o.client.Get(o.base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", res.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			m[name] = v
		}
	}
	for _, need := range []string{"process_resident_memory_bytes", "go_memstats_heap_inuse_bytes", "go_goroutines", "go_gc_duration_seconds_count", "sseb_subscribers"} {
		if _, ok := m[need]; !ok {
			return nil, fmt.Errorf("/metrics has no %s", need)
		}
	}
	return m, sc.Err()
}

func (o *opsClient) mustScrape(t *testing.T) map[string]float64 {
	t.Helper()
	m, err := o.scrape()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (o *opsClient) status(path string) int { return o.do(http.MethodGet, path) }

func (o *opsClient) do(method, path string) int {
	req, err := http.NewRequest(method, o.base+path, nil)
	if err != nil {
		return 0
	}
	res, err := o.client.Do(req)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitUntil(d, cond) {
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

func mib(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

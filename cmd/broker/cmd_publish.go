package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sse-broker/broker/internal/ctxtime"
	"github.com/sse-broker/broker/pkg/client"
)

// A batch is what arrived on stdin while the previous publish was in
// flight: the first line of a quiet producer goes out alone and at once
// (tokens stream), a fast producer is not held to one request per line.
const (
	// maxBatchEvents stays under the broker's 1,000 events per request.
	maxBatchEvents = 500
	// maxBatchBytes bounds a batch's JSON body (jsonSize), well under the
	// default publish.max_body of 1 MiB. A line larger than that goes
	// alone.
	maxBatchBytes = 256 << 10
	// rateLimitWait is the wait after a 429 without Retry-After, and
	// maxRateLimitWait caps one with (as pkg/client caps its own waits):
	// a misconfigured proxy must not park a pipe for hours.
	rateLimitWait    = time.Second
	maxRateLimitWait = 5 * time.Minute
)

const publishDoc = `Publishes to STREAM (created on first publish). With DATA, one event whose
data is the arguments joined by spaces. Without, each line of standard input
is one event, published as soon as it arrives, so that

  some-llm-tool | broker publish chat-1 --close

streams the tool's lines while it runs; lines that arrive while a publish is
in flight go out together in the next one. Prints the id of each published
event on stdout, one per line; on a terminal, a progress line on stderr.
Each publish is retried with one Idempotency-Key: published exactly once.

Prefer BROKER_TOKEN to --token: a flag is visible to other users in ps.`

// runPublish is `broker publish`.
func runPublish(c cli, args []string) int {
	fs := newFlagSet("publish", "broker publish STREAM [DATA...] [--event NAME] [--close] [--url URL] [--token TOKEN]", publishDoc)
	event := fs.String("event", "", "event `name` of every event (default: message)")
	closeAtEnd := fs.Bool("close", false, "close the stream at the end: subscribers get stop and their responses end")
	conn := addClientFlags(fs)
	pos, code, ok := fs.parse(c, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return fs.usageError(c, "name the stream: broker publish STREAM [DATA...]")
	}
	ctx, stop := signalContext()
	defer stop()
	p := &publisher{
		c: conn.client(c.environ), stream: pos[0], event: *event, ids: c.stdout,
		progress: newProgress(c.stderr, "published", "events"),
	}
	var err error
	if len(pos) > 1 {
		err = p.send(ctx, []string{strings.Join(pos[1:], " ")})
	} else {
		if isTerminal(c.stdin) && isTerminal(c.stderr) {
			fmt.Fprintln(c.stderr, "broker publish: one event per line; Ctrl-D ends")
		}
		err = p.fromLines(ctx, c.stdin)
	}
	if err == nil && *closeAtEnd {
		if _, err = p.c.Close(ctx, p.stream); err != nil {
			err = fmt.Errorf("closing the stream: %w", err)
		}
	}
	p.progress.finish()
	switch {
	case ctx.Err() != nil:
		fmt.Fprintf(c.stderr, "broker publish: interrupted after %d events\n", p.progress.count)
		return 130
	case err != nil:
		fmt.Fprintf(c.stderr, "broker publish: %v (after %d events)\n", err, p.progress.count)
		return 1
	}
	return 0
}

// publisher publishes batches of lines to one stream.
type publisher struct {
	c        *client.Client
	stream   string
	event    string
	ids      io.Writer
	progress *progress
}

// fromLines publishes each line of r (without its line ending) as one
// event. A reader goroutine feeds a channel so that the lines that arrive
// during a publish are waiting, already read, to form the next batch.
func (p *publisher) fromLines(ctx context.Context, r io.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // releases the reader if a publish failed
	lines := make(chan string, maxBatchEvents)
	readErr := make(chan error, 1)
	go readLines(ctx, r, lines, readErr)
	// What each line's event adds to a batch, besides its data.
	perEvent := len(`{"data":},`)
	if p.event != "" {
		perEvent += len(`"event":,`) + jsonSize(p.event)
	}
	var next *string // a line read that did not fit the last batch
	for {
		var line string
		if next != nil {
			line, next = *next, nil
		} else {
			var more bool
			select {
			case line, more = <-lines:
			case <-ctx.Done():
				return ctx.Err()
			}
			if !more {
				break
			}
		}
		batch, size := []string{line}, perEvent+jsonSize(line)
	gather:
		for len(batch) < maxBatchEvents {
			select {
			case l, ok := <-lines:
				if !ok {
					break gather
				}
				n := perEvent + jsonSize(l)
				if size+n > maxBatchBytes {
					next = &l
					break gather
				}
				batch, size = append(batch, l), size+n
			default:
				break gather
			}
		}
		if err := p.send(ctx, batch); err != nil {
			return err
		}
	}
	if err := <-readErr; err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	return nil
}

// jsonSize is what s takes in a batch's JSON body as pkg/client encodes
// it: a JSON string, escapes included (json.Marshal spells '<' as \u003c,
// a control character as \u00XX).
func jsonSize(s string) int {
	b, _ := json.Marshal(s)
	return len(b)
}

// readLines sends every line of r to lines and closes it at the end of r;
// then readErr gets the read error or nil. A last line without a newline
// is a line too.
func readLines(ctx context.Context, r io.Reader, lines chan<- string, readErr chan<- error) {
	defer close(lines)
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			select {
			case lines <- line:
			case <-ctx.Done():
				readErr <- nil
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			readErr <- err
			return
		}
	}
}

// send publishes one batch, all or nothing, and prints its ids. pkg/client
// retries network errors and 5xx; a 429 is waited out here, since a
// long-running pipe should slow down rather than fail. Every attempt, here
// and in pkg/client, carries the batch's one Idempotency-Key: a 429 may
// answer the retry of an attempt that was stored but whose answer was
// lost (the broker checks the rate before the key), so a new key could
// publish the batch twice.
func (p *publisher) send(ctx context.Context, batch []string) error {
	msgs := make([]client.Message, len(batch))
	for i, data := range batch {
		msgs[i] = client.Message{Event: p.event, Data: data}
	}
	key := rand.Text()
	for {
		res, err := p.c.PublishWithKey(ctx, p.stream, key, msgs...)
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests {
			if err := ctxtime.Sleep(ctx, rateLimitPause(ae.RetryAfter)); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if _, err := io.WriteString(p.ids, strings.Join(res.IDs, "\n")+"\n"); err != nil {
			return fmt.Errorf("writing ids: %w", err)
		}
		p.progress.add(len(res.IDs))
		return nil
	}
}

// rateLimitPause is the wait after a 429 whose Retry-After was retryAfter
// (0: none).
func rateLimitPause(retryAfter time.Duration) time.Duration {
	if retryAfter <= 0 {
		return rateLimitWait
	}
	return min(retryAfter, maxRateLimitWait)
}

// progress is a count and rate line on a terminal's stderr, redrawn at
// most every progressEvery; on anything else it prints nothing.
type progress struct {
	w           io.Writer // nil: quiet
	verb, noun  string
	count       int
	start, last time.Time
}

const progressEvery = 200 * time.Millisecond

func newProgress(stderr io.Writer, verb, noun string) *progress {
	p := &progress{verb: verb, noun: noun, start: time.Now()}
	if isTerminal(stderr) {
		p.w = stderr
	}
	return p
}

func (p *progress) add(n int) {
	p.count += n
	if p.w != nil && time.Since(p.last) >= progressEvery {
		p.last = time.Now()
		p.draw()
	}
}

func (p *progress) draw() {
	rate := float64(p.count) / max(time.Since(p.start).Seconds(), 1e-3)
	fmt.Fprintf(p.w, "\r\033[K%s %d %s (%.0f/s)", p.verb, p.count, p.noun, rate)
}

// finish draws the last state and ends the line.
func (p *progress) finish() {
	if p.w != nil && p.count > 0 {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

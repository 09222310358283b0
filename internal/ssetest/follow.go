// Package ssetest holds an SSE client for tests that behaves like a
// browser whose connection keeps breaking: it follows a stream to its stop
// event, dropping the connection at random points and resuming with the
// last id it saw, and returns every id it received.
package ssetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"

	"github.com/sse-broker/broker/pkg/sse"
)

// Follower follows one stream.
type Follower struct {
	Client *http.Client
	// URLs are the stream's events URLs on one or more nodes; the follower
	// starts on the first and picks one at random on every reconnect.
	URLs []string
	Seed uint64
	// MaxRead bounds the events read on one connection before it is
	// dropped (1 to MaxRead, at random); 0 means 400.
	MaxRead int
	// MaxConnections bounds the reconnects; 0 means 10,000.
	MaxConnections int
}

// Result is what a follower saw.
type Result struct {
	IDs         []uint64 // every event id received, in order (gap and stop excluded)
	Gaps        []string // data of every gap event
	Connections int
}

// Run follows the stream until it answers 204 (resumed at or after stop)
// and returns what it received. Connection errors (a node that died) count
// as drops: the follower reconnects elsewhere.
func (f *Follower) Run(ctx context.Context) (Result, error) {
	rng := rand.New(rand.NewPCG(f.Seed, 0x5eb))
	maxRead, maxConns := f.MaxRead, f.MaxConnections
	if maxRead == 0 {
		maxRead = 400
	}
	if maxConns == 0 {
		maxConns = 10000
	}
	var res Result
	last := ""
	url := f.URLs[0]
	for res.Connections < maxConns {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		res.Connections++
		done, err := f.connection(ctx, rng, url, &last, 1+rng.IntN(maxRead), &res)
		if err != nil {
			return res, err
		}
		if done {
			return res, nil
		}
		url = f.URLs[rng.IntN(len(f.URLs))]
	}
	return res, fmt.Errorf("no end after %d connections", maxConns)
}

// connection reads up to budget events from one connection. It reports
// done when the stream is over for this client (204).
func (f *Follower) connection(ctx context.Context, rng *rand.Rand, url string, last *string, budget int, res *Result) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // an abrupt drop, mid-stream
	target := url
	if *last != "" && rng.IntN(2) == 0 {
		target += "?lastEventId=" + *last // as EventSource's first connection would
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return false, err
	}
	if *last != "" && target == url {
		req.Header.Set("Last-Event-ID", *last)
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		return false, nil // a node down or a proxy error: reconnect
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent:
		return true, nil
	case http.StatusOK:
	default:
		return false, nil // e.g. 502 from the proxy while a node dies
	}
	dec := sse.NewDecoder(resp.Body)
	for budget > 0 {
		ev, err := dec.Next()
		if err != nil {
			return false, nil // the response ended (stop, drain, a dead node): resume
		}
		switch ev.Type {
		case "gap":
			res.Gaps = append(res.Gaps, ev.Data)
		case "stop":
			budget = 0
		default:
			id, err := strconv.ParseUint(ev.ID, 10, 64)
			if err != nil {
				return false, fmt.Errorf("event id %q: %w", ev.ID, err)
			}
			res.IDs = append(res.IDs, id)
			budget--
		}
		if ev.ID != "" {
			*last = ev.ID
		}
	}
	return false, nil
}

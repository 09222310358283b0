package api

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/httprate"

	"github.com/sse-broker/broker/pkg/auth"
)

// allowPublish counts events published by the request's subject (or client
// IP) against limits.publish_rate; its error maps to 429 with Retry-After.
// A batch of n events counts n.
func (s *Server) allowPublish(r *http.Request, events int) error {
	return s.publishLimit.allowRequest(r, events, "events published")
}

// allowSubscribe counts a new subscription against limits.subscribe_rate.
func (s *Server) allowSubscribe(r *http.Request) error {
	return s.subscribeLimit.allowRequest(r, 1, "new subscriptions")
}

// takePublish refuses, as allowPublish would, a request whose subject
// could not publish one event now; else it charges the n events a demo
// answer publishes over the next seconds (limiter.take), and returns what
// gives them back. The answer is charged as a debt, not counted as a
// batch: it is not stored at once, and a batch larger than a window's
// budget would be refused after any other publish (the page's create),
// however long the client waited. Check and charge are one step, so that answers asked
// for at once cannot all pass on the same budget before any is charged.
// An answer refused after it (the demo's places taken, a closed stream)
// calls refund, so that it costs nothing.
func (s *Server) takePublish(r *http.Request, events int) (refund func(), err error) {
	if s.publishLimit == nil {
		return func() {}, nil
	}
	key := subjectOf(r)
	c, err := s.publishLimit.take(key, events, time.Now(), "events published")
	if err != nil {
		return nil, err
	}
	return func() { s.publishLimit.refund(key, c, time.Now()) }, nil
}

// allowRequest counts n against l under r's subject. A limit that is off
// (nil, the default) lets everything through without building the key or
// reading the clock.
func (l *limiter) allowRequest(r *http.Request, n int, what string) error {
	if l == nil {
		return nil
	}
	return l.allow(subjectOf(r), n, time.Now(), what)
}

// subjectOf is the key a request is counted under: the token's subject
// when auth put verified claims in the context, else the client's IP.
//
// The IP is the connection's remote address; an IPv6 client is keyed by
// its /64, since it usually owns all of it. X-Forwarded-For is not
// trusted: any client can send it, and trusting it would let one client
// spread its requests over as many keys as it likes. Behind a proxy every
// request therefore shares the proxy's key; there, turn auth on (keys by
// subject) or rate-limit at the proxy.
func subjectOf(r *http.Request) string {
	if c, ok := auth.FromContext(r.Context()); ok && c.Subject != "" {
		return "sub:" + c.Subject
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + httprate.CanonicalizeIP(host)
}

// rateLimitError is a refusal by a limiter. It is errRateLimited (429)
// and says when the same request would pass.
type rateLimitError struct {
	msg        string
	retryAfter time.Duration
}

func (e *rateLimitError) Error() string             { return e.msg }
func (e *rateLimitError) Unwrap() error             { return errRateLimited }
func (e *rateLimitError) RetryAfter() time.Duration { return e.retryAfter }

// limiter is a sliding-window rate limit per key, built on httprate's
// in-memory LimitCounter: per key, the count of the current window and of
// the previous one, the previous weighted by how much of it still overlaps
// the last window length. Counting n at once (a batch of events) is
// IncrementBy.
//
// Memory stays bounded under any number of distinct keys: the counter
// stores a 64-bit hash per key (never the key), and drops every count
// older than the previous window when a new window starts. It holds at most
// the keys seen in two windows. The debts below hold their keys, one per
// key that sent an oversized batch, until paid.
//
// The check and the increment happen under one lock, so concurrent
// requests of one key cannot all pass on the same remaining budget.
//
// A batch larger than a whole window's budget is not refused for good: it
// passes when nothing of its key is counted, and becomes a debt (owing)
// that holds the key back for as long as its events take at the rate. So
// the long-run rate is the configured one, and every Retry-After is a time
// at which the same request passes.
type limiter struct {
	rate   float64       // per second, as configured
	limit  int           // per window
	window time.Duration // limit / rate

	mu      sync.Mutex
	counter httprate.LimitCounter
	// owing holds each key let through with more than limit events until
	// they are paid; paid entries go at most once a window.
	owing     map[string]time.Time
	sweptOwed time.Time
}

// Rates a limiter takes; the configuration refuses others (0 is no limit).
// Within them the window is between 1 s and 1,000 s and its count fits in
// an int32.
const (
	MinRate = 1e-3
	MaxRate = 1e9
)

// newLimiter returns the limiter of rate per second; nil (no limit) for
// rate <= 0. The window holds a whole number of requests: ceil(rate) in
// ceil(rate)/rate seconds (5/s: 5 per 1 s; 2.5/s: 3 per 1.2 s; 0.5/s: 1 per
// 2 s), so fractional rates are exact on average and the window is at
// least one second. A rate outside [MinRate, MaxRate] is taken as the
// nearer bound.
func newLimiter(rate float64) *limiter {
	if !(rate > 0) {
		return nil
	}
	rate = min(max(rate, MinRate), MaxRate)
	limit := max(1, math.Ceil(rate))
	window := time.Duration(limit / rate * float64(time.Second))
	return &limiter{
		rate:    rate,
		limit:   int(limit),
		window:  window,
		counter: httprate.NewLocalLimitCounter(window),
		owing:   make(map[string]time.Time),
	}
}

// allow counts n against key at now, or refuses with a *rateLimitError
// (nothing counted) when that would exceed the limit. A nil limiter allows
// everything. what names the counted thing in the error message.
func (l *limiter) allow(key string, n int, now time.Time, what string) error {
	if l == nil {
		return nil
	}
	now = now.UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.refusal(key, n, now, what); err != nil {
		return err
	}
	if n > l.limit {
		// Nothing of key is counted (waitFor saw to it): the batch is
		// paid for by holding key back as long as n events take at the
		// rate, not by the window, which forgets after two.
		l.owing[key] = now.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	} else {
		// The local counter never fails.
		_ = l.counter.IncrementBy(key, now.Truncate(l.window), n)
	}
	l.sweepOwing(now)
	return nil
}

// refusal is the *rateLimitError of n events of key at now, nil when they
// fit; l.mu is held.
func (l *limiter) refusal(key string, n int, now time.Time, what string) error {
	if wait := l.waitFor(key, n, now); wait > 0 {
		return &rateLimitError{msg: fmt.Sprintf("more than %g %s per second", l.rate, what), retryAfter: wait}
	}
	return nil
}

// take refuses with a *rateLimitError (nothing counted) when one event
// of key would not be allowed at now; else it counts n events of key at
// now, whatever fits: key is held back until those n and what the window
// already counts for it would have taken at the rate, as a batch's debt
// holds it back. So a client that fills its budget and then has a demo
// answer charged never gets past the rate in the long run (counting n in
// the window instead let it reach 1.4-1.7 times the rate: the window
// forgets after two). It returns what it charged, for refund.
func (l *limiter) take(key string, n int, now time.Time, what string) (charge, error) {
	now = now.UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.refusal(key, 1, now, what); err != nil {
		return charge{}, err
	}
	from := now
	if until, ok := l.owing[key]; ok && until.After(from) {
		from = until
	}
	debt := l.used(key, now) + float64(n)
	until := from.Add(time.Duration(debt / l.rate * float64(time.Second)))
	l.owing[key] = until
	l.sweepOwing(now)
	return charge{until: until, held: until.Sub(from)}, nil
}

// charge is what one take did: it held its key back until until, held
// longer than before.
type charge struct {
	until time.Time
	held  time.Duration
}

// refund undoes the take that made c, as far as c is still owed: once
// key's hold is no longer the one c set, c was served (nothing of key
// passes while it is held back, so nothing else sets its hold before),
// and what was charged since, another take or a batch, stays owed.
func (l *limiter) refund(key string, c charge, now time.Time) {
	now = now.UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	until, ok := l.owing[key]
	if !ok || !until.Equal(c.until) {
		return
	}
	if until = until.Add(-c.held); until.After(now) {
		l.owing[key] = until
	} else {
		delete(l.owing, key)
	}
}

// used is what the sliding window counts for key at now: the current
// window's count and the overlapping part of the previous one's.
func (l *limiter) used(key string, now time.Time) float64 {
	curCount, prevCount, into := l.counts(key, now)
	return l.weighted(curCount, prevCount, into)
}

// counts are key's counts of the current and the previous window at now,
// and how far into the current window now is.
func (l *limiter) counts(key string, now time.Time) (curCount, prevCount int, into time.Duration) {
	cur := now.Truncate(l.window)
	curCount, prevCount, _ = l.counter.Get(key, cur, cur.Add(-l.window))
	return curCount, prevCount, now.Sub(cur)
}

// weighted is the sliding window's count: the current window's and the
// previous one's as far as it still overlaps the last window length.
func (l *limiter) weighted(curCount, prevCount int, into time.Duration) float64 {
	return float64(prevCount)*float64(l.window-into)/float64(l.window) + float64(curCount)
}

// waitFor is how long until n events of key fit: 0 when they fit at now.
// A batch larger than the budget needs the whole window free.
func (l *limiter) waitFor(key string, n int, now time.Time) time.Duration {
	if until, ok := l.owing[key]; ok && now.Before(until) {
		// The counter answers for a later time too: it keeps two windows
		// and nothing of key is counted until then.
		return until.Sub(now) + l.waitFor(key, n, until)
	}
	need := min(n, l.limit)
	curCount, prevCount, into := l.counts(key, now)
	if l.weighted(curCount, prevCount, into)+float64(need) <= float64(l.limit)+1e-9 {
		return 0
	}
	return l.wait(curCount, prevCount, into, need)
}

// sweepOwing drops paid debts, at most once a window, so keys that never
// come back do not stay.
func (l *limiter) sweepOwing(now time.Time) {
	if len(l.owing) == 0 || now.Sub(l.sweptOwed) < l.window {
		return
	}
	l.sweptOwed = now
	for key, until := range l.owing {
		if !now.Before(until) {
			delete(l.owing, key)
		}
	}
}

// wait is how long until n more fit, if nothing else is counted meanwhile
// (0 < n <= limit, and n does not fit now). The weight of the previous
// window's count falls linearly to 0 at the end of the current window, then
// the current window's count becomes the previous one and falls likewise.
func (l *limiter) wait(curCount, prevCount int, into time.Duration, n int) time.Duration {
	w := float64(l.window)
	if room := l.limit - curCount - n; room >= 0 && prevCount > 0 {
		// Fits within the current window once prev*(w-t)/w <= room.
		at := w * (1 - float64(room)/float64(prevCount))
		return time.Duration(math.Ceil(at)) - into
	}
	// Fits in the next window once cur*(w-t)/w <= limit-n.
	at := w * (1 - float64(l.limit-n)/float64(curCount))
	return l.window - into + time.Duration(math.Ceil(at))
}

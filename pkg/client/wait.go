package client

import (
	"errors"
	"math/rand/v2"
	"time"
)

// Waits between tries.
const (
	// defaultRetry is the reconnection time until the server's retry:
	// field is known (the WHATWG default is implementation-defined; the
	// broker's default is 3s).
	defaultRetry = 3 * time.Second
	// publishBackoffBase doubles on each failed publish attempt, up to
	// publishBackoffMax.
	publishBackoffBase = 200 * time.Millisecond
	publishBackoffMax  = 5 * time.Second
	// maxRetryAfter caps a Retry-After, and a retry: field, so a
	// misconfigured proxy cannot park a client for hours.
	maxRetryAfter = 5 * time.Minute
	// minReconnect is the shortest pause before a reconnect, whatever
	// retry: says (0 would reconnect in a tight loop). It is small, since
	// a server may mean a short retry:; a server that keeps failing or
	// ending connections at once meets the backoff instead: every
	// connection in a row that brought no event doubles the pause, up to
	// maxReconnect.
	minReconnect = 10 * time.Millisecond
	maxReconnect = 30 * time.Second
)

// spread returns d × [0.5, 1.5): the mean stays what the server asked for,
// and clients cut at the same moment do not all come back at once.
func spread(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d+1)
}

// atLeast returns d plus up to 20% more: for Retry-After, which is a
// minimum the server set.
func atLeast(d time.Duration) time.Duration {
	d = min(d, maxRetryAfter)
	return d + rand.N(d/5+1)
}

// publishBackoff is the wait after the attempt-th failed publish: the
// answer's Retry-After when it has one, else an exponential backoff.
func publishBackoff(attempt int, err error) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return atLeast(ae.RetryAfter)
	}
	d := publishBackoffBase << min(attempt-1, 10)
	return spread(min(d, publishBackoffMax))
}

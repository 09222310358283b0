// Package auth verifies the broker's JWTs and decides what a token may do
// with a stream (SPEC.md, "Security").
package auth

import "time"

// Right is what a token may do with a stream: publish covers publish,
// close and delete; subscribe covers subscribe, stream info and history.
type Right int

const (
	Publish Right = iota
	Subscribe
)

// Claims are what the broker uses of a verified token.
type Claims struct {
	Subject   string
	ExpiresAt time.Time // zero: no exp claim
	Publish   []string  // stream patterns; * matches any run of characters
	Subscribe []string
}

// Verifier checks tokens with one pinned algorithm and key.
type Verifier struct{}

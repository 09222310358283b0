package api

import (
	"sync"
	"time"
)

// writeDeadliner is what a subscriber's writes go through: a taken-over
// net.Conn, or net/http's ResponseController.
type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// liveWriters is the set of event streams net/http serves (subscriptions
// over TLS, HTTP/2 or HTTP/1.0, and /admin/api/live), so that Shutdown can cut short a write blocked on a client that
// stopped reading: without that, one such client holds the drain for the
// whole subscriberWriteTimeout. (parkRegistry.cutWrites does the same for
// the taken-over ones.)
type liveWriters struct {
	mu  sync.Mutex
	set map[writeDeadliner]struct{}
}

func (lw *liveWriters) add(d writeDeadliner) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.set == nil {
		lw.set = make(map[writeDeadliner]struct{})
	}
	lw.set[d] = struct{}{}
}

// remove must come before the handler that owns d returns: net/http's
// HTTP/2 ResponseController cannot be used after that, and cut holds the
// lock while it uses it.
func (lw *liveWriters) remove(d writeDeadliner) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	delete(lw.set, d)
}

// cut moves every write deadline to at most d from now.
func (lw *liveWriters) cut(d time.Duration) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	deadline := time.Now().Add(d)
	for w := range lw.set {
		_ = w.SetWriteDeadline(deadline)
	}
}

// armWriteDeadline bounds the write about to start on d: writeTimeout,
// or drainWriteTimeout once the broker drains. The flag is read after the
// deadline is set, because Shutdown sets the flag before it cuts: either
// its cut comes after this deadline, or this sees the flag.
func (s *Server) armWriteDeadline(d writeDeadliner) {
	_ = d.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	if s.isDraining.Load() {
		_ = d.SetWriteDeadline(time.Now().Add(drainWriteTimeout))
	}
}

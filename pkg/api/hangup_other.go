//go:build !linux

package api

// hangupWatcher has no epoll here: a parked subscription's vanished client
// is noticed at its next heartbeat (the peek) or write.
type hangupWatcher struct{}

func (*hangupWatcher) watch(*parkedSubscription)   {}
func (*hangupWatcher) unwatch(*parkedSubscription) {}

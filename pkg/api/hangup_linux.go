//go:build linux

package api

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
)

// hangupWatcher notices at once, without a goroutine per connection, that
// the client of a parked subscription has hung up. One goroutine waits in
// epoll(7) for EPOLLRDHUP (the client's FIN) or EPOLLHUP/EPOLLERR (a
// reset) on every parked connection, and wakes that subscription, which
// then ends. Without it a vanished client would keep its place (in
// subscribers.max, the metrics, a stream's subscriber count, idle expiry)
// until its next heartbeat: a browser back after a network blip could be
// refused with 503 while nobody is really connected.
//
// The epoll instance is this watcher's own, next to the Go runtime's: a
// socket may be in several. The goroutine runs while at least one
// connection is watched, like the heartbeat clock.
type hangupWatcher struct {
	mu   sync.Mutex
	loop *hangupLoop // nil: no goroutine runs
	subs map[uint64]*parkedSubscription
	last uint64 // the last key issued; 0 is the loop's own wake-up pipe
}

// hangupLoop is one run of the waiting goroutine: its epoll instance and
// the pipe that stops it.
type hangupLoop struct {
	epfd, wakeR, wakeW int
}

// hangupEvents fire once per connection (EPOLLONESHOT).
const hangupEvents = syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR | syscall.EPOLLONESHOT

// watch starts watching p's connection. When it cannot (no socket, or
// epoll failed), p's client is noticed at its next heartbeat, as on other
// systems.
func (w *hangupWatcher) watch(p *parkedSubscription) {
	if p.raw == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.loop == nil {
		loop, err := startHangupLoop(w)
		if err != nil {
			p.log.Debug().Err(err).Msg("hang-ups noticed at heartbeats only")
			return
		}
		w.loop, w.subs = loop, make(map[uint64]*parkedSubscription)
	}
	w.last++
	key := w.last
	ev := syscall.EpollEvent{Events: hangupEvents, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
	var err error
	if cerr := p.raw.Control(func(fd uintptr) {
		err = syscall.EpollCtl(w.loop.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		p.log.Debug().Err(err).Msg("hang-up not watched")
		w.stopIfIdle()
		return
	}
	w.subs[key] = p
	p.hangupKey = key
}

// unwatch stops watching p's connection. It must run before the
// connection is closed, while its descriptor is still p's.
func (w *hangupWatcher) unwatch(p *parkedSubscription) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p.hangupKey == 0 || w.subs[p.hangupKey] != p {
		return
	}
	delete(w.subs, p.hangupKey)
	p.hangupKey = 0
	_ = p.raw.Control(func(fd uintptr) {
		_ = syscall.EpollCtl(w.loop.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
	w.stopIfIdle()
}

// stopIfIdle stops the goroutine when nothing is watched; w.mu is held.
func (w *hangupWatcher) stopIfIdle() {
	if len(w.subs) == 0 && w.loop != nil {
		_, _ = syscall.Write(w.loop.wakeW, []byte{1})
		w.loop = nil
	}
}

// hungUp wakes the subscription whose connection the event with key is
// about. The event fires once (EPOLLONESHOT); the subscription ends in
// its delivery goroutine and unwatches itself there.
func (w *hangupWatcher) hungUp(key uint64) {
	w.mu.Lock()
	p := w.subs[key]
	w.mu.Unlock()
	if p != nil {
		p.hangup.Store(true)
		p.wake()
	}
}

// abandon forgets l, whose goroutine is about to exit on an error, with
// every connection it watched: they are noticed at their heartbeats, and
// the next watch starts a new loop. Nothing uses l's descriptors after.
func (w *hangupWatcher) abandon(l *hangupLoop) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.loop != l {
		return // already stopped: its subscriptions are gone
	}
	for _, p := range w.subs {
		p.hangupKey = 0
	}
	w.loop, w.subs = nil, nil
}

func startHangupLoop(w *hangupWatcher) (*hangupLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	loop := &hangupLoop{epfd: epfd, wakeR: pipe[0], wakeW: pipe[1]}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN} // key 0
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, loop.wakeR, &ev); err != nil {
		loop.close()
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	go loop.run(w)
	return loop, nil
}

// run waits for hang-ups until the wake-up pipe is written, then releases
// the loop's descriptors. It blocks one OS thread in epoll_wait, which the
// runtime replaces for the goroutines.
func (l *hangupLoop) run(w *hangupWatcher) {
	defer l.close()
	events := make([]syscall.EpollEvent, 64)
	for {
		n, err := syscall.EpollWait(l.epfd, events, -1)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil { // not expected with a valid epfd
			w.abandon(l)
			return
		}
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if key == 0 {
				return
			}
			w.hungUp(key)
		}
	}
}

func (l *hangupLoop) close() {
	_ = syscall.Close(l.epfd)
	_ = syscall.Close(l.wakeR)
	_ = syscall.Close(l.wakeW)
}

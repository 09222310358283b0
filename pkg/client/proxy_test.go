package client_test

import (
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// plan says how the proxy treats one connection; the zero plan relays
// faithfully.
type plan struct {
	// cutAfterBytes closes both sides once this many bytes of the answer
	// were relayed (the last piece may be cut in the middle).
	cutAfterBytes int
	// cutAfter closes both sides after this long.
	cutAfter time.Duration
	// dropAnswer relays the request but, when the answer starts to come,
	// relays none of it and closes both sides: the broker did the work,
	// the client never hears of it.
	dropAnswer bool
	// freezeAfterReads relays this many reads of the answer, then relays
	// nothing more and keeps both sides open: a connection dead without a
	// word.
	freezeAfterReads int
}

// proxy is a TCP proxy in front of the broker that injects faults by
// plan, one plan per accepted connection.
type proxy struct {
	URL      string
	target   string
	planFor  func(conn int) plan
	ln       net.Listener
	conns    atomic.Int64 // connections accepted
	byteCuts atomic.Int64 // connections cut by cutAfterBytes
	timeCuts atomic.Int64 // connections cut by cutAfter while still open
	drops    atomic.Int64 // answers dropped
	freezes  atomic.Int64 // connections frozen

	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// startProxy runs a proxy to the broker at brokerURL until the test ends.
func startProxy(t *testing.T, brokerURL string, planFor func(conn int) plan) *proxy {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{URL: "http://" + ln.Addr().String(), target: u.Host, planFor: planFor, ln: ln, open: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.open {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

// track remembers c so that close can end it; false once the proxy is
// closed.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.open[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		n := int(p.conns.Add(1))
		p.wg.Add(1)
		go p.serve(down, p.planFor(n))
	}
}

// serve relays one connection according to pl.
func (p *proxy) serve(down net.Conn, pl plan) {
	defer p.wg.Done()
	if !p.track(down) {
		return
	}
	defer p.untrack(down)
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)

	var once sync.Once
	cut := func() { once.Do(func() { _ = down.Close(); _ = up.Close() }) }
	if pl.cutAfter > 0 {
		var done atomic.Bool
		timer := time.AfterFunc(pl.cutAfter, func() {
			if !done.Load() {
				p.timeCuts.Add(1)
			}
			cut()
		})
		defer func() { done.Store(true); timer.Stop() }()
	}

	// Requests flow down → up untouched; the client's hang-up ends the
	// connection.
	clientGone := make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(clientGone)
		_, _ = io.Copy(up, down)
		cut()
	}()

	// Answers flow up → down by plan.
	buf := make([]byte, 512)
	relayed, reads := 0, 0
	for {
		n, err := up.Read(buf)
		if n > 0 {
			reads++
			switch {
			case pl.dropAnswer:
				p.drops.Add(1)
				cut()
				return
			case pl.cutAfterBytes > 0 && relayed+n >= pl.cutAfterBytes:
				_, _ = down.Write(buf[:pl.cutAfterBytes-relayed])
				p.byteCuts.Add(1)
				cut()
				return
			}
			if _, werr := down.Write(buf[:n]); werr != nil {
				cut()
				return
			}
			relayed += n
			if pl.freezeAfterReads > 0 && reads >= pl.freezeAfterReads {
				p.freezes.Add(1)
				// Relay nothing more, and hold the client's side open even
				// when the broker ends its side, until the client gives up
				// or the test ends.
				_, _ = io.Copy(io.Discard, up)
				<-clientGone
				return
			}
		}
		if err != nil {
			cut()
			return
		}
	}
}

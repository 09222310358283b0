package redisstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sse-broker/broker/pkg/broker"
)

// pingInterval is how often the feed pings Redis through its own
// connection; a feed that hears nothing for pingInterval+timeout is dead.
func (s *Store) pingInterval() time.Duration {
	return min(max(s.timeout/2, 50*time.Millisecond), 5*time.Second)
}

// runFeed keeps this node subscribed to the feed channel until Close. up is
// closed at the first subscription.
func (s *Store) runFeed(up chan struct{}) {
	defer s.wg.Done()
	backoff := 50 * time.Millisecond
	lost := time.Now() // when the feed was last lost (or first tried)
	for !s.closed.Load() {
		subscribed, err := s.feedOnce(up)
		if s.closed.Load() {
			return
		}
		if s.feedUp.Swap(false) {
			lost = time.Now()
			s.log.Error().Err(err).Msg("redis event feed lost; local subscribers will resume from history")
		} else {
			s.log.Debug().Err(err).Msg("redis event feed not subscribed")
		}
		if s.answers() || time.Since(lost) >= s.outageGrace() {
			s.fan.EndAll()
		}
		if subscribed {
			backoff = 50 * time.Millisecond
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// A failed feed attempt ends the local subscribers when Redis answers
// commands: only the feed is down, publishes go on, and these subscribers
// would get nothing live. Ended, they come back after retry: and read
// what was published meanwhile, so a feed that stays down costs them
// delay, never events.
//
// When Redis does not answer this node, subscribers stay for
// outageGrace (30 s by default) from when the feed noticed: a Redis that
// restarts, loading its AOF, takes no publish meanwhile, and a
// reconnect would meet 503 store_unavailable, on which EventSource gives
// up for good. Past it they are ended all the same: other nodes may still
// reach Redis and publish (this node alone is cut off), and the clients
// had better move to one of them. The subscription that restores the feed
// ends them all anyway (feedOnce), to resume.
func (s *Store) outageGrace() time.Duration { return 15 * s.timeout }

// answers reports whether Redis answers a command within the timeout.
func (s *Store) answers() bool {
	ctx, cancel := s.opCtx()
	defer cancel()
	return s.rdb.Ping(ctx).Err() == nil
}

// feedOnce subscribes, delivers until the subscription fails, and reports
// whether it got as far as a confirmed subscription.
func (s *Store) feedOnce(up chan struct{}) (bool, error) {
	ps := s.rdb.Subscribe(s.ctx)
	s.psMu.Lock()
	if s.closed.Load() {
		s.psMu.Unlock()
		_ = ps.Close()
		return false, errors.New("store closed")
	}
	s.ps = ps
	s.psMu.Unlock()
	defer func() {
		s.psMu.Lock()
		s.ps = nil
		s.psMu.Unlock()
		_ = ps.Close()
	}()

	ctx, cancel := s.opCtx()
	err := ps.Subscribe(ctx, s.channel)
	cancel()
	if err != nil {
		return false, err
	}
	msg, err := ps.ReceiveTimeout(s.ctx, s.timeout)
	if err != nil {
		return false, err
	}
	if sub, ok := msg.(*redis.Subscription); !ok || sub.Kind != "subscribe" {
		return false, fmt.Errorf("unexpected first message %v", msg)
	}
	// From here on every PUBLISH reaches this node. Subscribers that read
	// history before this point may have missed events: end them all so
	// they resume. (No-op at start, when there are none.)
	s.feedUp.Store(true)
	s.fan.EndAll()
	select {
	case <-up:
		s.log.Info().Msg("redis event feed subscribed again")
	default:
		close(up)
		s.log.Debug().Str("channel", s.channel).Msg("redis event feed subscribed")
	}
	if s.closed.Load() {
		return true, nil
	}

	stopPing := make(chan struct{})
	defer close(stopPing)
	every := s.pingInterval()
	go s.pingFeed(ps, every, stopPing)
	return true, s.receive(ps, every+s.timeout)
}

// pingFeed pings the feed's connection every interval until stop closes,
// so that a connection Redis no longer serves shows as silence in receive.
func (s *Store) pingFeed(ps *redis.PubSub, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := s.opCtx()
			_ = ps.Ping(ctx) // a failure shows as a receive error or silence
			cancel()
		}
	}
}

// receive hands the feed's frames to this node until the feed fails, is
// silent for longer than silence (pings answer within it), or cannot be
// trusted any more.
func (s *Store) receive(ps *redis.PubSub, silence time.Duration) error {
	for {
		msg, err := ps.ReceiveTimeout(s.ctx, silence)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *redis.Message:
			if err := s.handle(m.Payload); err != nil {
				// A frame this node cannot read is a frame its subscribers
				// miss: start over, which ends them.
				return err
			}
		case *redis.Subscription:
			// go-redis re-subscribed on its own after a broken connection:
			// events may have been lost meanwhile.
			return fmt.Errorf("the feed connection was re-established (%s)", m)
		}
	}
}

// handle decodes one feed message and hands it to this node's fan-out.
func (s *Store) handle(p string) error {
	if p == "" {
		return errors.New("empty feed message")
	}
	switch p[0] {
	case 'D':
		s.fan.End(p[1:])
		return nil
	case 'F':
	default:
		return fmt.Errorf("unknown feed message kind %q", p[0])
	}
	var wanted func(string) bool // nil: decode every frame
	if s.hub != nil {
		wanted = func(stream string) bool { return s.hub.Subscribers(stream) > 0 }
	}
	f, err := decodeFrame(p, wanted)
	if err != nil {
		return err
	}
	s.seen(f.lastID)
	if f.events == nil {
		s.hub.Passed(f.stream, f.count, f.lastID)
		return nil
	}
	s.fan.Deliver(broker.EncodeFrame(f.stream, f.events, f.final))
	return nil
}

// feedFrame is a decoded "F" message.
type feedFrame struct {
	stream string
	final  bool
	count  int    // events in the frame
	lastID uint64 // the last event's
	// events are the frame's events, nil when it was not wanted.
	events []broker.Event
}

// decodeFrame parses an "F" message:
//
//	F <final 0|1> <len>:<stream> { <entry id> ' ' <len>:<name> <len>:<data> }
//
// When wanted (nil: always) says no for the stream, as it does on a node
// with no subscriber of it, only the count and the last id are taken: most
// frames of a busy cluster are for streams a node does not serve.
func decodeFrame(p string, wanted func(stream string) bool) (feedFrame, error) {
	bad := func(why string) (feedFrame, error) {
		return feedFrame{}, fmt.Errorf("bad feed frame: %s", why)
	}
	if len(p) < 3 || (p[1] != '0' && p[1] != '1') {
		return bad("header")
	}
	f := feedFrame{final: p[1] == '1'}
	stream, rest, err := lenPrefixed(p[2:])
	if err != nil {
		return bad("stream: " + err.Error())
	}
	f.stream = stream
	decode := wanted == nil || wanted(stream)
	var lastID string
	for rest != "" {
		sp := strings.IndexByte(rest, ' ')
		if sp < 0 {
			return bad("id")
		}
		lastID = rest[:sp]
		var name, data string
		if name, rest, err = lenPrefixed(rest[sp+1:]); err != nil {
			return bad("name: " + err.Error())
		}
		if data, rest, err = lenPrefixed(rest); err != nil {
			return bad("data: " + err.Error())
		}
		f.count++
		if decode {
			id, err := parseRedisID(lastID)
			if err != nil {
				return bad(err.Error())
			}
			f.events = append(f.events, broker.Event{ID: id, Name: name, Data: data, Time: idTime(id)})
		}
	}
	if lastID == "" {
		return bad("no events")
	}
	if f.lastID, err = parseRedisID(lastID); err != nil {
		return bad(err.Error())
	}
	return f, nil
}

// lenPrefixed splits "<len>:<len bytes>rest".
func lenPrefixed(p string) (string, string, error) {
	colon := strings.IndexByte(p, ':')
	if colon < 1 {
		return "", "", errors.New("no length")
	}
	n, err := strconv.Atoi(p[:colon])
	if err != nil || n < 0 || n > len(p)-colon-1 {
		return "", "", errors.New("bad length")
	}
	return p[colon+1 : colon+1+n], p[colon+1+n:], nil
}

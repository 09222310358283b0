package redisstore

import (
	"context"
	"time"
)

// Janitor batch sizes: each tick trims at most sweepBudget streams by age
// (continuing a ZSCAN of sseb:streams across ticks) and forgets at most
// expiredBatch expired streams, so that no tick holds Redis for long.
const (
	sweepBatch   = 100
	sweepBudget  = 1000
	expiredBatch = 100
	touchBatch   = 200
)

func (s *Store) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.timeout)
}

func (s *Store) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SweepInterval())
	defer t.Stop()
	var cursor uint64
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.touch()
		s.forgetExpired()
		cursor = s.trimSome(cursor)
	}
}

// watch notes that stream is read on this node, possibly by a subscriber.
func (s *Store) watch(stream string) {
	s.watchMu.Lock()
	if _, ok := s.watched[stream]; !ok {
		s.watched[stream] = time.Time{}
	}
	s.watchMu.Unlock()
}

// renewEvery is how often the janitor renews watched streams.
func (s *Store) renewEvery() time.Duration { return s.opts.IdleTTL / 4 }

// renewMS is the TTL a renewal gives a watched stream's keys: the idle TTL
// plus one renewal period (and one janitor tick). The last subscriber may
// leave just before the renewal that would have followed, and the stream
// must still outlive it by the whole idle TTL, as in the other stores
// (broker.StoreOptions.IdleSince).
func (s *Store) renewMS() int64 {
	return s.idleTTLMS + (s.renewEvery() + s.opts.SweepInterval()).Milliseconds()
}

// touch renews the idle TTL of streams with subscribers on this node, a
// quarter TTL after the last renewal (at once for newly watched ones), and
// forgets watched streams without subscribers.
func (s *Store) touch() {
	now := time.Now()
	every := s.renewEvery()
	ttlMS := s.renewMS()
	var due []string
	s.watchMu.Lock()
	for name, at := range s.watched {
		switch {
		case s.fan.Subscribers(name) == 0:
			delete(s.watched, name)
		case now.Sub(at) >= every:
			due = append(due, name)
		}
	}
	s.watchMu.Unlock()
	for len(due) > 0 {
		batch := due[:min(len(due), touchBatch)]
		due = due[len(batch):]
		keys := make([]string, 0, 1+4*len(batch))
		args := make([]any, 0, 1+len(batch))
		keys = append(keys, keyStreams)
		args = append(args, ttlMS)
		for _, name := range batch {
			k := keysOf(name)
			keys = append(keys, k.meta, k.x, k.idem, k.order)
			args = append(args, name)
		}
		ctx, cancel := s.opCtx()
		err := scriptTouch.Run(ctx, s.rdb, keys, args...).Err()
		cancel()
		if err != nil {
			s.log.Debug().Err(err).Msg("janitor: renewing the TTL of watched streams")
			return
		}
		s.watchMu.Lock()
		for _, name := range batch {
			if _, ok := s.watched[name]; ok {
				s.watched[name] = now
			}
		}
		s.watchMu.Unlock()
	}
}

// forgetExpired removes streams whose keys expired from sseb:streams and
// ends their subscriptions everywhere.
func (s *Store) forgetExpired() {
	ctx, cancel := s.opCtx()
	defer cancel()
	names, err := scriptExpired.Run(ctx, s.rdb, []string{keyStreams}, s.channel, expiredBatch, s.idleTTLMS).StringSlice()
	if err != nil {
		s.log.Debug().Err(err).Msg("janitor: forgetting expired streams")
		return
	}
	for _, name := range names {
		s.log.Info().Str("stream", name).Msg("stream expired")
	}
}

// trimSome trims up to sweepBudget streams by age, continuing the scan at
// cursor, and returns where the next tick continues.
func (s *Store) trimSome(cursor uint64) uint64 {
	for done := 0; done < sweepBudget; {
		ctx, cancel := s.opCtx()
		pairs, next, err := s.rdb.ZScan(ctx, keyStreams, cursor, "", sweepBatch).Result()
		if err == nil && len(pairs) > 0 {
			keys := make([]string, 0, 2*len(pairs))
			for i := 0; i < len(pairs); i += 2 {
				k := keysOf(pairs[i])
				keys = append(keys, k.meta, k.x, k.idem, k.order)
			}
			err = scriptTrim.Run(ctx, s.rdb, keys, s.maxAgeMS).Err()
		}
		cancel()
		if err != nil {
			s.log.Debug().Err(err).Msg("janitor: trimming by age")
			return cursor
		}
		done += len(pairs) / 2
		cursor = next
		if cursor == 0 {
			return 0 // a whole round: wait for the next tick
		}
	}
	return cursor
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/sse"
	"github.com/sse-broker/broker/web"
)

// Bounds of the operator's page.
const (
	// adminMaxStreams bounds the streams one snapshot lists, each with one
	// store Info call (a round trip on a shared store).
	adminMaxStreams = 100
	// adminInfoTimeout bounds all the Info calls of one snapshot together:
	// a store that does not answer costs the page one wait, not one each.
	adminInfoTimeout = 2 * time.Second
	// adminLiveInterval is how often /admin/api/live sends a snapshot;
	// one snapshot is shared between the viewers that ask within half of
	// it (see adminShared.get).
	adminLiveInterval = time.Second
	// adminLiveMax bounds the live pages one node serves at once: they
	// are not subscribers, so subscribers.max does not count them.
	adminLiveMax = 64
)

// mountAdmin serves the operator's page, read-only:
//
//	GET /admin              the page (web/admin.html)
//	GET /admin/api/streams  a JSON snapshot: the node, and its busiest streams
//	GET /admin/api/live     the same snapshot as an SSE event every second
//
// With auth off, anyone who can reach the listener may read it, like
// /metrics. With auth on, every route needs a valid token (Bearer header,
// access_token query parameter or cookie; else 401) whose subscribe
// patterns include exactly "*", the right to read every stream (else
// 403): the page shows every stream's name, rates and last id, and watches
// any of them.
func (s *Server) mountAdmin(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate, s.requireRight(maySubscribeEverywhere, `the operator's page needs a token whose subscribe patterns include "*"`))
		r.Get("/admin", s.adminPage)
		r.Get("/admin/", s.adminPage)
		r.Get("/admin/api/streams", s.adminStreams)
		r.Get("/admin/api/live", s.adminLive)
	})
}

// maySubscribeEverywhere: only the pattern "*" itself grants reading every
// stream; patterns such as "a*" plus "b*" would need a proof of coverage,
// and an operator's token is made for the purpose.
func maySubscribeEverywhere(c auth.Claims) bool { return slices.Contains(c.Subscribe, "*") }

func (s *Server) adminPage(w http.ResponseWriter, _ *http.Request) {
	setPageHeaders(w.Header(), "no-store")
	_, _ = w.Write(web.AdminPage)
}

// adminSnapshot is the JSON of /admin/api/streams and of each event of
// /admin/api/live.
type adminSnapshot struct {
	Node    adminNode     `json:"node"`
	Streams []adminStream `json:"streams"`
}

// adminNode describes this node. Rates are events per second over the
// last rate_window_seconds: publish_rate counts every stored event of the
// tracked streams (on any node, for a shared store), delivery_rate events
// handed to this node's subscribers.
type adminNode struct {
	Time              string  `json:"time"`
	StartedAt         string  `json:"started_at"`
	UptimeSeconds     int64   `json:"uptime_seconds"`
	Draining          bool    `json:"draining"`
	Subscribers       int     `json:"subscribers"`
	Streams           int     `json:"streams"`
	ActiveStreams     int     `json:"active_streams"`
	PublishRate       float64 `json:"publish_rate"`
	DeliveryRate      float64 `json:"delivery_rate"`
	RateWindowSeconds int     `json:"rate_window_seconds"`
	EventsPublished   uint64  `json:"events_published"`
	SlowDisconnects   uint64  `json:"slow_disconnects"`
	StoreErrors       uint64  `json:"store_errors"`
}

// adminStream is one stream. Subscribers, rates and counts are this node's
// view (see broker.StreamActivity); retained, first_id, closed and exists
// are the store's, and retained and first_id are null when the store did
// not answer.
type adminStream struct {
	Stream       string  `json:"stream"`
	Subscribers  int     `json:"subscribers"`
	PublishRate  float64 `json:"publish_rate"`
	DeliveryRate float64 `json:"delivery_rate"`
	Published    uint64  `json:"published"`
	Delivered    uint64  `json:"delivered"`
	LastID       *string `json:"last_id"`
	Retained     *int    `json:"retained"`
	FirstID      *string `json:"first_id"`
	Closed       bool    `json:"closed"`
	Exists       bool    `json:"exists"`
	LastActive   string  `json:"last_active"`
}

func (s *Server) adminStreams(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, s.adminSnapshot(r.Context()))
}

// adminShared shares snapshots between the live operator's pages (at most
// two are made a second, whatever the number of viewers): each costs a
// sort of the tracked streams and up to adminMaxStreams store Info calls,
// so viewers must not multiply it. (The JSON endpoint makes its own: a
// script asks once, and wants it fresh.)
type adminShared struct {
	// live counts the /admin/api/live streams being served.
	live atomic.Int32

	mu   sync.Mutex // held while a snapshot is made: the others wait for it
	at   time.Time
	data []byte // the snapshot as JSON with a final newline
}

// get returns the snapshot, made by build unless one was started less
// than half adminLiveInterval before this call: a viewer asks once an
// interval, and must get a new one each time, also when making one takes
// a while (up to adminInfoTimeout). The reader's cancellation does not
// cut the store calls short: the snapshot is for every reader.
func (a *adminShared) get(ctx context.Context, build func(context.Context) adminSnapshot) []byte {
	asked := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.data != nil && asked.Sub(a.at) < adminLiveInterval/2 {
		return a.data
	}
	started := time.Now()
	data, err := json.Marshal(build(context.WithoutCancel(ctx)))
	if err != nil { // plain structs: cannot happen
		return []byte("{}\n")
	}
	a.at, a.data = started, append(data, '\n')
	return a.data
}

// adminSnapshot joins the hub's activity with the store's truth about the
// busiest streams.
func (s *Server) adminSnapshot(ctx context.Context) adminSnapshot {
	now := time.Now()
	stats := s.broker.Stats()
	act := s.broker.Activity(adminMaxStreams)
	snap := adminSnapshot{
		Node: adminNode{
			Time:              formatTime(now),
			StartedAt:         formatTime(act.Since),
			UptimeSeconds:     int64(now.Sub(act.Since) / time.Second),
			Draining:          s.isDraining.Load(),
			Subscribers:       stats.Subscribers,
			Streams:           stats.Streams,
			ActiveStreams:     act.Tracked,
			PublishRate:       act.PublishRate,
			DeliveryRate:      act.DeliveryRate,
			RateWindowSeconds: int(broker.ActivityWindow / time.Second),
			EventsPublished:   stats.EventsPublished,
			SlowDisconnects:   stats.SlowDisconnects,
			StoreErrors:       stats.StoreErrors,
		},
		Streams: make([]adminStream, 0, len(act.Streams)),
	}
	ctx, cancel := context.WithTimeout(ctx, adminInfoTimeout)
	defer cancel()
	storeAnswers := true
	for _, a := range act.Streams {
		st := adminStream{
			Stream: a.Stream, Subscribers: a.Subscribers,
			PublishRate: a.PublishRate, DeliveryRate: a.DeliveryRate,
			Published: a.Published, Delivered: a.Delivered,
			LastID: optionalID(a.LastID), Exists: true, LastActive: formatTime(a.LastActive),
		}
		if storeAnswers {
			in, err := s.broker.Info(ctx, a.Stream)
			switch {
			case errors.Is(err, broker.ErrStreamNotFound):
				// Subscribers waiting for a first publish, or deleted.
				none := 0
				st.Exists, st.Retained = false, &none
			case err != nil:
				// One failure is enough: the others would wait too.
				storeAnswers = false
			default:
				retained := in.Retained
				st.Retained, st.FirstID, st.Closed = &retained, optionalID(in.FirstID), in.Closed
				st.LastID = optionalID(max(in.LastID, a.LastID))
			}
		}
		snap.Streams = append(snap.Streams, st)
	}
	return snap
}

// adminLive sends the snapshot as an event named "snapshot" at once and
// then every adminLiveInterval, with heartbeat comments, until the client
// goes, the token expires or the broker drains. Its events have no id:
// a reconnecting page wants the current snapshot, not a replay.
func (s *Server) adminLive(w http.ResponseWriter, r *http.Request) {
	if err := s.allowSubscribe(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.admin.live.Add(1) > adminLiveMax {
		s.admin.live.Add(-1)
		s.writeError(w, r, fmt.Errorf("%w: this node serves at most %d live operator's pages", broker.ErrTooManySubscribers, adminLiveMax))
		return
	}
	defer s.admin.live.Add(-1)
	setStreamHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return // the head only: net/http would swallow every snapshot
	}
	sw := s.newSSEWriter(w, r) // its write deadline, as for subscribers
	defer sw.release()
	send := func(b []byte) error {
		if err := sw.writeWire(b, 0, time.Time{}); err != nil {
			return err
		}
		return sw.flush()
	}
	snapshot := func(dst []byte) []byte {
		data := s.admin.get(r.Context(), s.adminSnapshot)
		return sse.AppendUnnumberedEvent(dst, "snapshot", string(data[:len(data)-1]))
	}

	buf := snapshot(sse.AppendRetry(nil, s.opts.Retry.Milliseconds()))
	if send(buf) != nil {
		return
	}
	tick := time.NewTicker(adminLiveInterval)
	defer tick.Stop()
	beat := time.NewTicker(s.opts.Heartbeat)
	defer beat.Stop()
	expired := s.tokenExpiry(r)
	for {
		var out []byte
		select {
		case <-r.Context().Done():
			return
		case <-s.draining:
			return
		case <-expired:
			return
		case <-beat.C:
			out = heartbeatComment // shared: never appended to
		case <-tick.C:
			buf = snapshot(buf[:0])
			out = buf
		}
		if send(out) != nil {
			return
		}
	}
}

package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rs/zerolog/hlog"

	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/broker"
)

// timeFormat is RFC 3339 in UTC with milliseconds, as SPEC.md asks.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// optionalID is an id as a JSON string, or null for 0 (none).
func optionalID(id uint64) *string {
	if id == 0 {
		return nil
	}
	s := broker.FormatID(id)
	return &s
}

type infoAnswer struct {
	Stream      string  `json:"stream"`
	FirstID     *string `json:"first_id"`
	LastID      *string `json:"last_id"`
	Retained    int     `json:"retained"`
	Subscribers int     `json:"subscribers"`
	Closed      bool    `json:"closed"`
	CreatedAt   string  `json:"created_at"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	stream, ok := s.streamWithRight(w, r, auth.Subscribe)
	if !ok {
		return
	}
	in, err := s.broker.Info(r.Context(), stream)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, infoAnswer{
		Stream: stream, FirstID: optionalID(in.FirstID), LastID: optionalID(in.LastID),
		Retained: in.Retained, Subscribers: in.Subscribers, Closed: in.Closed,
		CreatedAt: formatTime(in.CreatedAt),
	})
}

type historyEvent struct {
	ID    string `json:"id"`
	Event string `json:"event"`
	Data  string `json:"data"`
	Time  string `json:"time"`
}

type historyAnswer struct {
	Stream string         `json:"stream"`
	Events []historyEvent `json:"events"`
	Gap    bool           `json:"gap"`
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	stream, ok := s.streamWithRight(w, r, auth.Subscribe)
	if !ok {
		return
	}
	after, err := historyAfter(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit, err := historyLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rr, err := s.broker.History(r.Context(), stream, after, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := historyAnswer{Stream: stream, Gap: rr.Gap, Events: make([]historyEvent, len(rr.Events))}
	for i, e := range rr.Events {
		out.Events[i] = historyEvent{ID: broker.FormatID(e.ID), Event: e.Name, Data: e.Data, Time: formatTime(e.Time)}
	}
	writeJSON(w, http.StatusOK, out)
}

// historyAfter reads ?after=, an id; absent or empty: from the oldest.
func historyAfter(r *http.Request) (uint64, error) {
	v, _, err := queryValue(r, "after")
	if err != nil {
		return 0, fmt.Errorf("%w: %v", broker.ErrInvalidID, err)
	}
	return broker.ParseID(v)
}

// historyLimit reads ?limit=.
func historyLimit(r *http.Request) (int, error) {
	v, _, err := queryValue(r, "limit")
	if err != nil {
		return 0, fmt.Errorf("%w: %v", broker.ErrInvalidRequest, err)
	}
	return parseLimit(v)
}

// parseLimit reads a limit: a positive integer, default 100, capped at 1000.
func parseLimit(v string) (int, error) {
	if v == "" {
		return defaultHistoryLimit, nil
	}
	n, err := strconv.Atoi(v)
	if errors.Is(err, strconv.ErrRange) && v[0] != '-' {
		return maxHistoryLimit, nil // a huge limit is still a limit above 1000
	}
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%w: limit must be a positive integer", broker.ErrInvalidRequest)
	}
	return min(n, maxHistoryLimit), nil
}

func (s *Server) deleteStream(w http.ResponseWriter, r *http.Request) {
	stream, ok := s.streamWithRight(w, r, auth.Publish)
	if !ok {
		return
	}
	if err := s.broker.Delete(r.Context(), stream); err != nil {
		s.writeError(w, r, err)
		return
	}
	hlog.FromRequest(r).Info().Str("stream", stream).Msg("stream deleted")
	w.WriteHeader(http.StatusNoContent)
}

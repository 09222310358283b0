package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// StreamInfo is what GET /v1/streams/{stream} says about a stream.
type StreamInfo struct {
	Stream      string    `json:"stream"`
	FirstID     *string   `json:"first_id"` // nil when nothing is retained
	LastID      *string   `json:"last_id"`  // nil when nothing was ever published
	Retained    int       `json:"retained"`
	Subscribers int       `json:"subscribers"`
	Closed      bool      `json:"closed"`
	CreatedAt   time.Time `json:"created_at"`
}

// HistoryOptions select a page of history.
type HistoryOptions struct {
	// After is the id to read after; empty or "0" means from the oldest
	// retained event.
	After string
	// Limit is the most events returned; 0 means the broker's default
	// (100); the broker caps it at 1000.
	Limit int
}

// History is one page of a stream's retained events.
type History struct {
	Stream string
	// Events have Kind KindEvent and Time set.
	Events []Event
	// Gap is true when events after After are no longer retained (or After
	// is not an id this stream issued), as a subscription would get a gap.
	// Events then start at the oldest retained event, which may be at or
	// below After.
	Gap bool
}

// CreateStream creates a stream with a new unguessable id, which starts
// with prefix (may be empty), and returns the id.
func (c *Client) CreateStream(ctx context.Context, prefix string) (string, error) {
	var body []byte
	if prefix != "" {
		var err error
		if body, err = json.Marshal(map[string]string{"prefix": prefix}); err != nil {
			return "", fmt.Errorf("create stream: %w", err)
		}
	}
	var answer struct {
		Stream string `json:"stream"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/streams", nil, body, http.StatusCreated, &answer); err != nil {
		return "", fmt.Errorf("create stream: %w", err)
	}
	return answer.Stream, nil
}

// Delete deletes stream and its history and ends its subscribers'
// responses.
func (c *Client) Delete(ctx context.Context, stream string) error {
	if stream == "" {
		return fmt.Errorf("delete %q: %w", stream, errEmptyStreamID)
	}
	if err := c.call(ctx, http.MethodDelete, streamPath(stream, ""), nil, nil, http.StatusNoContent, nil); err != nil {
		return fmt.Errorf("delete %q: %w", stream, err)
	}
	return nil
}

// Info returns what the broker knows of stream.
func (c *Client) Info(ctx context.Context, stream string) (StreamInfo, error) {
	if stream == "" {
		return StreamInfo{}, fmt.Errorf("info of %q: %w", stream, errEmptyStreamID)
	}
	var info StreamInfo
	if err := c.call(ctx, http.MethodGet, streamPath(stream, ""), nil, nil, http.StatusOK, &info); err != nil {
		return StreamInfo{}, fmt.Errorf("info of %q: %w", stream, err)
	}
	return info, nil
}

// History returns retained events of stream after o.After, oldest first;
// with a gap (History.Gap), from the oldest retained event instead.
func (c *Client) History(ctx context.Context, stream string, o HistoryOptions) (History, error) {
	q := url.Values{}
	if o.After != "" {
		q.Set("after", o.After)
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var answer struct {
		Stream string `json:"stream"`
		Events []struct {
			ID    string    `json:"id"`
			Event string    `json:"event"`
			Data  string    `json:"data"`
			Time  time.Time `json:"time"`
		} `json:"events"`
		Gap bool `json:"gap"`
	}
	if err := c.call(ctx, http.MethodGet, streamPath(stream, "/messages"), q, nil, http.StatusOK, &answer); err != nil {
		return History{}, fmt.Errorf("history of %q: %w", stream, err)
	}
	h := History{Stream: answer.Stream, Gap: answer.Gap, Events: make([]Event, len(answer.Events))}
	for i, e := range answer.Events {
		h.Events[i] = Event{Kind: KindEvent, ID: e.ID, Name: e.Event, Data: e.Data, Time: e.Time}
	}
	return h, nil
}

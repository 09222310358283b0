package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/sse-broker/broker/internal/ctxtime"
)

// Message is one event to publish.
type Message struct {
	// Event is the event name; empty means the SSE default "message".
	Event string
	// Data is the event's data: a string (or []byte) is sent as is, nil as
	// empty data, any other value as its JSON text (json.Marshal).
	Data any
}

// PublishResult is the broker's answer to a publish or a close.
type PublishResult struct {
	Stream string
	// IDs are the ids of the published events, in order.
	IDs []string
	// Replayed is true when the broker answered from its idempotency
	// record: an earlier attempt of this same call had already published
	// (its answer was lost), and this one published nothing.
	Replayed bool
}

// wireMessage is one element of the JSON publish body.
type wireMessage struct {
	Event string          `json:"event,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Publish publishes msgs, in order, all or nothing, to stream (created on
// first publish). It retries network errors and 502/503/504 answers with
// the same Idempotency-Key, so it publishes exactly once or not at all.
func (c *Client) Publish(ctx context.Context, stream string, msgs ...Message) (PublishResult, error) {
	if len(msgs) == 0 {
		return PublishResult{}, fmt.Errorf("publish to %q: no messages", stream)
	}
	body, err := encodeMessages(msgs)
	if err != nil {
		return PublishResult{}, fmt.Errorf("publish to %q: %w", stream, err)
	}
	// 128 random bits: unique to this call, the same for its retries.
	key := rand.Text()
	res, err := c.postWithRetry(ctx, streamPath(stream, "/messages"), body, key, http.StatusCreated)
	if err != nil {
		return PublishResult{}, fmt.Errorf("publish to %q: %w", stream, err)
	}
	return res, nil
}

// Close closes stream: the broker publishes a last event named "stop" with
// data (optional: nothing, a string, or any JSON value as in Message.Data)
// and ends every subscriber's response after it. Close is retried like
// Publish, but the broker keeps no idempotency record of closes: when an
// attempt's answer was lost and the retry finds the stream closed, Close
// returns the 409 (errors.Is(err, ErrStreamClosed)) although that earlier
// attempt may have been the one that closed it.
func (c *Client) Close(ctx context.Context, stream string, data ...any) (PublishResult, error) {
	if len(data) > 1 {
		return PublishResult{}, fmt.Errorf("close %q: at most one data value, got %d", stream, len(data))
	}
	body := []byte("{}")
	if len(data) == 1 {
		raw, err := encodeData(data[0])
		if err != nil {
			return PublishResult{}, fmt.Errorf("close %q: %w", stream, err)
		}
		if body, err = json.Marshal(struct {
			Data json.RawMessage `json:"data,omitempty"`
		}{raw}); err != nil {
			return PublishResult{}, fmt.Errorf("close %q: %w", stream, err)
		}
	}
	res, err := c.postWithRetry(ctx, streamPath(stream, "/close"), body, "", http.StatusOK)
	if err != nil {
		return PublishResult{}, fmt.Errorf("close %q: %w", stream, err)
	}
	return res, nil
}

func encodeMessages(msgs []Message) ([]byte, error) {
	wire := make([]wireMessage, len(msgs))
	for i, m := range msgs {
		if !utf8.ValidString(m.Event) {
			return nil, fmt.Errorf("message %d: the event name is not valid UTF-8", i)
		}
		raw, err := encodeData(m.Data)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		wire[i] = wireMessage{Event: m.Event, Data: raw}
	}
	return json.Marshal(wire)
}

// encodeData is the JSON "data" member for v: nil when v is nil (absent
// data is empty data). Text must be valid UTF-8: json.Marshal would
// silently replace bad bytes, and the broker refuses them anyway.
func encodeData(v any) (json.RawMessage, error) {
	switch d := v.(type) {
	case nil:
		return nil, nil
	case string:
		if !utf8.ValidString(d) {
			return nil, errors.New("data is not valid UTF-8")
		}
		return json.Marshal(d)
	case []byte:
		if !utf8.Valid(d) {
			return nil, errors.New("data is not valid UTF-8")
		}
		return json.Marshal(string(d))
	default:
		raw, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("encoding data as JSON: %w", err)
		}
		return raw, nil
	}
}

// postWithRetry posts body until an attempt gets an answer that is not
// worth retrying, at most c.publishAttempts times. key, when set, is sent
// as the Idempotency-Key of every attempt.
func (c *Client) postWithRetry(ctx context.Context, path string, body []byte, key string, want int) (PublishResult, error) {
	for attempt := 1; ; attempt++ {
		res, retry, err := c.postOnce(ctx, path, body, key, want)
		if err == nil {
			return res, nil
		}
		if !retry || attempt >= c.publishAttempts || ctx.Err() != nil {
			if attempt > 1 {
				err = fmt.Errorf("attempt %d: %w", attempt, err)
			}
			return PublishResult{}, err
		}
		if serr := ctxtime.Sleep(ctx, publishBackoff(attempt, err)); serr != nil {
			return PublishResult{}, fmt.Errorf("waiting to retry after %v: %w", err, serr)
		}
	}
}

// postOnce is one attempt. retry reports whether the failure may be
// retried: the request may not have reached the broker, or the answer was
// lost, or the broker said it could not serve it for now.
func (c *Client) postOnce(ctx context.Context, path string, body []byte, key string, want int) (res PublishResult, retry bool, err error) {
	req, err := c.newRequest(ctx, http.MethodPost, path, nil, body)
	if err != nil {
		return PublishResult{}, false, err
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return PublishResult{}, true, fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		ae := readAPIError(resp)
		switch resp.StatusCode {
		// 429 stored nothing: the retry waits the answer's Retry-After.
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return PublishResult{}, true, fmt.Errorf("POST %s: %w", path, ae)
		}
		return PublishResult{}, false, fmt.Errorf("POST %s: %w", path, ae)
	}
	var answer struct {
		Stream string   `json:"stream"`
		IDs    []string `json:"ids"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		// The answer was cut: the events may be stored; the retry, with the
		// same key, finds out without publishing twice.
		return PublishResult{}, true, fmt.Errorf("POST %s: reading the answer: %w", path, err)
	}
	return PublishResult{
		Stream:   answer.Stream,
		IDs:      answer.IDs,
		Replayed: resp.Header.Get("Idempotent-Replayed") == "true",
	}, false, nil
}

package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
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

// PublishError is the error of a Publish that got no success answer.
type PublishError struct {
	// Key is the Idempotency-Key every attempt carried.
	Key string
	// MaybePublished is true when an attempt may have been stored all the
	// same: the whole request went out and no answer came back (a broken
	// connection, a timeout), or a 5xx did. PublishWithKey with the same
	// Key then finds out without publishing twice: it answers the stored
	// events' ids (Replayed), or publishes them now. False when no attempt
	// was stored: each was refused with a 4xx (429 included) or never went
	// out whole (no connection, a failed TLS handshake).
	MaybePublished bool
	// Err is the last attempt's error (an *APIError for an answer).
	Err error
}

func (e *PublishError) Error() string {
	if e.MaybePublished {
		return e.Err.Error() + " (the events may have been published: PublishWithKey with key " + e.Key + " publishes them at most once)"
	}
	return e.Err.Error()
}

func (e *PublishError) Unwrap() error { return e.Err }

// Publish publishes msgs, in order, all or nothing, to stream (created on
// first publish), with an Idempotency-Key of its own (128 random bits). It
// retries network errors, timeouts and 429/502/503/504 answers with that
// key, so its attempts publish the events once at most. When it fails
// anyway, the error is a *PublishError that says whether they may have
// been published, and with which key to find out.
func (c *Client) Publish(ctx context.Context, stream string, msgs ...Message) (PublishResult, error) {
	return c.PublishWithKey(ctx, stream, rand.Text(), msgs...)
}

// PublishWithKey is Publish with the caller's Idempotency-Key (at most 128
// characters). Calls with the same key and stream publish the events once
// at most: a later one is answered with the first one's ids (Replayed),
// for as long as the broker keeps that key: while those events are in the
// stream's history (SPEC.md). Use it to retry a *PublishError whose
// MaybePublished is set, or to make a publish safe to repeat across
// restarts of the caller (a key derived from the caller's own message id).
func (c *Client) PublishWithKey(ctx context.Context, stream, key string, msgs ...Message) (PublishResult, error) {
	if len(msgs) == 0 {
		return PublishResult{}, fmt.Errorf("publish to %q: no messages", stream)
	}
	if key == "" || !validHeaderValue(key) {
		return PublishResult{}, fmt.Errorf("publish to %q: the Idempotency-Key must be a non-empty header value without control characters", stream)
	}
	body, err := encodeMessages(msgs)
	if err != nil {
		return PublishResult{}, fmt.Errorf("publish to %q: %w", stream, err)
	}
	res, maybe, err := c.postWithRetry(ctx, streamPath(stream, "/messages"), body, key, http.StatusCreated)
	if err != nil {
		return PublishResult{}, fmt.Errorf("publish to %q: %w", stream, &PublishError{Key: key, MaybePublished: maybe, Err: err})
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
	res, _, err := c.postWithRetry(ctx, streamPath(stream, "/close"), body, "", http.StatusOK)
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
// as the Idempotency-Key of every attempt. maybe reports, with an error,
// whether an attempt may have been stored.
func (c *Client) postWithRetry(ctx context.Context, path string, body []byte, key string, want int) (res PublishResult, maybe bool, err error) {
	for attempt := 1; ; attempt++ {
		res, retry, stored, err := c.postOnce(ctx, path, body, key, want)
		if err == nil {
			return res, false, nil
		}
		maybe = maybe || stored
		if !retry || attempt >= c.publishAttempts || ctx.Err() != nil {
			if attempt > 1 {
				err = fmt.Errorf("attempt %d: %w", attempt, err)
			}
			return PublishResult{}, maybe, err
		}
		if serr := ctxtime.Sleep(ctx, publishBackoff(attempt, err)); serr != nil {
			return PublishResult{}, maybe, fmt.Errorf("waiting to retry after %w: %w", err, serr)
		}
	}
}

// postOnce is one attempt, bounded by the client's attempt timeout. retry
// reports whether the failure may be retried: the request may not have
// reached the broker, or the answer was lost, or the broker said it could
// not serve it for now. maybeStored reports whether the request may have
// been stored all the same.
func (c *Client) postOnce(ctx context.Context, path string, body []byte, key string, want int) (res PublishResult, retry, maybeStored bool, err error) {
	ctx, cancel := c.attemptContext(ctx)
	defer cancel()
	// Whether the whole request went out on some connection. It cannot be
	// told from the error: net/http itself sends a request with an
	// Idempotency-Key again on a new connection when a reused one breaks
	// before the answer, and returns that try's error (a refused dial, say)
	// although the first may have been stored.
	var sent atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				sent.Store(true)
			}
		},
	})
	req, err := c.newRequest(ctx, http.MethodPost, path, nil, body)
	if err != nil {
		return PublishResult{}, false, false, err
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return PublishResult{}, true, sent.Load(), fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		ae := readAPIError(resp)
		// A 5xx may come after the store took the events (a store that
		// timed out, a proxy that lost the answer); a 4xx, 429 included,
		// stored nothing.
		maybeStored := resp.StatusCode >= 500
		switch resp.StatusCode {
		// 429 stored nothing: the retry waits the answer's Retry-After.
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return PublishResult{}, true, maybeStored, fmt.Errorf("POST %s: %w", path, ae)
		}
		return PublishResult{}, false, maybeStored, fmt.Errorf("POST %s: %w", path, ae)
	}
	var answer struct {
		Stream string   `json:"stream"`
		IDs    []string `json:"ids"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		// The answer was cut: the events may be stored; the retry, with the
		// same key, finds out without publishing twice.
		return PublishResult{}, true, true, fmt.Errorf("POST %s: reading the answer: %w", path, err)
	}
	return PublishResult{
		Stream:   answer.Stream,
		IDs:      answer.IDs,
		Replayed: resp.Header.Get("Idempotent-Replayed") == "true",
	}, false, false, nil
}

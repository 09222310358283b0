package client_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/client"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantAPIError checks that err is an *APIError with status and code, and
// that errors.Is finds sentinel (when not nil).
func wantAPIError(t *testing.T, what string, err error, status int, code string, sentinel error) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("%s: want an *APIError %d %s, got %v", what, status, code, err)
	}
	if ae.Status != status || ae.Code != code {
		t.Fatalf("%s: want %d %s, got %d %s (%v)", what, status, code, ae.Status, ae.Code, err)
	}
	if ae.Message == "" {
		t.Fatalf("%s: the broker's message is lost: %v", what, err)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Fatalf("%s: errors.Is(%v, %v) is false", what, err, sentinel)
	}
}

func TestStreamRoundTrips(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	c := client.New(b.URL + "/") // a trailing slash is fine
	ctx := testCtx(t)

	before := time.Now().Add(-time.Second)
	s, err := c.CreateStream(ctx, "chat-")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "chat-") || len(s) < len("chat-")+20 {
		t.Fatalf("created stream id %q: want chat- and a long random part", s)
	}
	anon, err := c.CreateStream(ctx, "")
	if err != nil || anon == "" || anon == s {
		t.Fatalf("create without prefix: %q, %v", anon, err)
	}

	res, err := c.Publish(ctx, s,
		client.Message{Event: "token", Data: "Hel"},
		client.Message{Data: map[string]int{"a": 1}},
		client.Message{Data: []byte("line1\nline2")},
		client.Message{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stream != s || len(res.IDs) != 4 || res.Replayed {
		t.Fatalf("publish answer: %+v", res)
	}

	info, err := c.Info(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if info.Stream != s || info.Retained != 4 || info.Closed || info.FirstID == nil || *info.FirstID != res.IDs[0] ||
		info.LastID == nil || *info.LastID != res.IDs[3] || info.CreatedAt.Before(before) || info.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("info: %+v", info)
	}

	h, err := c.History(ctx, s, client.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []client.Event{
		{Kind: client.KindEvent, ID: res.IDs[0], Name: "token", Data: "Hel"},
		{Kind: client.KindEvent, ID: res.IDs[1], Name: "message", Data: `{"a":1}`},
		{Kind: client.KindEvent, ID: res.IDs[2], Name: "message", Data: "line1\nline2"},
		{Kind: client.KindEvent, ID: res.IDs[3], Name: "message", Data: ""},
	}
	if h.Stream != s || h.Gap || len(h.Events) != len(want) {
		t.Fatalf("history: %+v", h)
	}
	for i, e := range h.Events {
		if e.Time.Before(before) || e.Time.After(time.Now().Add(time.Second)) {
			t.Fatalf("history event %d: time %v", i, e.Time)
		}
		e.Time = time.Time{}
		if e.Kind != want[i].Kind || e.ID != want[i].ID || e.Name != want[i].Name || e.Data != want[i].Data || e.Gap != nil {
			t.Fatalf("history event %d: got %+v, want %+v", i, e, want[i])
		}
	}
	page, err := c.History(ctx, s, client.HistoryOptions{After: res.IDs[0], Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 2 || page.Events[0].ID != res.IDs[1] || page.Events[1].ID != res.IDs[2] || page.Gap {
		t.Fatalf("history after %s limit 2: %+v", res.IDs[0], page)
	}

	closed, err := c.Close(ctx, s, map[string]string{"reason": "done"})
	if err != nil {
		t.Fatal(err)
	}
	if closed.Stream != s || len(closed.IDs) != 1 || idNum(t, closed.IDs[0]) <= idNum(t, res.IDs[3]) {
		t.Fatalf("close answer: %+v after %v", closed, res.IDs)
	}
	h, err = c.History(ctx, s, client.HistoryOptions{After: res.IDs[3]})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Events) != 1 || h.Events[0].Name != "stop" || h.Events[0].ID != closed.IDs[0] || h.Events[0].Data != `{"reason":"done"}` {
		t.Fatalf("stop in history: %+v", h.Events)
	}
	if info, err = c.Info(ctx, s); err != nil || !info.Closed {
		t.Fatalf("info after close: %+v, %v", info, err)
	}
	_, err = c.Publish(ctx, s, client.Message{Data: "late"})
	wantAPIError(t, "publish to a closed stream", err, http.StatusConflict, "stream_closed", client.ErrStreamClosed)
	_, err = c.Close(ctx, s)
	wantAPIError(t, "close a closed stream", err, http.StatusConflict, "stream_closed", client.ErrStreamClosed)

	if err := c.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	_, err = c.Info(ctx, s)
	wantAPIError(t, "info of a deleted stream", err, http.StatusNotFound, "not_found", client.ErrNotFound)
	_, err = c.History(ctx, s, client.HistoryOptions{})
	wantAPIError(t, "history of a deleted stream", err, http.StatusNotFound, "not_found", client.ErrNotFound)
	err = c.Delete(ctx, s)
	wantAPIError(t, "delete a deleted stream", err, http.StatusNotFound, "not_found", client.ErrNotFound)
	if errors.Is(err, client.ErrStreamClosed) {
		t.Fatal("a not_found error matches ErrStreamClosed")
	}
}

func TestCloseWithoutAndWithTextData(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	c := client.New(b.URL)
	ctx := testCtx(t)
	for _, tc := range []struct {
		stream string
		data   []any
		want   string
	}{
		{"close-none", nil, ""},
		{"close-text", []any{"bye"}, "bye"},
		{"close-nil", []any{nil}, ""},
	} {
		if _, err := c.Publish(ctx, tc.stream, client.Message{Data: "x"}); err != nil {
			t.Fatal(err)
		}
		res, err := c.Close(ctx, tc.stream, tc.data...)
		if err != nil {
			t.Fatalf("%s: %v", tc.stream, err)
		}
		h, err := c.History(ctx, tc.stream, client.HistoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last := h.Events[len(h.Events)-1]
		if last.ID != res.IDs[0] || last.Name != "stop" || last.Data != tc.want {
			t.Fatalf("%s: stop is %+v, want data %q", tc.stream, last, tc.want)
		}
	}
	if _, err := c.Close(ctx, "close-two", "a", "b"); err == nil {
		t.Fatal("close with two data values: no error")
	}
}

func TestInvalidRequests(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	c := client.New(b.URL)
	ctx := testCtx(t)

	_, err := c.Publish(ctx, "bad id!", client.Message{Data: "x"})
	wantAPIError(t, "publish to a bad id", err, http.StatusBadRequest, "invalid_stream_id", client.ErrInvalidStreamID)
	_, err = c.Info(ctx, "no/slash")
	wantAPIError(t, "info of a bad id", err, http.StatusBadRequest, "invalid_stream_id", client.ErrInvalidStreamID)
	_, err = c.Publish(ctx, "ok", client.Message{Event: "gap", Data: "x"})
	wantAPIError(t, "publish a reserved name", err, http.StatusBadRequest, "invalid_event", nil)
	_, err = c.History(ctx, "ok", client.HistoryOptions{After: "x1"})
	wantAPIError(t, "history after a bad id", err, http.StatusBadRequest, "invalid_last_event_id", client.ErrInvalidLastEventID)

	// Refused here, before any request: the broker would refuse them too,
	// and json.Marshal would hide the bad bytes.
	for _, m := range []client.Message{{Data: "bad \xff"}, {Event: "bad \xff"}, {Data: []byte{0xC0}}, {Data: func() {}}} {
		if _, err := c.Publish(ctx, "ok", m); err == nil {
			t.Fatalf("publish %+v: no error", m)
		}
	}
	if _, err := c.Publish(ctx, "ok"); err == nil {
		t.Fatal("publish of nothing: no error")
	}
	// The empty id would make /v1/streams/, no route: 404 not_found, which
	// a caller could take for "no such stream".
	if _, err := c.Info(ctx, ""); !errors.Is(err, client.ErrInvalidStreamID) || errors.Is(err, client.ErrNotFound) {
		t.Fatalf("info of the empty id: %v", err)
	}
	if err := c.Delete(ctx, ""); !errors.Is(err, client.ErrInvalidStreamID) || errors.Is(err, client.ErrNotFound) {
		t.Fatalf("delete of the empty id: %v", err)
	}
	// Where a path follows the id, the broker itself refuses it.
	_, err = c.History(ctx, "", client.HistoryOptions{})
	wantAPIError(t, "history of the empty id", err, http.StatusBadRequest, "invalid_stream_id", client.ErrInvalidStreamID)
	if _, err := c.Info(ctx, "ok"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("the refused publishes created the stream: %v", err)
	}
}

// idNum reads an event id as the number it is.
func idNum(t *testing.T, id string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		t.Fatalf("event id %q: %v", id, err)
	}
	return n
}

package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/sse"
)

// adminSnap is the JSON of /admin/api/streams and of /admin/api/live's
// events.
type adminSnap struct {
	Node struct {
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
	} `json:"node"`
	Streams []adminStreamJSON `json:"streams"`
}

type adminStreamJSON struct {
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

func (s adminSnap) find(t *testing.T, stream string) adminStreamJSON {
	t.Helper()
	for _, st := range s.Streams {
		if st.Stream == stream {
			return st
		}
	}
	t.Fatalf("stream %q is not listed: %+v", stream, s.Streams)
	return adminStreamJSON{}
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

func adminStreams(t *testing.T, b *testbroker.Broker, h http.Header) adminSnap {
	t.Helper()
	status, hdr, body := b.Do(t, http.MethodGet, "/admin/api/streams", h, "")
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /admin/api/streams: %d %s %s", status, hdr.Get("Content-Type"), body)
	}
	var snap adminSnap
	mustJSON(t, body, &snap)
	return snap
}

// batch is a JSON array of n events with data "<prefix>0".."<prefix>n-1".
func batch(prefix string, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"data":"%s%d"}`, prefix, i)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func waitNodeSubscribers(t *testing.T, b *testbroker.Broker, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.Broker.Stats().Subscribers != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers on the node, want %d", b.Broker.Stats().Subscribers, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The snapshot lists the streams with this node's subscribers, the ids and
// retained counts the store holds, and rates over the last 10 s, the
// busiest first.
func TestAdminStreamsSnapshot(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxEvents: 4})
	type plan struct {
		stream      string
		events      int
		subscribers int
	}
	plans := []plan{{"adm-quiet", 1, 2}, {"adm-busy", 6, 1}, {"adm-mid", 3, 3}}
	for _, p := range plans {
		for range p.subscribers {
			subscribe(t, b, "/v1/streams/"+p.stream+"/events", "")
		}
	}
	subscribe(t, b, "/v1/streams/adm-waiting/events", "") // no publish yet
	waitNodeSubscribers(t, b, 7)

	ids := map[string][]string{}
	for _, p := range plans {
		ids[p.stream] = publishJSON(t, b, p.stream, batch(p.stream, p.events))
	}
	snap := adminStreams(t, b, nil)

	var order []string
	for _, s := range snap.Streams {
		order = append(order, s.Stream)
	}
	if strings.Join(order, " ") != "adm-busy adm-mid adm-quiet adm-waiting" {
		t.Fatalf("order %v, want the busiest first: adm-busy adm-mid adm-quiet adm-waiting", order)
	}
	for _, p := range plans {
		s := snap.find(t, p.stream)
		got := ids[p.stream]
		retained := min(p.events, 4)
		if s.Subscribers != p.subscribers || str(s.LastID) != got[len(got)-1] || s.Retained == nil || *s.Retained != retained ||
			str(s.FirstID) != got[len(got)-retained] || s.Closed || !s.Exists {
			t.Errorf("%s: %+v (last %s, first %s); want %d subscribers, last id %s, %d retained from %s, open",
				p.stream, s, str(s.LastID), str(s.FirstID), p.subscribers, got[len(got)-1], retained, got[len(got)-retained])
		}
		// Everything was published within the last 10 s: rate = events/10.
		wantPub := float64(p.events) / 10
		wantDel := float64(p.events*p.subscribers) / 10
		if s.PublishRate != wantPub || s.DeliveryRate != wantDel || s.Published != uint64(p.events) || s.Delivered != uint64(p.events*p.subscribers) {
			t.Errorf("%s: rates %v/%v, counts %d/%d; want %v/%v and %d/%d", p.stream, s.PublishRate, s.DeliveryRate,
				s.Published, s.Delivered, wantPub, wantDel, p.events, p.events*p.subscribers)
		}
		if _, err := time.Parse(time.RFC3339, s.LastActive); err != nil {
			t.Errorf("%s: last_active %q: %v", p.stream, s.LastActive, err)
		}
	}
	if w := snap.find(t, "adm-waiting"); w.Subscribers != 1 || w.Exists || w.LastID != nil || w.Retained == nil || *w.Retained != 0 {
		t.Errorf("adm-waiting: %+v; want 1 subscriber, not stored yet", w)
	}
	n := snap.Node
	if n.Subscribers != 7 || n.Streams != 3 || n.ActiveStreams != 4 || n.PublishRate != 1 || n.DeliveryRate != 1.7 || n.RateWindowSeconds != 10 || n.Draining {
		t.Errorf("node %+v; want 7 subscribers, 3 streams stored, 4 active, 1/s published, 1.7/s delivered", n)
	}

	// Closing shows at once: the store's truth, asked per snapshot.
	stop := closeStream(t, b, "adm-quiet")
	s := adminStreams(t, b, nil).find(t, "adm-quiet")
	if !s.Closed || str(s.LastID) != stop || *s.Retained != 2 {
		t.Errorf("after close: %+v (last %s); want closed, last id %s, 2 retained", s, str(s.LastID), stop)
	}
}

// adminLive opens /admin/api/live and returns its response and decoder.
func adminLive(t *testing.T, b *testbroker.Broker, h http.Header) (*http.Response, *sse.Decoder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL+"/admin/api/live", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); res.Body.Close() })
	return res, sse.NewDecoder(res.Body)
}

// liveEvent is one event of the live stream, with what the decoder had
// seen by then.
type liveEvent struct {
	ev       sse.Event
	err      error
	retry    int64 // -1: none
	comments int
}

// liveEvents reads dec's events onto a channel until it fails. Only its
// goroutine touches dec.
func liveEvents(dec *sse.Decoder) <-chan liveEvent {
	ch := make(chan liveEvent, 16)
	go func() {
		defer close(ch)
		for {
			ev, err := dec.Next()
			retry, ok := dec.Retry()
			if !ok {
				retry = -1
			}
			ch <- liveEvent{ev, err, retry, dec.Comments()}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

func nextSnapshot(t *testing.T, ch <-chan liveEvent, within time.Duration) (adminSnap, liveEvent) {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok || e.err != nil {
			t.Fatalf("live stream ended: %v", e.err)
		}
		if e.ev.Type != "snapshot" || e.ev.ID != "" {
			t.Fatalf("event %q with id %q, want an unnumbered snapshot", e.ev.Type, e.ev.ID)
		}
		var snap adminSnap
		mustJSON(t, e.ev.Data, &snap)
		return snap, e
	case <-time.After(within):
		t.Fatalf("no snapshot within %v", within)
	}
	return adminSnap{}, liveEvent{}
}

// The live stream sends a snapshot at once and then every second, with
// heartbeat comments, and ends when the broker drains.
func TestAdminLive(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Heartbeat: 100 * time.Millisecond, Retry: 1500 * time.Millisecond})
	first := publish(t, b, "live-a", "x")

	start := time.Now()
	res, dec := adminLive(t, b, nil)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("live: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	ch := liveEvents(dec)
	snap, e := nextSnapshot(t, ch, 2*time.Second)
	if s := snap.find(t, "live-a"); str(s.LastID) != first {
		t.Fatalf("live-a last id %s, want %s", str(s.LastID), first)
	}
	if e.retry != 1500 {
		t.Fatalf("retry %d, want 1500", e.retry)
	}

	// A publish shows in a following snapshot, about a second later.
	second := publish(t, b, "live-b", "y")
	for {
		snap, e = nextSnapshot(t, ch, 2*time.Second)
		if len(snap.Streams) == 2 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("live-b not listed after 5 s: %+v", snap.Streams)
		}
	}
	if s := snap.find(t, "live-b"); str(s.LastID) != second {
		t.Fatalf("live-b last id %s, want %s", str(s.LastID), second)
	}
	if e.comments == 0 {
		t.Fatal("no heartbeat comment in over a second at a 100 ms heartbeat")
	}

	// Drain ends the stream.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.API.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(3 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok || e.err != nil {
				if e.err != nil && e.err != io.EOF {
					t.Fatalf("live stream ended with %v, want a clean end", e.err)
				}
				return
			}
		case <-deadline:
			t.Fatal("the live stream did not end within 3 s of the drain")
		}
	}
}

// With auth on, everything under /admin needs a token that may subscribe
// to every stream: the pattern "*".
func TestAdminAuth(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Auth: hsVerifier(t)})
	operator := authHS(t, rights(nil, []string{"*"}))
	tokens := []struct {
		name   string
		header http.Header
		query  string
		want   int
		code   string
	}{
		{"no token", nil, "", http.StatusUnauthorized, "unauthorized"},
		{"bad token", bearer("not-a-jwt"), "", http.StatusUnauthorized, "unauthorized"},
		{"wrong secret", bearer(authSign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-32"), rights(nil, []string{"*"}))), "", http.StatusUnauthorized, "unauthorized"},
		{"subscribe to some streams", bearer(authHS(t, rights(nil, []string{"chat-*", "a*"}))), "", http.StatusForbidden, "forbidden"},
		{"publish everywhere only", bearer(authHS(t, rights([]string{"*"}, nil))), "", http.StatusForbidden, "forbidden"},
		{"operator, header", bearer(operator), "", http.StatusOK, ""},
		{"operator, query", nil, "?access_token=" + operator, http.StatusOK, ""},
		{"operator, cookie", http.Header{"Cookie": {"access_token=" + operator}}, "", http.StatusOK, ""},
	}
	paths := []struct{ path, contentType string }{
		{"/admin", "text/html; charset=utf-8"},
		{"/admin/api/streams", "application/json"},
		{"/admin/api/live", "text/event-stream"},
	}
	for _, tok := range tokens {
		for _, p := range paths {
			t.Run(tok.name+" "+p.path, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL+p.path+tok.query, nil)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range tok.header {
					req.Header[k] = v
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				if res.StatusCode != tok.want {
					body, _ := io.ReadAll(res.Body)
					t.Fatalf("status %d %s, want %d", res.StatusCode, body, tok.want)
				}
				if tok.want != http.StatusOK {
					var e struct{ Error, Message string }
					body, _ := io.ReadAll(res.Body)
					if res.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &e) != nil || e.Error != tok.code || e.Message == "" {
						t.Fatalf("body %s (%s), want a JSON error %q", body, res.Header.Get("Content-Type"), tok.code)
					}
					return
				}
				if ct := res.Header.Get("Content-Type"); ct != p.contentType {
					t.Fatalf("Content-Type %q, want %q", ct, p.contentType)
				}
				if p.path == "/admin/api/live" {
					ev, err := sse.NewDecoder(res.Body).Next()
					if err != nil || ev.Type != "snapshot" {
						t.Fatalf("first live event %+v, %v", ev, err)
					}
				}
			})
		}
	}
}

// With auth off the page is open, read-only, and framed by nobody.
func TestAdminPage(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	for _, path := range []string{"/admin", "/admin/"} {
		status, h, body := b.Do(t, http.MethodGet, path, nil, "")
		if status != http.StatusOK || h.Get("Content-Type") != "text/html; charset=utf-8" ||
			!strings.Contains(body, "/admin/api/live") || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Fatalf("GET %s: %d %v", path, status, h)
		}
	}
	if status, _, body := b.Do(t, http.MethodPost, "/admin/api/streams", nil, ""); status != http.StatusMethodNotAllowed || !strings.Contains(body, "method_not_allowed") {
		t.Fatalf("POST /admin/api/streams: %d %s", status, body)
	}
	if status, _, _ := b.Do(t, http.MethodGet, "/admin/nothing", nil, ""); status != http.StatusNotFound {
		t.Fatalf("GET /admin/nothing: %d", status)
	}
}

// admin.enabled off: every /admin path is unknown.
func TestAdminOff(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{NoAdmin: true})
	for _, path := range []string{"/admin", "/admin/", "/admin/api/streams"} {
		status, hdr, body := b.Do(t, http.MethodGet, path, nil, "")
		if status != http.StatusNotFound || hdr.Get("Content-Type") != "application/json" || !strings.Contains(body, `"not_found"`) {
			t.Errorf("GET %s with the page off: %d %s %s", path, status, hdr.Get("Content-Type"), body)
		}
	}
	if res, _ := adminLive(t, b, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /admin/api/live with the page off: %d", res.StatusCode)
	}
}

// The live page is not a subscriber, but it is counted like one: against
// limits.subscribe_rate, and against a cap of its own (64 per node).
func TestAdminLiveIsLimited(t *testing.T) {
	t.Run("subscribe rate", func(t *testing.T) {
		b := testbroker.Start(t, testbroker.Options{SubscribeRate: 0.001})
		if res, _ := adminLive(t, b, nil); res.StatusCode != http.StatusOK {
			t.Fatalf("first live page: %d", res.StatusCode)
		}
		liveRefused(t, b, "second live page at 0.001/s", http.StatusTooManyRequests, "rate_limited")
	})
	t.Run("cap", func(t *testing.T) {
		b := testbroker.Start(t, testbroker.Options{})
		for i := range 64 {
			if res, _ := adminLive(t, b, nil); res.StatusCode != http.StatusOK {
				t.Fatalf("live page %d: %d", i+1, res.StatusCode)
			}
		}
		liveRefused(t, b, "live page 65", http.StatusServiceUnavailable, "too_many_subscribers")
	})
}

// liveRefused asks for /admin/api/live and wants it refused with status,
// the error code and a Retry-After.
func liveRefused(t *testing.T, b *testbroker.Broker, what string, status int, code string) {
	t.Helper()
	res, _ := adminLive(t, b, nil)
	if res.StatusCode == http.StatusOK { // a live stream: reading it would not end
		t.Fatalf("%s: 200", what)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != status || res.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"`+code+`"`) {
		t.Fatalf("%s: %d %q %s, want %d %s with Retry-After", what, res.StatusCode, res.Header.Get("Retry-After"), body, status, code)
	}
}

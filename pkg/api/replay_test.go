package api_test

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/testbroker"
)

func expectIDs(t *testing.T, s *stream, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if ev := s.next(t); ev.ID != id || ev.Type != "message" {
			t.Fatalf("got %+v, want message %s", ev, id)
		}
	}
}

func expectGap(t *testing.T, s *stream, wantData string) {
	t.Helper()
	ev := s.next(t)
	if ev.Type != "gap" || ev.Data != wantData {
		t.Fatalf("got %+v, want gap %s", ev, wantData)
	}
	if ev.ID != "" {
		t.Fatalf("gap carried id %q: it would move the client's resume point", ev.ID)
	}
}

func expectEnd(t *testing.T, s *stream) {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := s.dec.Next(); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("want the response to end, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the response did not end")
	}
}

func TestReplayWithoutResumePointSendsAllRetained(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	a, c := publish(t, b, "s", "1"), publish(t, b, "s", "2")
	s := subscribe(t, b, "/v1/streams/s/events", "")
	expectIDs(t, s, a, c)
	d := publish(t, b, "s", "3")
	expectIDs(t, s, d)
	// "0" is the start of the stream, the same as no resume point.
	expectIDs(t, subscribe(t, b, "/v1/streams/s/events", "0"), a, c, d)
	expectIDs(t, subscribe(t, b, "/v1/streams/s/events?lastEventId=0", ""), a, c, d)
}

func TestResumeByHeaderAndByQuery(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	ids := publishJSON(t, b, "s", `[{"data":"1"},{"data":"2"},{"data":"3"}]`)
	expectIDs(t, subscribe(t, b, "/v1/streams/s/events?lastEventId="+ids[0], ""), ids[1], ids[2])
	// The header wins over the query parameter.
	expectIDs(t, subscribe(t, b, "/v1/streams/s/events?lastEventId="+ids[0], ids[1]), ids[2])
	// An empty header is no resume point; the query parameter then counts.
	expectIDs(t, subscribe(t, b, "/v1/streams/s/events?lastEventId="+ids[1], ""), ids[2])
	expectIDs(t, subscribe(t, b, "/v1/streams/s/events?lastEventId=", ""), ids...)
}

func TestGapOnlyWhenSomethingWasLost(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxEvents: 3})
	ids := publishJSON(t, b, "s", `[{"data":"1"},{"data":"2"},{"data":"3"},{"data":"4"},{"data":"5"},{"data":"6"}]`)
	// Events 1-3 are evicted. A client at 1 lost 2 and 3.
	s := subscribe(t, b, "/v1/streams/s/events", ids[0])
	expectGap(t, s, `{"after":"`+ids[0]+`","first":"`+ids[3]+`"}`)
	expectIDs(t, s, ids[3], ids[4], ids[5])
	// A client at 3 lost nothing, although 3 itself was evicted.
	expectIDs(t, subscribe(t, b, "/v1/streams/s/events", ids[2]), ids[3], ids[4], ids[5])
	expectIDs(t, subscribe(t, b, "/v1/streams/s/events", ids[4]), ids[5])
	// No resume point: the retained events, no gap.
	expectIDs(t, subscribe(t, b, "/v1/streams/s/events", ""), ids[3], ids[4], ids[5])
}

func TestGapForIDsThisStreamNeverIssued(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	ids := publishJSON(t, b, "s", `[{"data":"1"},{"data":"2"}]`)
	other := publish(t, b, "other", "x")
	n, _ := strconv.ParseUint(ids[1], 10, 64)
	for _, after := range []string{"5", other, strconv.FormatUint(n+1000, 10), "18446744073709551615"} {
		s := subscribe(t, b, "/v1/streams/s/events", after)
		expectGap(t, s, `{"after":"`+after+`","first":"`+ids[0]+`"}`)
		expectIDs(t, s, ids...)
		live := publish(t, b, "s", "live")
		expectIDs(t, s, live)
		ids = append(ids, live)
	}
}

func TestGapAfterDeleteAndNewLife(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	old := publish(t, b, "s", "old")
	if status, _, _ := b.Do(t, "DELETE", "/v1/streams/s", nil, ""); status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	// The stream does not exist: a resume point from its old life is a gap
	// with nothing retained, and the subscriber waits for the new life.
	s := subscribe(t, b, "/v1/streams/s/events", old)
	expectGap(t, s, `{"after":"`+old+`","first":null}`)
	fresh := publish(t, b, "s", "new")
	expectIDs(t, s, fresh)
	if o, _ := strconv.ParseUint(old, 10, 64); mustUint(t, fresh) <= o {
		t.Fatalf("new life id %s not above old id %s", fresh, old)
	}
	s2 := subscribe(t, b, "/v1/streams/s/events", old)
	expectGap(t, s2, `{"after":"`+old+`","first":"`+fresh+`"}`)
	expectIDs(t, s2, fresh)
}

// A broker restart with the memory store starts a new epoch: ids go on
// above the old ones and an old resume point gets a gap, never a skip.
func TestIDsAcrossRestart(t *testing.T) {
	first := testbroker.Start(t, testbroker.Options{})
	old := publishJSON(t, first, "s", `[{"data":"1"},{"data":"2"}]`)
	first.Server.Close()
	time.Sleep(2 * time.Millisecond) // a restart takes longer than one epoch tick

	second := testbroker.Start(t, testbroker.Options{})
	fresh := publish(t, second, "s", "after restart")
	if mustUint(t, fresh) <= mustUint(t, old[1]) {
		t.Fatalf("id after restart %s is not above %s", fresh, old[1])
	}
	s := subscribe(t, second, "/v1/streams/s/events", old[0])
	expectGap(t, s, `{"after":"`+old[0]+`","first":"`+fresh+`"}`)
	expectIDs(t, s, fresh)
}

func TestSubscribeBeforeTheStreamExists(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	s := subscribe(t, b, "/v1/streams/later/events", "")
	time.Sleep(20 * time.Millisecond) // let the subscription settle; correctness does not depend on it
	id := publish(t, b, "later", "first")
	expectIDs(t, s, id)
}

func TestClosedStream(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	live := subscribe(t, b, "/v1/streams/s/events", "")
	ids := publishJSON(t, b, "s", `[{"data":"1"},{"data":"2"}]`)
	status, _, body := b.Do(t, "POST", "/v1/streams/s/close", nil, `{"data":{"reason":"done"}}`)
	if status != http.StatusOK {
		t.Fatalf("close: %d %s", status, body)
	}
	var ans struct {
		Stream string
		IDs    []string
	}
	mustJSON(t, body, &ans)
	stop := ans.IDs[0]
	if ans.Stream != "s" || mustUint(t, stop) <= mustUint(t, ids[1]) {
		t.Fatalf("close answer %s", body)
	}
	expectIDs(t, live, ids...)
	if ev := live.next(t); ev.Type != "stop" || ev.ID != stop || ev.Data != `{"reason":"done"}` {
		t.Fatalf("got %+v, want stop", ev)
	}
	expectEnd(t, live)

	// A late subscriber gets what it has not seen, stop, and the end.
	late := subscribe(t, b, "/v1/streams/s/events", ids[0])
	expectIDs(t, late, ids[1])
	if ev := late.next(t); ev.Type != "stop" {
		t.Fatalf("got %+v, want stop", ev)
	}
	expectEnd(t, late)

	// At or past stop: 204, which makes EventSource stop reconnecting.
	for _, after := range []string{stop, strconv.FormatUint(mustUint(t, stop)+1, 10)} {
		if status, _, _ := b.Do(t, "GET", "/v1/streams/s/events", http.Header{"Last-Event-ID": {after}}, ""); status != http.StatusNoContent {
			t.Fatalf("subscribe after %s on a closed stream: %d, want 204", after, status)
		}
	}
}

func TestDeleteEndsSubscribers(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	id := publish(t, b, "s", "x")
	s := subscribe(t, b, "/v1/streams/s/events", "")
	expectIDs(t, s, id)
	if status, _, _ := b.Do(t, "DELETE", "/v1/streams/s", nil, ""); status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	expectEnd(t, s)
	if status, _, _ := b.Do(t, "GET", "/v1/streams/s", nil, ""); status != http.StatusNotFound {
		t.Fatalf("info after delete: %d", status)
	}
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("id %q: %v", s, err)
	}
	return v
}

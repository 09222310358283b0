package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-broker/broker/internal/brokerproc"
	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/sse"
)

// Acknowledged means durable: publish from concurrent publishers, kill -9
// the broker right after the last acknowledgement, restart it on the same
// bolt file, and every acknowledged event is served with its id and data,
// in order, by history and by SSE; an old Last-Event-ID resumes exactly;
// new ids continue above the old ones. Three crashes in a row.
func TestCrashKeepsAcknowledgedEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	const (
		cycles     = 3
		perCycle   = 300
		publishers = 8
		stream     = "crash"
	)
	path := filepath.Join(t.TempDir(), "data", "broker.db")
	args := []string{"--store", "bolt:" + path}
	acked := map[uint64]string{} // id → data, every acknowledged event so far
	inFlightLost := 0            // publishes that got no answer: they may or may not be stored
	p := brokerproc.Start(t, args...)
	for cycle := range cycles {
		// Publish until perCycle acknowledgements, then kill -9 at once,
		// with the other publishers' requests still in flight.
		var (
			mu    sync.Mutex
			acks  atomic.Int64
			wg    sync.WaitGroup
			lost  atomic.Int64
			errMu sync.Mutex
			errs  []string
		)
		for w := range publishers {
			wg.Go(func() {
				client := &http.Client{Timeout: 20 * time.Second}
				for i := 0; acks.Load() < perCycle; i++ {
					data := fmt.Sprintf("cycle %d publisher %d event %d", cycle, w, i)
					id, status, err := crashPublish(client, p.URL, stream, data)
					if err != nil || status != http.StatusCreated {
						if acks.Load() < perCycle {
							errMu.Lock()
							errs = append(errs, fmt.Sprintf("publish before the kill: status %d, %v", status, err))
							errMu.Unlock()
						}
						lost.Add(1)
						return
					}
					mu.Lock()
					acked[id] = data
					mu.Unlock()
					if acks.Add(1) == perCycle {
						_ = p.Signal(os.Kill) // SIGKILL right after the acknowledgement
					}
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("cycle %d: %s\n%s", cycle, strings.Join(errs, "\n"), p.Logs())
		}
		select {
		case <-p.Done():
		case <-time.After(20 * time.Second):
			t.Fatal("the killed broker did not exit")
		}
		inFlightLost += int(lost.Load())

		p = brokerproc.Start(t, args...)
		want := slices.Sorted(maps.Keys(acked))

		// History: every acknowledged id, in order, with its data; anything
		// else is one of the unanswered in-flight publishes.
		served := crashHistory(t, p.URL, stream)
		servedIDs := make([]uint64, len(served))
		for i, e := range served {
			servedIDs[i] = e.id
			if i > 0 && e.id <= servedIDs[i-1] {
				t.Fatalf("cycle %d: history serves %d after %d", cycle, e.id, servedIDs[i-1])
			}
			if data, ok := acked[e.id]; ok && data != e.data {
				t.Fatalf("cycle %d: id %d holds %q, acknowledged with %q", cycle, e.id, e.data, data)
			}
		}
		for _, id := range want {
			if _, ok := slices.BinarySearch(servedIDs, id); !ok {
				t.Fatalf("cycle %d: acknowledged id %d lost after kill -9 (%d acknowledged, %d served)", cycle, id, len(want), len(servedIDs))
			}
		}
		extra := len(servedIDs) - len(want)
		if extra > inFlightLost {
			t.Fatalf("cycle %d: %d events served that were never acknowledged, only %d publishes were in flight", cycle, extra, inFlightLost)
		}
		t.Logf("cycle %d: %d acknowledged events served after kill -9; %d publishes cut off by this kill; %d unacknowledged events stored in all", cycle, len(want), lost.Load(), extra)

		// SSE from the start serves the same ids.
		got := crashSubscribe(t, p.URL, stream, "", len(servedIDs))
		if !slices.Equal(got, servedIDs) {
			t.Fatalf("cycle %d: SSE served %d ids, history %d; they differ", cycle, len(got), len(servedIDs))
		}

		// Resume with an old Last-Event-ID: exactly the rest, then a new
		// publish arrives next with an id above every old one.
		from := len(want) / 2
		res, cancel := crashOpen(t, p.URL, stream, broker.FormatID(want[from]))
		dec := sse.NewDecoder(res.Body)
		rest := servedIDs[slices.Index(servedIDs, want[from])+1:]
		for i, id := range rest {
			ev, err := dec.Next()
			if err != nil {
				t.Fatalf("cycle %d: resume: %v", cycle, err)
			}
			if ev.Type != broker.EventMessage || ev.ID != broker.FormatID(id) {
				t.Fatalf("cycle %d: resume event %d is %s %q, want id %d", cycle, i, ev.Type, ev.ID, id)
			}
		}
		client := &http.Client{Timeout: 20 * time.Second}
		fresh, status, err := crashPublish(client, p.URL, stream, "after restart")
		if err != nil || status != http.StatusCreated {
			t.Fatalf("cycle %d: publish after restart: %d %v", cycle, status, err)
		}
		if fresh <= servedIDs[len(servedIDs)-1] {
			t.Fatalf("cycle %d: new id %d not above the old %d", cycle, fresh, servedIDs[len(servedIDs)-1])
		}
		ev, err := dec.Next()
		if err != nil || ev.ID != broker.FormatID(fresh) || ev.Data != "after restart" {
			t.Fatalf("cycle %d: after the backlog the resumed subscriber got %+v %v, want id %d", cycle, ev, err, fresh)
		}
		cancel()
		acked[fresh] = "after restart"
	}
	p.Kill()
}

type crashEvent struct {
	id   uint64
	data string
}

// crashPublish publishes one raw event and returns its id.
func crashPublish(client *http.Client, base, stream, data string) (uint64, int, error) {
	res, err := client.Post(base+"/v1/streams/"+stream+"/messages", "text/plain", strings.NewReader(data))
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	var body struct{ IDs []string }
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return 0, res.StatusCode, err
	}
	if res.StatusCode != http.StatusCreated || len(body.IDs) != 1 {
		return 0, res.StatusCode, nil
	}
	id, err := broker.ParseID(body.IDs[0])
	return id, res.StatusCode, err
}

func crashHistory(t *testing.T, base, stream string) []crashEvent {
	t.Helper()
	res, err := http.Get(base + "/v1/streams/" + stream + "/messages?limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Events []struct{ ID, Data string }
		Gap    bool
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("history: %d %v", res.StatusCode, err)
	}
	if body.Gap {
		t.Fatal("history from the start reports a gap")
	}
	out := make([]crashEvent, len(body.Events))
	for i, e := range body.Events {
		id, err := broker.ParseID(e.ID)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = crashEvent{id: id, data: e.Data}
	}
	return out
}

// crashOpen subscribes to stream, resuming after lastID ("" for none).
func crashOpen(t *testing.T, base, stream, lastID string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/streams/"+stream+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("subscribe: %s", res.Status)
	}
	t.Cleanup(cancel)
	return res, cancel
}

// crashSubscribe reads n events of stream over SSE and returns their ids.
func crashSubscribe(t *testing.T, base, stream, lastID string, n int) []uint64 {
	t.Helper()
	res, cancel := crashOpen(t, base, stream, lastID)
	defer cancel()
	dec := sse.NewDecoder(res.Body)
	ids := make([]uint64, 0, n)
	for len(ids) < n {
		ev, err := dec.Next()
		if err != nil {
			t.Fatalf("SSE after %d events: %v", len(ids), err)
		}
		if ev.Type != broker.EventMessage {
			t.Fatalf("SSE event %q after %d events", ev.Type, len(ids))
		}
		id, err := broker.ParseID(ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
	bbolt "go.etcd.io/bbolt"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/storetest"
)

// open opens the store at path; the test closes it.
func open(t *testing.T, path string, o broker.StoreOptions, fan broker.Fanout) *Store {
	t.Helper()
	s, err := Open(path, storetest.Defaults(o), fan)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newStore(t *testing.T, o broker.StoreOptions) (*Store, *storetest.Recorder) {
	t.Helper()
	fan := storetest.NewRecorder()
	return open(t, filepath.Join(t.TempDir(), "broker.db"), o, fan), fan
}

func pub(t *testing.T, s broker.Store, stream string, data ...string) []uint64 {
	t.Helper()
	msgs := make([]broker.Message, len(data))
	for i, d := range data {
		msgs[i] = broker.Message{Name: broker.EventMessage, Data: d}
	}
	res, err := s.Publish(context.Background(), stream, msgs, "")
	if err != nil {
		t.Fatal(err)
	}
	return res.IDs
}

func read(t *testing.T, s broker.Store, stream string, after uint64) broker.ReadResult {
	t.Helper()
	rr, err := s.Read(context.Background(), stream, after, 0)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func ids(rr broker.ReadResult) []uint64 {
	out := make([]uint64, len(rr.Events))
	for i, e := range rr.Events {
		out[i] = e.ID
	}
	return out
}

// onDisk counts the events and idempotency keys of stream in the file.
func onDisk(t *testing.T, s *Store, stream string) (events, keys int, exists bool) {
	t.Helper()
	err := s.db.View(func(tx *bbolt.Tx) error {
		sb := tx.Bucket(bucketStreams).Bucket([]byte(stream))
		if sb == nil {
			return nil
		}
		exists = true
		events = sb.Bucket(bucketEvents).Stats().KeyN
		keys = sb.Bucket(bucketIdem).Stats().KeyN
		if n := sb.Bucket(bucketIdemOrder).Stats().KeyN; n != keys {
			return fmt.Errorf("%d keys but %d in key order", keys, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return events, keys, exists
}

// Everything acknowledged is there after a restart: the same events with
// the same ids, the same stream records, idempotency keys, closed
// streams; new ids continue above the old ones and an old resume point
// resumes exactly.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	ctx := context.Background()
	o := broker.StoreOptions{MaxEvents: 5}
	s1, err := Open(path, storetest.Defaults(o), storetest.NewRecorder())
	if err != nil {
		t.Fatal(err)
	}
	a := pub(t, s1, "a", "1", "2", "3")
	keyed, err := s1.Publish(ctx, "a", []broker.Message{{Name: "token", Data: "line 1\nline 2"}, {Name: broker.EventMessage, Data: ""}}, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	a = append(a, keyed.IDs...)
	a = append(a, pub(t, s1, "a", "4", "5")...) // 7 published, 5 retained
	pub(t, s1, "b", "x")
	closed, err := s1.CloseStream(ctx, "b", "bye")
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Create(ctx, "empty"); err != nil {
		t.Fatal(err)
	}
	before := map[string]broker.ReadResult{}
	infos := map[string]broker.StreamInfo{}
	for _, name := range []string{"a", "b", "empty"} {
		before[name] = read(t, s1, name, 0)
		if infos[name], err = s1.Info(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if got := ids(before["a"]); !slices.Equal(got, a[2:]) {
		t.Fatalf("before the restart a holds %v, want %v", got, a[2:])
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := open(t, path, o, storetest.NewRecorder())
	if s2.Len() != 3 {
		t.Fatalf("Len after reopen %d, want 3", s2.Len())
	}
	for name, want := range before {
		got := read(t, s2, name, 0)
		if got.Exists != want.Exists || got.Gap || got.FirstID != want.FirstID || got.LastID != want.LastID ||
			got.Closed != want.Closed || got.StopID != want.StopID || len(got.Events) != len(want.Events) {
			t.Fatalf("%s after reopen: %+v, before: %+v", name, got, want)
		}
		for i, e := range got.Events {
			w := want.Events[i]
			if e.ID != w.ID || e.Name != w.Name || e.Data != w.Data || !e.Time.Equal(w.Time) || !bytes.Equal(e.Wire, w.Wire) {
				t.Fatalf("%s event %d after reopen: %+v, before: %+v", name, i, e, w)
			}
		}
		info, err := s2.Info(ctx, name)
		if err != nil || !info.CreatedAt.Equal(infos[name].CreatedAt) {
			t.Fatalf("%s info after reopen %+v %v, before %+v", name, info, err, infos[name])
		}
		info.CreatedAt = infos[name].CreatedAt
		if info != infos[name] {
			t.Fatalf("%s info after reopen %+v, before %+v", name, info, infos[name])
		}
	}
	// Resume with an old id: exactly the rest, no gap, no duplicate; the
	// newest evicted id is no gap either, an older one is.
	if rr := read(t, s2, "a", a[4]); rr.Gap || !slices.Equal(ids(rr), a[5:]) {
		t.Fatalf("resume at %d: gap %v %v, want %v", a[4], rr.Gap, ids(rr), a[5:])
	}
	if rr := read(t, s2, "a", a[1]); rr.Gap || !slices.Equal(ids(rr), a[2:]) {
		t.Fatalf("resume at the newest evicted id: gap %v %v", rr.Gap, ids(rr))
	}
	if rr := read(t, s2, "a", a[0]); !rr.Gap {
		t.Fatal("resume before evicted events: no gap")
	}
	// The key is still honoured.
	again, err := s2.Publish(ctx, "a", []broker.Message{{Name: "token", Data: "other"}}, "key-1")
	if err != nil || !again.Replayed || !slices.Equal(again.IDs, keyed.IDs) {
		t.Fatalf("idempotent repeat after reopen: %+v %v, first %v", again, err, keyed.IDs)
	}
	// New ids continue above every old one, on every stream.
	fresh := pub(t, s2, "c", "new")
	if fresh[0] <= closed.IDs[0] || fresh[0] <= a[len(a)-1] {
		t.Fatalf("new id %d not above the old ones (%d, %d)", fresh[0], closed.IDs[0], a[len(a)-1])
	}
	next := pub(t, s2, "a", "6")
	if rr := read(t, s2, "a", a[len(a)-1]); rr.Gap || !slices.Equal(ids(rr), next) {
		t.Fatalf("resume at the last id before the restart: gap %v %v, want %v", rr.Gap, ids(rr), next)
	}
	// Closed stays closed.
	if _, err := s2.Publish(ctx, "b", []broker.Message{{Name: "m"}}, ""); !errors.Is(err, broker.ErrStreamClosed) {
		t.Fatalf("publish to a closed stream after reopen: %v", err)
	}
	if rr := read(t, s2, "b", closed.IDs[0]); rr.Gap || len(rr.Events) != 0 || !rr.Closed {
		t.Fatalf("resume at stop after reopen: %+v", rr)
	}
}

// A second store on the same file fails at once with a clear error
// instead of waiting for the lock forever.
// Ids stay above every id the file ever issued across a restart, also
// when the clock gives no help (here synctest's, in the year 2000, below
// the id epoch: ids come from the counter alone) and the stream that had
// them was deleted: a client resuming from an old id must not skip a new
// event that reused it.
func TestIDsGoOnAfterReopen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "broker.db")
		s1, err := Open(path, storetest.Defaults(broker.StoreOptions{}), storetest.NewRecorder())
		if err != nil {
			t.Fatal(err)
		}
		old := pub(t, s1, "a", "1", "2")
		if err := s1.Delete(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
		if err := s1.Close(); err != nil {
			t.Fatal(err)
		}
		s2, err := Open(path, storetest.Defaults(broker.StoreOptions{}), storetest.NewRecorder())
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		if next := pub(t, s2, "a", "3"); next[0] <= old[len(old)-1] {
			t.Fatalf("after reopening, id %d; the file had issued up to %d", next[0], old[len(old)-1])
		}
	})
}

func TestSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	open(t, path, broker.StoreOptions{}, storetest.NewRecorder())
	start := time.Now()
	s, err := Open(path, storetest.Defaults(broker.StoreOptions{}), storetest.NewRecorder())
	if err == nil {
		_ = s.Close()
		t.Fatal("a second Open of a file in use succeeded")
	}
	if !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("error %q does not say the file is locked", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("second Open took %v", d)
	}
}

// A data directory Open creates is durable: each directory that gained a
// new entry is synced, from the top down (power loss cannot be staged
// here, so the syncs are recorded). Directories that were there are not.
func TestNewDirectoriesAreSynced(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "c")
	var synced []string
	record := func(d string) error {
		synced = append(synced, d)
		return nil
	}
	if err := mkdirDurable(dir, record); err != nil {
		t.Fatal(err)
	}
	want := []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b")}
	if !slices.Equal(synced, want) {
		t.Fatalf("synced %q, want %q", synced, want)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("%s not created: %v", dir, err)
	}
	synced = nil
	if err := mkdirDurable(dir, record); err != nil || len(synced) != 0 {
		t.Fatalf("an existing directory: synced %q, err %v; want nothing synced", synced, err)
	}
	path := filepath.Join(root, "x", "broker.db")
	open(t, path, broker.StoreOptions{}, storetest.NewRecorder())
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Open in a new directory: %v", err)
	}
}

// A publish whose context ended before the committer took it stores
// nothing and reports the context's error.
func TestCancelledPublish(t *testing.T) {
	s, fan := newStore(t, broker.StoreOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	msgs := []broker.Message{{Name: broker.EventMessage, Data: "x"}}
	if _, err := s.Publish(ctx, "s", msgs, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("publish with a cancelled context: %v", err)
	}
	if _, err := s.CloseStream(ctx, "s", ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("close with a cancelled context: %v", err)
	}
	if err := s.Create(ctx, "s"); !errors.Is(err, context.Canceled) {
		t.Fatalf("create with a cancelled context: %v", err)
	}
	if _, err := s.Info(context.Background(), "s"); !errors.Is(err, broker.ErrStreamNotFound) {
		t.Fatalf("the cancelled publish created the stream: %v", err)
	}
	old := pub(t, s, "s", "kept")
	if _, err := s.Publish(ctx, "s", msgs, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("publish with a cancelled context: %v", err)
	}
	if rr := read(t, s, "s", 0); !slices.Equal(ids(rr), old) {
		t.Fatalf("stored %v, want only %v", ids(rr), old)
	}
	if got := fan.IDs("s"); !slices.Equal(got, old) {
		t.Fatalf("delivered %v", got)
	}
	if _, keys, _ := onDisk(t, s, "s"); keys != 0 {
		t.Fatal("the cancelled publish stored its key")
	}
}

// After Close every call fails with ErrStoreUnavailable.
func TestClosedStore(t *testing.T) {
	s, _ := newStore(t, broker.StoreOptions{})
	pub(t, s, "s", "x")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	msgs := []broker.Message{{Name: broker.EventMessage, Data: "x"}}
	checks := map[string]error{}
	_, checks["publish"] = s.Publish(ctx, "s", msgs, "")
	_, checks["close"] = s.CloseStream(ctx, "s", "")
	_, checks["read"] = s.Read(ctx, "s", 0, 0)
	_, checks["info"] = s.Info(ctx, "s")
	checks["create"] = s.Create(ctx, "t")
	checks["delete"] = s.Delete(ctx, "s")
	checks["ping"] = s.Ping(ctx)
	for name, err := range checks {
		if !errors.Is(err, broker.ErrStoreUnavailable) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
}

// blockingFan blocks the committer in its first Deliver until release is
// closed.
type blockingFan struct {
	*storetest.Recorder
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (f *blockingFan) Deliver(fr *broker.Frame) {
	f.once.Do(func() {
		close(f.entered)
		<-f.release
	})
	f.Recorder.Deliver(fr)
}

// Publishes that arrive while a transaction is in flight share the next
// commit (n publishes, 2 commits), and a request that fails in a batch
// (here: publishes to a closed stream) does not fail the others.
func TestGroupCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fan := &blockingFan{Recorder: storetest.NewRecorder(), entered: make(chan struct{}), release: make(chan struct{})}
		s := open(t, filepath.Join(t.TempDir(), "broker.db"), broker.StoreOptions{}, fan)
		ctx := context.Background()
		const n = 50
		results := make([]broker.PublishResult, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		wg.Go(func() { results[0], errs[0] = s.CloseStream(ctx, "closed", "") })
		<-fan.entered // the committer is busy with the close
		stream := func(i int) string {
			if i%5 == 0 {
				return "closed"
			}
			return fmt.Sprint("s", i%4)
		}
		for i := 1; i < n; i++ {
			wg.Go(func() {
				results[i], errs[i] = s.Publish(ctx, stream(i), []broker.Message{{Name: broker.EventMessage, Data: fmt.Sprint(i)}}, "")
			})
		}
		synctest.Wait() // every publisher waits for the committer
		close(fan.release)
		wg.Wait()
		if c := s.commits.Load(); c != 2 {
			t.Fatalf("%d requests took %d commits, want 2", n, c)
		}
		seen := map[uint64]bool{}
		for i := range n {
			if i > 0 && stream(i) == "closed" {
				if !errors.Is(errs[i], broker.ErrStreamClosed) {
					t.Fatalf("publish %d to the closed stream: %v", i, errs[i])
				}
				continue
			}
			if errs[i] != nil || len(results[i].IDs) != 1 || seen[results[i].IDs[0]] {
				t.Fatalf("request %d answered %+v %v", i, results[i], errs[i])
			}
			seen[results[i].IDs[0]] = true
		}
		for i := range 4 {
			stream := fmt.Sprint("s", i)
			rr := read(t, s, stream, 0)
			if len(rr.Events) == 0 || !slices.IsSorted(ids(rr)) || !slices.Equal(fan.IDs(stream), ids(rr)) {
				t.Fatalf("%s: stored %v, delivered %v", stream, ids(rr), fan.IDs(stream))
			}
		}
		if rr := read(t, s, "closed", 0); len(rr.Events) != 1 || !rr.Closed {
			t.Fatalf("closed stream: %+v", rr)
		}
	})
}

func TestAgeBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newStore(t, broker.StoreOptions{MaxAge: time.Minute})
		a := pub(t, s, "s", "a")[0]
		time.Sleep(30 * time.Second)
		b := pub(t, s, "s", "b")[0]
		time.Sleep(31 * time.Second) // a is older than a minute
		if rr := read(t, s, "s", 0); len(rr.Events) != 1 || rr.Events[0].ID != b || rr.FirstID != b {
			t.Fatalf("after a aged out: %v", ids(rr))
		}
		if info, err := s.Info(context.Background(), "s"); err != nil || info.Retained != 1 || info.FirstID != b {
			t.Fatalf("info after a aged out: %+v %v", info, err)
		}
		// Resuming at a lost nothing: a itself aged out, b is there.
		if rr := read(t, s, "s", a); rr.Gap || len(rr.Events) != 1 {
			t.Fatalf("resume at a: gap %v, %v", rr.Gap, ids(rr))
		}
		time.Sleep(time.Minute)
		rr := read(t, s, "s", a)
		if !rr.Gap || len(rr.Events) != 0 || rr.FirstID != 0 || rr.LastID != b {
			t.Fatalf("resume at a after b aged out: %+v", rr)
		}
		if rr := read(t, s, "s", b); rr.Gap {
			t.Fatal("resume at the last id reported a gap although nothing after it was lost")
		}
	})
}

// The janitor trims aged events on disk and expires idle streams (not
// one with a subscriber), ends their subscriptions and logs it.
func TestJanitorTrimsAndExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		fan := storetest.NewRecorder()
		s := open(t, filepath.Join(t.TempDir(), "broker.db"),
			broker.StoreOptions{MaxAge: time.Minute, IdleTTL: time.Hour, Logger: zerolog.New(&logs)}, fan)
		if _, err := s.Publish(context.Background(), "idle", []broker.Message{{Name: "m", Data: "x"}}, "key"); err != nil {
			t.Fatal(err)
		}
		pub(t, s, "watched", "x")
		fan.SetSubscribers("watched", 1)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if events, keys, _ := onDisk(t, s, "idle"); events != 0 || keys != 0 {
			t.Fatalf("janitor left %d aged events and %d keys on disk", events, keys)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if _, err := s.Info(context.Background(), "idle"); !errors.Is(err, broker.ErrStreamNotFound) {
			t.Fatalf("idle stream not expired: %v", err)
		}
		if _, _, exists := onDisk(t, s, "idle"); exists {
			t.Fatal("idle stream still on disk")
		}
		if !fan.Ended("idle") {
			t.Fatal("expiry did not end the stream's subscriptions")
		}
		if !strings.Contains(logs.String(), `"stream":"idle"`) || !strings.Contains(logs.String(), "stream expired") {
			t.Fatalf("no expiry line in the log:\n%s", logs.String())
		}
		if _, err := s.Info(context.Background(), "watched"); err != nil {
			t.Fatalf("stream with a subscriber expired: %v", err)
		}
		if s.Len() != 1 {
			t.Fatalf("Len %d, want 1", s.Len())
		}
	})
}

// A stream whose last publish is long past but that had a subscriber
// until a moment ago is kept a whole idle TTL from then: a client that
// drops and reconnects after EventSource's retry: finds its history.
func TestWatchedStreamOutlivesItsSubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fan := storetest.NewRecorder()
		s := open(t, filepath.Join(t.TempDir(), "broker.db"), broker.StoreOptions{MaxAge: 24 * time.Hour, IdleTTL: time.Hour}, fan)
		pub(t, s, "read", "answer")
		fan.SetSubscribers("read", 1)
		time.Sleep(2 * time.Hour) // read long after the answer ended
		synctest.Wait()
		fan.SetSubscribers("read", 0) // the connection drops
		time.Sleep(time.Hour - time.Minute)
		synctest.Wait()
		if _, err := s.Info(context.Background(), "read"); err != nil {
			t.Fatalf("%v after its subscriber left (idle TTL 1h): %v", time.Hour-time.Minute, err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if _, err := s.Info(context.Background(), "read"); !errors.Is(err, broker.ErrStreamNotFound) {
			t.Fatalf("an hour past the idle TTL, the stream is still there: %v", err)
		}
	})
}

func TestCountBoundAndStopIsKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newStore(t, broker.StoreOptions{MaxEvents: 3, MaxAge: time.Minute})
		for range 10 {
			pub(t, s, "s", "x")
		}
		if rr := read(t, s, "s", 0); len(rr.Events) != 3 {
			t.Fatalf("retained %d, want 3", len(rr.Events))
		}
		if events, _, _ := onDisk(t, s, "s"); events != 3 {
			t.Fatalf("%d events on disk, want 3", events)
		}
		res, err := s.CloseStream(context.Background(), "s", "")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		rr := read(t, s, "s", 0)
		if len(rr.Events) != 1 || rr.Events[0].ID != res.IDs[0] || rr.Events[0].Name != broker.EventStop || !rr.Closed {
			t.Fatalf("closed stream after its events aged out: %+v", rr)
		}
		if events, _, _ := onDisk(t, s, "s"); events != 1 {
			t.Fatalf("%d events on disk, want the stop event alone", events)
		}
		if _, err := s.Publish(context.Background(), "s", []broker.Message{{Name: "m"}}, ""); !errors.Is(err, broker.ErrStreamClosed) {
			t.Fatalf("publish after close: %v", err)
		}
	})
}

func TestIdempotencyForgottenWithHistory(t *testing.T) {
	s, _ := newStore(t, broker.StoreOptions{MaxEvents: 2})
	ctx := context.Background()
	msgs := []broker.Message{{Name: "m", Data: "x"}}
	first, _ := s.Publish(ctx, "s", msgs, "k")
	again, _ := s.Publish(ctx, "s", msgs, "k")
	if !again.Replayed || again.IDs[0] != first.IDs[0] {
		t.Fatalf("repeat: %+v", again)
	}
	pub(t, s, "s", "y")
	pub(t, s, "s", "z")
	later, _ := s.Publish(ctx, "s", msgs, "k")
	if later.Replayed {
		t.Fatal("key remembered after its event left the history")
	}
	if _, keys, _ := onDisk(t, s, "s"); keys != 1 {
		t.Fatalf("%d keys on disk, want 1", keys)
	}
}

// The file does not grow without bound: bbolt reuses the pages that
// trimmed events and deleted streams free.
func TestFileSizePlateaus(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	s := open(t, path, broker.StoreOptions{MaxEvents: 10, MaxStreams: 100000}, storetest.NewRecorder())
	ctx := context.Background()
	data := strings.Repeat("x", 1000)
	const (
		rounds    = 10
		streams   = 20
		workers   = 8
		publishes = 10
	)
	sizes := make([]int64, rounds)
	used := make([]int64, rounds) // pages in use up to the highest one, in bytes
	for round := range rounds {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < streams; i += workers {
					stream := fmt.Sprintf("r%d-s%d", round, i)
					for range publishes {
						msgs := []broker.Message{{Data: data}, {Data: data}, {Data: data}, {Data: data}, {Data: data}}
						for j := range msgs {
							msgs[j].Name = broker.EventMessage
						}
						if _, err := s.Publish(ctx, stream, msgs, ""); err != nil {
							t.Error(err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		if round > 0 { // the previous round's streams go
			for i := range streams {
				if err := s.Delete(ctx, fmt.Sprintf("r%d-s%d", round-1, i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		sizes[round] = fi.Size()
		if err := s.db.View(func(tx *bbolt.Tx) error { used[round] = tx.Size(); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("file size per round: %v, high-water mark: %v (%d MB of event data written)", sizes, used, rounds*streams*publishes*5*len(data)>>20)
	last := rounds - 1
	if sizes[last] > sizes[2]*6/5 || used[last] > used[2]*6/5 {
		t.Fatalf("file keeps growing: sizes %v, high-water mark %v", sizes, used)
	}
	// Far below what went through it: about 2 × 20 streams of 10
	// retained 1 KB events are held at any time.
	if written := int64(rounds * streams * publishes * 5 * len(data)); sizes[last] > written/2 {
		t.Fatalf("file of %d bytes after %d bytes written", sizes[last], written)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// failingCommit makes the store's next commit fail once fail is set:
// after reaching the file (bbolt's fsync after the meta page failed: the
// transaction is visible) or cleanly (rolled back, as when the disk is
// full while the pages are written).
type failingCommit struct {
	fail, reached atomic.Bool
	during        func() // run in a failing commit, before it fails
}

func (f *failingCommit) commit(tx *bbolt.Tx) error {
	if !f.fail.CompareAndSwap(true, false) {
		return tx.Commit()
	}
	if f.during != nil {
		f.during()
	}
	if f.reached.Load() {
		if err := tx.Commit(); err != nil {
			return err
		}
		return errors.New("fdatasync: input/output error")
	}
	_ = tx.Rollback()
	return errors.New("write: no space left on device")
}

// A commit that fails after reaching the file leaves its events readable
// although their publisher was told they failed and no subscriber got
// them. The store then refuses writes until a restart, says it is not
// ready, and ends every subscription, so that clients resume from what
// the file holds: nothing is lost silently and no id is issued twice.
func TestCommitFailingAfterReachingTheFile(t *testing.T) {
	s, fan := newStore(t, broker.StoreOptions{})
	var fc failingCommit
	s.commit = fc.commit
	a := pub(t, s, "s", "a")
	// A publish that arrives while the failing commit runs waits for the
	// committer, which takes it once the commit has failed.
	waiting := make(chan error, 1)
	fc.during = func() {
		go func() {
			_, err := s.Publish(context.Background(), "s", []broker.Message{{Name: broker.EventMessage, Data: "waiting"}}, "")
			waiting <- err
		}()
		time.Sleep(50 * time.Millisecond) // into submit, blocked on the committer
	}
	fc.reached.Store(true)
	fc.fail.Store(true)
	msgs := []broker.Message{{Name: broker.EventMessage, Data: "b"}}
	if _, err := s.Publish(context.Background(), "s", msgs, ""); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("publish whose commit failed: %v", err)
	}
	// The disk works again (the failure was once); the store must not trust it.
	if err := <-waiting; !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("publish that was waiting when the commit failed: %v, want refused", err)
	}
	if _, err := s.Publish(context.Background(), "s", msgs, ""); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("publish after a commit failed past the meta page: %v, want refused until a restart", err)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("ping: %v", err)
	}
	if !fan.Ended("*") {
		t.Fatal("subscriptions were not ended: they would never see b")
	}
	if rr := read(t, s, "s", a[0]); len(rr.Events) != 1 || rr.Events[0].Data != "b" || rr.Gap {
		t.Fatalf("a resume after a: %+v, want b, which the file holds", rr)
	}
	if got := fan.IDs("s"); !slices.Equal(got, a) {
		t.Fatalf("delivered %v", got)
	}
}

// A commit that fails cleanly (rolled back) leaves the store working.
func TestCommitFailingCleanlyLeavesTheStoreWorking(t *testing.T) {
	s, fan := newStore(t, broker.StoreOptions{})
	var fc failingCommit
	s.commit = fc.commit
	a := pub(t, s, "s", "a")
	fc.fail.Store(true)
	msgs := []broker.Message{{Name: broker.EventMessage, Data: "b"}}
	if _, err := s.Publish(context.Background(), "s", msgs, ""); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("publish whose commit failed: %v", err)
	}
	c := pub(t, s, "s", "c")
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	want := append(slices.Clone(a), c...)
	if rr := read(t, s, "s", 0); !slices.Equal(ids(rr), want) || !slices.Equal(fan.IDs("s"), want) || fan.Ended("*") {
		t.Fatalf("stored %v, delivered %v, want %v both", ids(rr), fan.IDs("s"), want)
	}
}

// A hung disk: a publish gives up at its deadline instead of waiting for
// the commit, readiness goes down while the commit hangs and comes back
// after it, and Close does not wait for it forever.
func TestHungCommit(t *testing.T) {
	s, _ := newStore(t, broker.StoreOptions{})
	s.stallLimit, s.closeWait = 100*time.Millisecond, 200*time.Millisecond
	hang, release := make(chan struct{}), make(chan struct{})
	var hung atomic.Bool
	s.commit = func(tx *bbolt.Tx) error {
		if hung.Load() {
			close(hang)
			<-release
		}
		return tx.Commit()
	}
	pub(t, s, "s", "a")
	hung.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.Publish(ctx, "s", []broker.Message{{Name: broker.EventMessage, Data: "b"}}, "")
		done <- err
	}()
	<-hang
	select {
	case err := <-done:
		if !errors.Is(err, broker.ErrStoreUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("publish during a hung commit: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the publish waited for the hung commit past its deadline")
	}
	if err := s.Ping(context.Background()); !errors.Is(err, broker.ErrStoreUnavailable) {
		t.Fatalf("ping during a hung commit: %v", err)
	}
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "has not finished") {
		t.Fatalf("close during a hung commit: %v", err)
	}
	close(release) // the commit ends; the file is left to the test's end
}

// A hung disk and writes with no deadline of their own (a request's
// context has none): each gives up after commitWait with
// ErrStoreUnavailable, the one the committer took and the ones queued
// behind it, instead of waiting for as long as the disk hangs.
func TestHungCommitBoundsWritesWithoutADeadline(t *testing.T) {
	s, _ := newStore(t, broker.StoreOptions{})
	s.stallLimit, s.closeWait, s.commitWait = 100*time.Millisecond, 200*time.Millisecond, 300*time.Millisecond
	hang, release := make(chan struct{}), make(chan struct{})
	var hung atomic.Bool
	s.commit = func(tx *bbolt.Tx) error {
		if hung.CompareAndSwap(true, false) {
			close(hang)
			<-release
		}
		return tx.Commit()
	}
	defer close(release) // the commit ends; the file is left to the test's end
	hung.Store(true)
	done := make(chan error, 3)
	publish := func(data string) {
		_, err := s.Publish(context.Background(), "s", []broker.Message{{Name: broker.EventMessage, Data: data}}, "")
		done <- err
	}
	go publish("taken")
	<-hang
	go publish("queued 1") // the committer is held: these are not taken
	go publish("queued 2")
	for range 3 {
		select {
		case err := <-done:
			if !errors.Is(err, broker.ErrStoreUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("a write during a hung commit: %v, want ErrStoreUnavailable after commitWait", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a write with no deadline waited for the hung commit past commitWait")
		}
	}
}

// A subscribe to a stream that does not exist (SPEC allows it before the
// first publish) leaves nothing behind in the watched streams: ids made
// up by clients would pile up there for the idle TTL.
func TestReadOfMissingStreamsWatchesNothing(t *testing.T) {
	fan := storetest.NewRecorder()
	s := open(t, filepath.Join(t.TempDir(), "b.db"), broker.StoreOptions{}, fan)
	for i := range 100 {
		name := fmt.Sprintf("made-up-%d", i)
		fan.SetSubscribers(name, 1)
		if _, err := s.Read(context.Background(), name, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	s.watchedMu.Lock()
	n := len(s.watched)
	s.watchedMu.Unlock()
	if n != 0 {
		t.Fatalf("%d watched entries for streams that do not exist", n)
	}
}

// The janitor picks idle streams from its cache and the committer checks
// again on disk. A subscriber that came and went in between (its read
// recorded it) keeps the stream a whole idle TTL, as it would had the
// janitor seen it.
func TestSweepCountsASubscriberSinceTheJanitorDecided(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fan := storetest.NewRecorder()
		s := open(t, filepath.Join(t.TempDir(), "broker.db"), broker.StoreOptions{MaxAge: 24 * time.Hour, IdleTTL: time.Hour}, fan)
		pub(t, s, "s", "answer")
		// Between two janitor runs (every 30 s here), past the idle TTL:
		// the next run would expire the stream.
		time.Sleep(time.Hour + 15*time.Second)
		synctest.Wait()
		if _, err := s.Info(context.Background(), "s"); err != nil {
			t.Fatalf("expired before the test's sweep: %v", err)
		}
		// A subscriber arrives and reads before the committer runs the
		// janitor's sweep, then leaves.
		fan.SetSubscribers("s", 1)
		if _, err := s.Read(context.Background(), "s", 0, 0); err != nil {
			t.Fatal(err)
		}
		fan.SetSubscribers("s", 0)
		r := &request{op: opSweep, names: []string{"s"}, expire: map[string]bool{"s": true}}
		if err := s.submit(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Info(context.Background(), "s"); err != nil {
			t.Fatalf("the stream expired just after a subscriber read it: %v", err)
		}
	})
}

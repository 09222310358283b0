package writepath

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/sse"
)

// feedChunks feeds data to a fresh counter in random chunks (sizes 1 to
// max) and returns the total.
func feedChunks(data []byte, rng *rand.Rand, maxChunk int) int {
	var c eventCounter
	n := 0
	for len(data) > 0 {
		k := min(1+rng.IntN(maxChunk), len(data))
		n += c.feed(data[:k])
		data = data[k:]
	}
	return n
}

func TestCountingReaderExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))

	// A real stream: our retry block, then events as our encoder writes
	// them (multi-line and empty data included) and as r3labs writes them.
	stream := sse.AppendRetry(nil, 3000)
	const events = 500
	for i := range events {
		switch i % 4 {
		case 0:
			stream = sse.AppendEvent(stream, uint64(i+1), "", payload)
		case 1:
			stream = sse.AppendEvent(stream, uint64(i+1), "token", "a\nb\nc")
		case 2:
			stream = sse.AppendEvent(stream, uint64(i+1), "", "")
		case 3:
			stream = append(stream, "id: \ndata: "+payload+"\n\n"...) // r3labs
		}
	}
	var decoded int
	dec := sse.NewDecoder(bytes.NewReader(stream))
	for {
		if _, err := dec.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		decoded++
	}
	if decoded != events {
		t.Fatalf("decoder read %d events, want %d", decoded, events)
	}
	for _, maxChunk := range []int{1, 2, 3, 7, 64, 4096, len(stream)} {
		for range 20 {
			if got := feedChunks(stream, rng, maxChunk); got != events+1 {
				t.Fatalf("chunks up to %d bytes: counted %d blocks, want %d events + the retry block", maxChunk, got, events)
			}
		}
	}

	// Arbitrary bytes, runs of LFs included: the count over any chunking
	// is the count over the whole.
	for range 2000 {
		data := make([]byte, rng.IntN(200))
		for i := range data {
			data[i] = "\n\nx:"[rng.IntN(4)]
		}
		want := bytes.Count(data, lflf)
		for _, maxChunk := range []int{1, 2, 3, 5, 16} {
			if got := feedChunks(data, rng, maxChunk); got != want {
				t.Fatalf("%q in chunks up to %d: %d, want %d", data, maxChunk, got, want)
			}
		}
	}
}

// TestBothImplementationsDeliverEverything runs the fan-out harness small,
// with a window small enough that the publisher waits for the subscribers,
// and checks that every subscriber received exactly every event, decoded
// with our strict decoder, and that teardown leaves no goroutine behind.
func TestBothImplementationsDeliverEverything(t *testing.T) {
	const rounds = 50
	for _, im := range impls {
		for _, sh := range []shape{{1, 3}, {3, 2}} {
			t.Run(im.name+"/"+sh.String(), func(t *testing.T) {
				goroutines := runtime.NumGoroutine()
				sc := newScope(t)
				f := startFanout(sc, im, sh, true)
				if err := f.run(rounds, 4, 2); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond) // let any extra event arrive
				sc.close()                         // the readers have returned: the records are complete

				for i := range f.subs.subs {
					if got := f.subs.count(i); got != rounds {
						t.Errorf("subscriber %d counted %d events, want %d", i, got, rounds)
					}
					dec := sse.NewDecoder(bytes.NewReader(f.subs.record[i].Bytes()))
					var prev uint64
					n := 0
					for {
						ev, err := dec.Next()
						if err != nil {
							break
						}
						n++
						if ev.Data != payload {
							t.Fatalf("subscriber %d event %d: data %q", i, n, ev.Data)
						}
						if im.name == "ours" {
							id, err := strconv.ParseUint(ev.ID, 10, 64)
							if err != nil || id <= prev {
								t.Fatalf("subscriber %d event %d: id %q after %d", i, n, ev.ID, prev)
							}
							prev = id
						}
					}
					if n != rounds {
						t.Errorf("subscriber %d: decoder read %d events, want %d", i, n, rounds)
					}
				}
				if got, want := f.subs.delivered(), int64(rounds*f.n); got != want {
					t.Errorf("delivered %d events in all, want %d", got, want)
				}

				deadline := time.Now().Add(5 * time.Second)
				for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if n := runtime.NumGoroutine(); n > goroutines {
					buf := make([]byte, 1<<20)
					buf = buf[:runtime.Stack(buf, true)]
					t.Fatalf("%d goroutines after teardown, %d before:\n%s", n, goroutines, trimStacks(string(buf)))
				}
			})
		}
	}
}

// trimStacks keeps the first lines of each goroutine's stack.
func trimStacks(s string) string {
	var out []string
	for _, g := range strings.Split(s, "\n\n") {
		lines := strings.Split(g, "\n")
		out = append(out, strings.Join(lines[:min(len(lines), 6)], "\n"))
	}
	return strings.Join(out, "\n\n")
}

// Package examples_test runs every example of examples/ against the real
// broker binary, with auth on, and checks what arrives: the publishers in
// Go, Python and Node stream their mock answer token by token into a
// stream and close it; the browser page renders it and stops at `stop`.
package examples_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// answer is the mock answer every example publisher streams (each has its
// own copy: the test checks they agree).
const answer = "Server-Sent Events carry this answer token by token, as it is " +
	"written; a lost connection resumes where it stopped. " +
	"Unicode too: café, naïve, 你好."

// delay is the pause between tokens given to the publishers.
const delay = 40 * time.Millisecond

func TestMain(m *testing.M) {
	code := m.Run()
	if goBuild.dir != "" {
		os.RemoveAll(goBuild.dir)
	}
	os.Exit(code)
}

// TestPublishers runs each publisher twice against one broker:
//   - without a stream: it creates one (answer-<random>); a subscriber joins
//     as soon as the publisher prints the id;
//   - with a stream, through a proxy that loses the answer of one publish
//     and of the close (the broker did them): the publisher must retry
//     without publishing anything twice.
//
// Each time the stream's history must hold exactly the printed tokens, in
// order, joined into the answer, then stop; and the subscriber must have
// read them as they were published, not all at the close.
func TestPublishers(t *testing.T) {
	b := startBroker(t, brokerConfig{})
	// Least privilege, as a deployment would do it: the publisher may only
	// publish, the reader only subscribe.
	pubToken := mintToken(t, []string{"answer-*"}, nil)
	subToken := mintToken(t, nil, []string{"answer-*", "given-*"})
	// A publisher that may also read can tell the id of a stop whose
	// answer was lost (the lossy runs need it).
	bothToken := mintToken(t, []string{"given-*"}, []string{"given-*"})
	env := func(brokerURL, token, stream string) map[string]string {
		return map[string]string{
			"BROKER_URL":   brokerURL,
			"BROKER_TOKEN": token,
			"STREAM":       stream,
			"DELAY_MS":     strconv.Itoa(int(delay / time.Millisecond)),
		}
	}

	for _, p := range publishers {
		t.Run(p.name, func(t *testing.T) {
			t.Run("creates a stream", func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				rp := startPublisher(t, p, env(b.URL, pubToken, ""))
				stream := rp.streamID(t)
				if !strings.HasPrefix(stream, "answer-") || len(stream) < len("answer-")+20 {
					t.Errorf("created stream %q, want answer- and a random part", stream)
				}
				sub := subscribe(t, ctx, b.URL, subToken, stream)
				run := rp.wait(t)
				checkRun(t, b.URL, subToken, stream, run, sub.wait(t))
			})

			t.Run("given stream, lost answers", func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				stream := "given-" + p.name
				// Subscribe first: the stream does not exist yet, the
				// subscriber waits for its first event.
				sub := subscribe(t, ctx, b.URL, subToken, stream)
				const dropAt = 3
				proxy := startLossyProxy(t, b.URL, dropAt, false)
				run := startPublisher(t, p, env(proxy.URL, bothToken, stream)).wait(t)
				if run.Stream != stream {
					t.Fatalf("the publisher printed stream %q, want the given %q", run.Stream, stream)
				}
				checkRun(t, b.URL, subToken, stream, run, sub.wait(t))
				checkRetries(t, proxy.requests(), len(run.Tokens), dropAt)
			})

			// The stream as the first argument (STREAM unset); the answers
			// to a publish and to the close are cut halfway through their
			// body: a 201 whose JSON never completes is retried like a lost
			// answer, with the same key.
			t.Run("stream argument, answers cut mid-body", func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				stream := "given-cut-" + p.name
				sub := subscribe(t, ctx, b.URL, subToken, stream)
				const dropAt = 2
				proxy := startLossyProxy(t, b.URL, dropAt, true)
				run := startPublisher(t, p, env(proxy.URL, bothToken, ""), stream).wait(t)
				if run.Stream != stream {
					t.Fatalf("the publisher printed stream %q, want the argument %q\n%s", run.Stream, stream, run.Stderr)
				}
				checkRun(t, b.URL, subToken, stream, run, sub.wait(t))
				checkRetries(t, proxy.requests(), len(run.Tokens), dropAt)
			})
		})
	}
}

// checkRun checks one publisher run against the stream's history and what
// a subscriber read while it ran.
func checkRun(t *testing.T, base, token, stream string, run publisherRun, got []arrival) {
	t.Helper()
	var joined strings.Builder
	for _, tok := range run.Tokens {
		joined.WriteString(tok.Data)
	}
	if joined.String() != answer {
		t.Errorf("the printed tokens join into %q, want the answer %q", joined.String(), answer)
	}
	if len(run.Tokens) < 10 {
		t.Errorf("%d tokens printed, want the answer cut into words (at least 10)", len(run.Tokens))
	}

	// The history holds exactly the printed events: the tokens, then stop.
	events, gap := history(t, base, token, stream)
	if gap {
		t.Errorf("history of %s reports a gap", stream)
	}
	var want []historyEvent
	for _, tok := range run.Tokens {
		want = append(want, historyEvent{ID: tok.ID, Event: "token", Data: tok.Data})
	}
	want = append(want, historyEvent{ID: run.StopID, Event: "stop", Data: ""})
	if !slices.Equal(events, want) {
		t.Fatalf("history of %s:\n got %+v\nwant %+v", stream, events, want)
	}
	if in := info(t, base, token, stream); !in.Closed || in.LastID == nil || *in.LastID != run.StopID {
		t.Errorf("stream %s after the publisher: %+v, want closed with stop %s last", stream, in, run.StopID)
	}

	// The subscriber read the same events, in order...
	var read []historyEvent
	for _, a := range got {
		read = append(read, historyEvent{ID: a.ID, Event: a.Type, Data: a.Data})
	}
	if !slices.Equal(read, want) {
		t.Fatalf("the subscriber read:\n got %+v\nwant %+v", read, want)
	}
	// ...as they were published: the first token before the publisher had
	// published its last, and in several bursts (everything at the close
	// would be one).
	first, last := got[0].At, got[len(got)-2].At
	if !first.Before(run.LastTokenAt) {
		t.Errorf("the first token arrived at %v, after the publisher printed its last token (%v): not streamed",
			first.Format(time.StampMicro), run.LastTokenAt.Format(time.StampMicro))
	}
	tokens := got[:len(got)-1]
	n := bursts(tokens, delay/2)
	if n < 2 {
		t.Errorf("the %d tokens arrived in %d burst(s) within %v, want them spread out token by token", len(tokens), n, last.Sub(first))
	}
	t.Logf("%d tokens arrived in %d bursts over %v", len(tokens), n, last.Sub(first).Round(time.Millisecond))
}

// checkRetries checks what went through the lossy proxy: every publish
// carried an Idempotency-Key of its own; the one whose answer was lost was
// sent again with the same key and answered as a replay (published once);
// the close whose answer was lost was tried again and found the stream
// closed, and the publisher still printed the right stop id (checkRun).
func checkRetries(t *testing.T, posts []proxied, tokens, dropAt int) {
	t.Helper()
	keys := map[string]int{}
	var publishes, closes []proxied
	keyless := 0
	for _, p := range posts {
		if strings.HasSuffix(p.Path, "/close") {
			closes = append(closes, p)
			continue
		}
		publishes = append(publishes, p)
		if p.Key == "" {
			keyless++
		}
		keys[p.Key]++
	}
	if keyless > 0 {
		t.Errorf("%d of %d publishes without an Idempotency-Key", keyless, len(publishes))
	}
	if len(keys) != tokens {
		t.Errorf("%d distinct Idempotency-Keys for %d tokens, want one key per token", len(keys), tokens)
	}
	dropped := slices.IndexFunc(publishes, func(p proxied) bool { return p.Dropped })
	switch {
	case dropped < 0:
		t.Errorf("no publish answer was dropped (%d publishes): the test did not test retries", len(publishes))
	case dropped+1 >= len(publishes) || publishes[dropped+1].Key != publishes[dropped].Key:
		t.Errorf("the publish whose answer was lost was not retried with its key next: %+v", publishes)
	case !publishes[dropped+1].Replayed || publishes[dropped+1].Status != 201:
		t.Errorf("the retry of the lost publish was answered %d, replayed %v; want 201 replayed", publishes[dropped+1].Status, publishes[dropped+1].Replayed)
	case dropped != dropAt-1:
		t.Errorf("publish %d was dropped, want %d", dropped+1, dropAt)
	}
	if len(closes) != 2 || !closes[0].Dropped || closes[0].Status != 200 || closes[1].Status != 409 {
		t.Errorf("closes through the proxy: %+v; want the lost one (200) and its retry (409 stream_closed)", closes)
	}
}

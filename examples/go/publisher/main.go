// Command publisher streams a mock answer into an SSE Broker stream, token
// by token, with pkg/client, then closes the stream.
//
//	go run ./examples/go/publisher [-url URL] [-token JWT] [-stream ID] [-delay 80ms]
//
// Every flag defaults to an environment variable, as in the Python and Node
// examples: BROKER_URL (default http://localhost:8080), BROKER_TOKEN (a JWT
// with the publish right, when the broker has auth on; with the subscribe
// right too, a close whose answer was lost can still print the id of stop),
// STREAM (empty: the broker creates one named answer-<random>) and DELAY_MS
// (default 80).
//
// It prints one line per step, so a person or a test can follow it:
//
//	stream <id>
//	token <event id> <data as a JSON string>
//	stop <event id>
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sse-broker/broker/pkg/client"
)

// answer is the same mock answer as the Python and Node examples'; the
// tests check that a subscriber reads exactly this text back.
const answer = "Server-Sent Events carry this answer token by token, as it is " +
	"written; a lost connection resumes where it stopped. " +
	"Unicode too: café, naïve, 你好."

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "publisher:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("publisher", flag.ContinueOnError)
	url := fs.String("url", envOr("BROKER_URL", "http://localhost:8080"), "broker base URL (env BROKER_URL)")
	token := fs.String("token", os.Getenv("BROKER_TOKEN"), "JWT with the publish right (env BROKER_TOKEN)")
	stream := fs.String("stream", os.Getenv("STREAM"), "stream to publish into; empty: create one (env STREAM)")
	delayMS, err := strconv.Atoi(envOr("DELAY_MS", "80"))
	if err != nil {
		return fmt.Errorf("DELAY_MS: %w", err)
	}
	delay := fs.Duration("delay", time.Duration(delayMS)*time.Millisecond, "pause between tokens (env DELAY_MS, in ms)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch fs.NArg() { // the stream may also be the first argument, as in the Python and Node publishers
	case 0:
	case 1:
		*stream = fs.Arg(0)
	default:
		return fmt.Errorf("one argument at most (the stream), got %q", fs.Args())
	}

	var opts []client.Option
	if *token != "" {
		opts = append(opts, client.WithToken(*token))
	}
	c := client.New(*url, opts...)

	if *stream == "" {
		if *stream, err = c.CreateStream(ctx, "answer-"); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "stream", *stream)
	for _, tok := range tokens(answer) {
		// Publish retries a lost request with the same Idempotency-Key, so
		// a token is stored once even when its first answer never came.
		res, err := c.Publish(ctx, *stream, client.Message{Event: "token", Data: tok})
		if err != nil {
			return err
		}
		quoted, _ := json.Marshal(tok) // a string always marshals
		fmt.Fprintln(out, "token", res.IDs[0], string(quoted))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(*delay):
		}
	}
	stopID, err := closeStream(ctx, c, *stream)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "stop", stopID)
	return nil
}

// closeStream closes stream, which publishes `stop`: subscribers end, and a
// browser's EventSource that reconnects after it gets 204 and stays closed.
// It returns the id of stop.
func closeStream(ctx context.Context, c *client.Client, stream string) (string, error) {
	res, err := c.Close(ctx, stream)
	if err == nil {
		return res.IDs[0], nil
	}
	// Close has no idempotency key: when an attempt closed the stream but
	// its answer was lost, the retry hears 409. The stream is closed then,
	// and its last event is the stop; reading it needs the subscribe right
	// too, else the 409 stands.
	if !errors.Is(err, client.ErrStreamClosed) {
		return "", err
	}
	info, infoErr := c.Info(ctx, stream)
	if infoErr != nil || !info.Closed || info.LastID == nil {
		return "", err
	}
	return *info.LastID, nil
}

// tokens splits text into words that keep their trailing space: joined
// again they give text back exactly.
func tokens(text string) []string {
	var out []string
	for text != "" {
		word := strings.IndexFunc(text, unicode.IsSpace)
		if word < 0 {
			return append(out, text)
		}
		end := word + strings.IndexFunc(text[word:], func(r rune) bool { return !unicode.IsSpace(r) })
		if end < word {
			return append(out, text)
		}
		out = append(out, text[:end])
		text = text[end:]
	}
	return out
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

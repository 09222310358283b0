package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/sse-broker/broker/pkg/client"
	"github.com/sse-broker/broker/pkg/sse"
)

// defaultTailIdle is three default heartbeats: a connection that delivered
// nothing for that long died without a word, and tail resumes on a new one.
const defaultTailIdle = 45 * time.Second

const tailDoc = `Prints the events of STREAM as they arrive, from the oldest retained one
(or after --from ID), and keeps following: after a drop it resumes with
Last-Event-ID, so nothing is lost or printed twice. It ends with exit code 0
when the stream is closed (after stop) or already was; on Ctrl-C also with 0;
with 1 when the broker refuses (bad id, no right); with 2 for a wrong
command line (an unknown format, say).

Formats:
  data  each event's data followed by a newline (multi-line data as is);
        the stop event is printed only when it carries data
  json  one object per line: {"id","event","data"}, or for lost events
        {"event":"gap","after","first"}
  sse   the events in the SSE wire format

Lost events (the broker's gap event) are reported on stderr in every format;
reconnects only when stderr is a terminal.`

// runTail is `broker tail`.
func runTail(c cli, args []string) int {
	fs := newFlagSet("tail", "broker tail STREAM [--from ID] [--format data|json|sse] [--url URL] [--token TOKEN]", tailDoc)
	from := fs.String("from", "", "print only the events after this `id` (default: every retained event)")
	format := fs.String("format", "data", "output `format`: data, json or sse")
	idle := fs.Duration("idle-timeout", defaultTailIdle, "reconnect when nothing, not even a heartbeat, arrived for this long; 0: never")
	conn := addClientFlags(fs)
	pos, code, ok := fs.parse(c, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return fs.usageError(c, "name one stream: broker tail STREAM")
	}
	write := tailFormat(*format)
	if write == nil {
		return fs.usageError(c, "--format %q is not data, json or sse", *format)
	}
	stream := pos[0]
	ctx, stop := signalContext()
	defer stop()
	opts := client.SubscribeOptions{From: *from, IdleTimeout: *idle}
	if isTerminal(c.stderr) {
		opts.OnReconnect = func(err error, wait time.Duration) {
			fmt.Fprintf(c.stderr, "broker tail: %v; reconnecting in %s\n", err, wait.Round(10*time.Millisecond))
		}
	}
	out := bufio.NewWriter(c.stdout)
	for ev, err := range conn.client(c.environ).Subscribe(ctx, stream, opts) {
		if err != nil {
			if ctx.Err() != nil {
				return 0 // Ctrl-C is the usual way to stop following
			}
			fmt.Fprintln(c.stderr, "broker tail:", err)
			return 1
		}
		if ev.Kind == client.KindGap {
			fmt.Fprintf(c.stderr, "broker tail: warning: events after %s were lost (the broker now keeps from %s)\n",
				ev.Gap.After, orNone(ev.Gap.First))
		}
		write(out, ev)
		// One flush per event: a tail is read by people and pipes as it comes.
		if err := out.Flush(); err != nil {
			fmt.Fprintln(c.stderr, "broker tail: writing:", err)
			return 1
		}
	}
	return 0
}

func orNone(id *string) string {
	if id == nil {
		return "none retained"
	}
	return *id
}

// tailFormat returns the writer of one subscription value in format, nil
// for an unknown format. Buffered writes report their errors at the flush.
func tailFormat(format string) func(w *bufio.Writer, ev client.Event) {
	switch format {
	case "data":
		return writeData
	case "json":
		return writeJSON
	case "sse":
		return writeSSE
	}
	return nil
}

func writeData(w *bufio.Writer, ev client.Event) {
	if ev.Kind != client.KindEvent || (ev.Name == "stop" && ev.Data == "") {
		return // the gap is on stderr; an empty stop is not a line of the stream
	}
	w.WriteString(ev.Data)
	w.WriteByte('\n')
}

func writeJSON(w *bufio.Writer, ev client.Event) {
	var v any = struct {
		ID    string `json:"id"`
		Event string `json:"event"`
		Data  string `json:"data"`
	}{ev.ID, ev.Name, ev.Data}
	if ev.Kind == client.KindGap {
		v = struct {
			Event string  `json:"event"`
			After string  `json:"after"`
			First *string `json:"first"`
		}{"gap", ev.Gap.After, ev.Gap.First}
	}
	b, _ := json.Marshal(v) // strings and string pointers always marshal
	w.Write(append(b, '\n'))
}

func writeSSE(w *bufio.Writer, ev client.Event) {
	if ev.Kind == client.KindGap {
		w.Write(sse.AppendUnnumberedEvent(nil, "gap", ev.Data))
		return
	}
	io.WriteString(w, "id: "+ev.ID+"\n")
	w.Write(sse.AppendUnnumberedEvent(nil, ev.Name, ev.Data))
}

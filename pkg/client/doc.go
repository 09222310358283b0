// Package client is the Go client a service uses to talk to the broker:
// publish events (one or a batch), close and delete streams, read their
// info and history, and subscribe.
//
// # Publishing exactly once
//
// Publish sends one request with an Idempotency-Key of its own (random, one
// per call). When the request fails on the network, or the broker answers
// 429, 502, 503 or 504, it sends the same request again with the same key,
// after the answer's Retry-After when it has one: if the first attempt was
// stored and only its answer was lost, the broker answers the retry with the
// first attempt's ids and publishes nothing. So a retry never publishes
// twice. Other 4xx answers are never retried. Each attempt is bounded
// (WithAttemptTimeout, 10s by default), so a hung broker is retried too.
//
// When every attempt fails, the error is a *PublishError. Its
// MaybePublished says whether an attempt may have been stored (its answer
// was lost, it timed out, or it was a 5xx): then retry with
// PublishWithKey and the error's Key, not with a new Publish, which would
// publish the events a second time if the first had been stored.
// PublishWithKey also takes a key of the caller's own (say, its message
// id), for a publish that must stay once-only across the caller's
// restarts.
//
// # Subscribing
//
// Subscribe is a range-over-func iterator that behaves like a browser's
// EventSource, with the broker's extras made explicit:
//   - after a drop (end of response without stop, network error, 5xx, 429)
//     it reconnects with Last-Event-ID set to the last event it yielded, so
//     the caller sees every event once, in order;
//   - it waits as long as the server's last retry: field says (3s until
//     one is known; at least 10ms, at most 5min), or the Retry-After of a
//     429/503, plus up to a fifth more so that many clients cut at once do
//     not come back at once; each connection in a row that brings no event and
//     lasts under 30s doubles the wait, up to 30s (or retry:, if longer),
//     so a server that fails or ends every connection at once is not
//     hammered (the first connection of a subscription is not in the row:
//     if it fails, the first wait is retry: itself);
//   - the broker's gap event (events lost after the resume point) is
//     yielded as its own kind of value, KindGap, with the parsed GapInfo;
//   - it ends with no error after yielding the stop event of a closed
//     stream, and at once on 204 (resuming at or after stop);
//   - 4xx answers other than 408 and 429 (400, 401, 403, 404, ...) are
//     final: the *APIError is yielded and the loop ends; so does the
//     context's end (ctx.Err() is yielded);
//   - with SubscribeOptions.IdleTimeout it also drops and resumes a
//     connection that went silent (no event, no heartbeat) without closing;
//   - an event larger than SubscribeOptions.MaxEventSize (16 MiB by
//     default) is a final error, not held in memory whole; so is an event
//     id with a control character, which could not be sent back as
//     Last-Event-ID, and a base URL that is not http:// or https://;
//   - unlike EventSource, an empty "id:" line does not clear the resume
//     point (the broker never sends one): a reconnect resumes after the
//     last id seen.
//
// Subscribe starts no goroutine of its own (with IdleTimeout, only a timer
// whose function cancels the connection): the connection is read on the
// caller's goroutine and is closed when the loop ends, the caller breaks
// out of it, or ctx ends.
//
// # Why not the r3labs/sse client
//
// The SSE parsing is the repository's own WHATWG decoder (pkg/sse), not
// github.com/r3labs/sse/v2 (v2.10.0), because the r3labs client lacks
// what a resuming subscriber needs. Its Client parses retry: but never
// uses it: it reconnects on its own exponential backoff. It treats every
// answer but 200, 204 included, as an error to retry, so a stream that is
// over is retried for the backoff's whole lifetime. It reads each
// connection in a goroutine of its own, which, after Unsubscribe, blocks
// forever sending its last error on a channel nobody reads. And its
// EventStreamReader returns the bytes left at the end of the stream as one
// last event: a connection cut in the middle of an event yields a
// truncated event (with its id, when the id line had arrived), and the
// resume would then skip the rest of it. The WHATWG algorithm, which
// pkg/sse follows, discards an unterminated event, so a cut costs nothing.
package client

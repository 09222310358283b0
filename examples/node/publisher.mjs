#!/usr/bin/env node
// Streams a mock answer into an SSE Broker stream, token by token.
//
// Node 18 or later, no npm packages: the global fetch does the HTTP.
//
//   BROKER_URL=http://localhost:8080 node examples/node/publisher.mjs [STREAM]
//
// Environment:
//   BROKER_URL    the broker (default http://localhost:8080)
//   BROKER_TOKEN  a JWT with the publish right, when the broker has auth on
//                 (with the subscribe right too, a close whose answer was
//                 lost can still print the id of stop)
//   STREAM        the stream to publish into (or the first argument);
//                 empty: the broker creates one named answer-<random>
//   DELAY_MS      pause between tokens (default 80)
//
// It prints one line per step, so a person or a test can follow it:
//   stream <id>
//   token <event id> <data as a JSON string>
//   stop <event id>

import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

// The same mock answer as the Go and Python examples; the tests check that
// a subscriber reads exactly this text back.
const ANSWER =
  "Server-Sent Events carry this answer token by token, as it is " +
  "written; a lost connection resumes where it stopped. " +
  "Unicode too: café, naïve, 你好.";

// Statuses worth another try with the same request: rate limited, the
// broker or its store overloaded, or a proxy that lost the broker.
const RETRY_STATUSES = new Set([429, 502, 503, 504]);
const ATTEMPTS = 5;

// BrokerError is a non-2xx answer of the broker: {"error": code, "message"}.
class BrokerError extends Error {
  constructor(status, code, message) {
    super(`HTTP ${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

// tokens splits text into words that keep their trailing space: joined
// again they give text back exactly.
const tokens = (text) => text.match(/\S+\s*/g) ?? [];

class Broker {
  constructor(url, token) {
    this.url = url.replace(/\/+$/, "");
    this.token = token;
  }

  // request sends one JSON request and returns the decoded answer. Network
  // errors, 429, 502, 503 and 504 are retried with a growing pause; a publish is safe
  // to retry because every attempt carries the same Idempotency-Key, so the
  // broker stores it once.
  async request(method, path, body, idempotencyKey) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.token) headers.Authorization = "Bearer " + this.token;
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    let pause = 200;
    for (let attempt = 1; ; attempt++) {
      let failure;
      let wait = pause;
      try {
        const res = await fetch(this.url + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(10_000),
        });
        if (res.ok) {
          // A 2xx whose body is cut or garbled throws here and is retried
          // like a network error: the same Idempotency-Key makes it safe.
          return await res.json();
        }
        const answer = await res.json().catch(() => ({}));
        failure = new BrokerError(res.status, answer.error ?? "", answer.message ?? res.statusText);
        if (!RETRY_STATUSES.has(res.status)) throw failure;
        const after = Number.parseFloat(res.headers.get("Retry-After"));
        if (Number.isFinite(after)) wait = after * 1000;
      } catch (err) {
        if (err === failure) throw err; // an answer not worth retrying
        failure = err; // a network error or a timeout
      }
      if (attempt === ATTEMPTS) throw failure;
      console.error(`retrying ${method} ${path} in ${wait} ms: ${failure.message}`);
      await sleep(wait);
      pause *= 2;
    }
  }

  async createStream(prefix) {
    return (await this.request("POST", "/v1/streams", { prefix })).stream;
  }

  async publish(stream, event, data) {
    // One key per event, fresh here and reused by every retry of it.
    const answer = await this.request("POST", `/v1/streams/${encodeURIComponent(stream)}/messages`,
      { event, data }, randomUUID());
    return answer.ids[0];
  }

  async close(stream) {
    try {
      return (await this.request("POST", `/v1/streams/${encodeURIComponent(stream)}/close`)).ids[0];
    } catch (err) {
      // Close has no idempotency key: when an attempt closed the stream but
      // its answer was lost, the retry hears 409. The stream is closed then,
      // and its last event is the stop; reading it needs the subscribe right
      // too, else the 409 stands.
      if (!(err instanceof BrokerError) || err.code !== "stream_closed") throw err;
      const info = await this.request("GET", `/v1/streams/${encodeURIComponent(stream)}`).catch(() => null);
      if (!info?.closed || !info.last_id) throw err;
      return info.last_id;
    }
  }
}

async function main() {
  const broker = new Broker(process.env.BROKER_URL || "http://localhost:8080", process.env.BROKER_TOKEN || "");
  let stream = process.argv[2] || process.env.STREAM || "";
  const delay = Number.parseInt(process.env.DELAY_MS || "80", 10);

  if (!stream) stream = await broker.createStream("answer-");
  console.log("stream", stream);
  for (const token of tokens(ANSWER)) {
    const id = await broker.publish(stream, "token", token);
    console.log("token", id, JSON.stringify(token));
    await sleep(delay);
  }
  // Close publishes `stop`: subscribers end, and a browser's EventSource
  // that reconnects after it gets 204 and stays closed.
  console.log("stop", await broker.close(stream));
}

main().catch((err) => {
  console.error("publisher:", err.message);
  process.exit(1);
});

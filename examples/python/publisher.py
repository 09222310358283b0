#!/usr/bin/env python3
"""Streams a mock answer into an SSE Broker stream, token by token.

Standard library only (Python 3.8+). Run against a broker:

    BROKER_URL=http://localhost:8080 python3 examples/python/publisher.py [STREAM]

Environment:
    BROKER_URL    the broker (default http://localhost:8080)
    BROKER_TOKEN  a JWT with the publish right, when the broker has auth on
                  (with the subscribe right too, a close whose answer was
                  lost can still print the id of stop)
    STREAM        the stream to publish into (or the first argument);
                  empty: the broker creates one named answer-<random>
    DELAY_MS      pause between tokens (default 80)

It prints one line per step, so a person or a test can follow it:
    stream <id>
    token <event id> <data as a JSON string>
    stop <event id>
"""

import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

# The same mock answer as the Go and Node examples; the tests check that a
# subscriber reads exactly this text back.
ANSWER = ("Server-Sent Events carry this answer token by token, as it is "
          "written; a lost connection resumes where it stopped. "
          "Unicode too: café, naïve, 你好.")

# Statuses worth another try with the same request: rate limited, the
# broker or its store overloaded, or a proxy that lost the broker.
RETRY_STATUSES = {429, 502, 503, 504}
ATTEMPTS = 5


class BrokerError(Exception):
    """A non-2xx answer of the broker: {"error": code, "message": ...}."""

    def __init__(self, status, code, message):
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status, self.code = status, code


def tokens(text):
    """Splits text into words that keep their trailing space: joined
    again they give text back exactly."""
    return re.findall(r"\S+\s*", text)


class Broker:
    def __init__(self, url, token):
        self.url = url.rstrip("/")
        self.token = token

    def request(self, method, path, body=None, idempotency_key=None):
        """Sends one JSON request and returns the decoded answer. Network
        errors, 429, 502, 503 and 504 are retried with a growing pause; a publish is
        safe to retry because every attempt carries the same
        Idempotency-Key, so the broker stores it once."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        pause = 0.2
        for attempt in range(1, ATTEMPTS + 1):
            req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=10) as res:
                    return json.load(res)
            except urllib.error.HTTPError as err:
                failure = broker_error(err)
                if err.code not in RETRY_STATUSES:
                    raise failure from None
                wait = retry_after(err.headers, pause)
            except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as err:
                # A network error, or a 2xx whose body was cut or garbled
                # (IncompleteRead, bad JSON): the publish may be stored;
                # the retry's Idempotency-Key makes that safe.
                failure, wait = err, pause
            if attempt == ATTEMPTS:
                raise failure
            print(f"retrying {method} {path} in {wait:.1f}s: {failure}", file=sys.stderr)
            time.sleep(wait)
            pause *= 2

    def create_stream(self, prefix):
        return self.request("POST", "/v1/streams", {"prefix": prefix})["stream"]

    def publish(self, stream, event, data):
        # One key per event, fresh here and reused by every retry of it.
        answer = self.request("POST", f"/v1/streams/{quote(stream)}/messages",
                              {"event": event, "data": data}, idempotency_key=str(uuid.uuid4()))
        return answer["ids"][0]

    def close(self, stream):
        try:
            return self.request("POST", f"/v1/streams/{quote(stream)}/close")["ids"][0]
        except BrokerError as err:
            # Close has no idempotency key: when an attempt closed the
            # stream but its answer was lost, the retry hears 409. The
            # stream is closed then, and its last event is the stop; reading
            # it needs the subscribe right too, else the 409 stands.
            if err.code != "stream_closed":
                raise
            try:
                info = self.request("GET", f"/v1/streams/{quote(stream)}")
            except BrokerError:
                raise err from None
            if not info["closed"] or not info["last_id"]:
                raise
            return info["last_id"]


def broker_error(err):
    """The broker's JSON error of an HTTPError (or what can be read of it)."""
    try:
        answer = json.loads(err.read())
    except ValueError:
        answer = {}
    return BrokerError(err.code, answer.get("error", ""), answer.get("message", err.reason))


def retry_after(headers, default):
    """Retry-After in seconds when the broker sent one, else default."""
    try:
        return float(headers.get("Retry-After"))
    except (TypeError, ValueError):
        return default


def quote(stream):
    return urllib.parse.quote(stream, safe="")


def main():
    broker = Broker(os.environ.get("BROKER_URL") or "http://localhost:8080",
                    os.environ.get("BROKER_TOKEN", ""))
    stream = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("STREAM", "")
    delay = int(os.environ.get("DELAY_MS") or 80) / 1000

    if not stream:
        stream = broker.create_stream("answer-")
    print("stream", stream, flush=True)
    for token in tokens(ANSWER):
        event_id = broker.publish(stream, "token", token)
        print("token", event_id, json.dumps(token, ensure_ascii=False), flush=True)
        time.sleep(delay)
    # Close publishes `stop`: subscribers end, and a browser's EventSource
    # that reconnects after it gets 204 and stays closed.
    print("stop", broker.close(stream), flush=True)


if __name__ == "__main__":
    try:
        main()
    except (BrokerError, urllib.error.URLError, OSError) as err:
        sys.exit(f"publisher: {err}")

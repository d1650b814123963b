# SPDX-License-Identifier: MIT
"""ringcast-bench --protocol centrifugo against the real broker's protocol mode
(WS /connection/websocket): short chat, --personal (two subscriptions per connection, the
scaled shape of Centrifugo's million-connection test), fanout and echo runs whose counts must
be exact, the protocol's ping answered so that a short idle timeout closes nobody, and the
connect refused without a token when the broker has a JWT secret, accepted with --token.

Every reply and push the broker batches into one frame must be told apart: the subscribe reply
comes in the same frame as the connect reply, and each client is a member only once every
subscribe of its hello is answered.

Run by ctest as integration.bench_centrifugo with RINGCAST_BIN and RINGCAST_BENCH_BIN set; by
hand:
  RINGCAST_BIN=build/ringcast RINGCAST_BENCH_BIN=build/ringcast-bench \\
      /usr/bin/python3 tools/bench/test_bench_centrifugo.py
"""
import base64
import hashlib
import hmac
import json

from test_bench_integration import bench, expect, expect_exact  # noqa: E402
from harness import Broker, Runner  # noqa: E402

PATH = "/connection/websocket"


def cf(*args, **kw):
    return bench(*args, "--protocol", "centrifugo", **kw)


def case_chat(b):
    # 200 clients in 20 rooms of 10, 200 publishes/s for 3 s: 600 publishes, each delivered to
    # all 10 subscribers of the channel, the publisher included (it is subscribed too).
    r = cf("chat", "--url", b.url + PATH, "--connections", 200, "--room-size", 10, "--rate", 200,
           "--duration", 3, "--pid", b.proc.pid)
    expect_exact(r, held=200, published=600, deliveries=600 * 10)
    expect(r, "protocol", "centrifugo")
    expect(r, "messages.seq_tracked", True)
    expect(r, "messages.latency_us.count", 600 * 10)
    expect(r, "messages.skipped", 0)
    expect(r, "connections.protocol_errors", 0)
    expect(r, "params.personal", False)


def case_personal(b):
    # 300 clients, each in a group channel of 10 and a personal channel of its own: two
    # subscribes in the hello, both answered before the client publishes (skipped stays 0).
    r = cf("chat", "--url", b.url + PATH, "--connections", 300, "--room-size", 10, "--rate", 300,
           "--duration", 2, "--personal", "--workers", 2, "--pid", b.proc.pid)
    expect_exact(r, held=300, published=600, deliveries=600 * 10)
    expect(r, "params.personal", True)
    expect(r, "messages.skipped", 0)
    assert "personal-N" in r["_summary"], r["_summary"]


def case_fanout(b):
    # One channel of 100: every subscriber but the publisher counts; the publisher's own copies
    # are its window.
    r = cf("fanout", "--url", b.url + PATH, "--connections", 100, "--rate", 100, "--duration", 1)
    expect(r, "messages.published", 100)
    expect(r, "messages.received", 100 * 99)
    expect(r, "messages.publisher_echoes", 100)
    expect(r, "messages.lost", 0)
    expect(r, "ok", True)
    r = cf("fanout", "--url", b.url + PATH, "--connections", 50, "--inflight", 4, "--duration", 1)
    assert r["messages"]["published"] > 0, r["_summary"]
    expect(r, "messages.received", r["messages"]["published"] * 49)


def case_echo(b):
    # Each client publishes to a channel of its own and gets it back: a round trip.
    r = cf("echo", "--url", b.url + PATH, "--connections", 20, "--inflight", 2, "--duration", 1)
    assert r["messages"]["published"] >= 40, r["_summary"]
    expect(r, "messages.received", r["messages"]["published"])
    expect(r, "messages.lost", 0)
    expect(r, "messages.malformed", 0)


def case_pings():
    # The broker pings every second ({}) and closes a connection silent for 2 s: the answers
    # keep all 50 open through a 4 s hold.
    with Broker("--ping-interval", "1", "--idle-timeout", "2") as b:
        r = cf("hold", "--url", b.url + PATH, "--connections", 50, "--duration", 4, "--personal")
        expect(r, "connections.held", 50)
        expect(r, "connections.closed_by_server", 0)
        expect(r, "connections.close_clean", 50)
        assert r["client"]["pings"] >= 50 * 2, r["_summary"]
        expect(r, "ok", True)


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(secret, claims):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + b64url(sig)


def case_token():
    secret = "bench-test-secret-0123456789abcdef"
    with Broker("--jwt-secret", secret) as b:
        # Anonymous connects are refused (close 3501): nobody is held, nothing delivered.
        r = cf("hold", "--url", b.url + PATH, "--connections", 10, "--duration", 1, rc=3)
        expect(r, "connections.held", 0)
        expect(r, "ok", False)
        token = hs256(secret, {"sub": "bench"})
        r = cf("chat", "--url", b.url + PATH, "--connections", 20, "--room-size", 10, "--rate",
               100, "--duration", 1, "--token", token)
        expect_exact(r, held=20, published=100, deliveries=100 * 10)


def main():
    runner = Runner()
    with Broker() as b:
        runner.run("centrifugo chat 200 in channels of 10", case_chat, b)
        runner.run("centrifugo chat --personal: 2 subscriptions each", case_personal, b)
        runner.run("centrifugo fanout", case_fanout, b)
        runner.run("centrifugo echo", case_echo, b)
    runner.run("centrifugo pings answered", case_pings)
    runner.run("centrifugo --token against --jwt-secret", case_token)
    runner.finish()


if __name__ == "__main__":
    main()

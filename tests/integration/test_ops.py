# SPDX-License-Identifier: MIT
"""The HTTP side of the pages and the /stats they read: GET /ops, GET / (the chat page) and
their assets (status,
Content-Type with charset, Cache-Control, the Content-Security-Policy and nosniff headers, the
page loading its script from a file and running nothing inline), ETag and If-None-Match -> 304,
gzip when Accept-Encoding allows it (and the bytes gunzip to the plain ones), HEAD, 404 under
/assets/; and /stats with its per-shard figures and latency buckets, consistent with the totals
and with real traffic. The browser side is test_ops_browser.js and test_chat_browser.js."""
import gzip
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker, Runner  # noqa: E402
from util import (connect, http_get, http_request, read_responses, rst_close,  # noqa: E402
                  run_async, rx, settle, wait_for, ws_connect)

ASSETS = [
    ("/ops", "text/html; charset=utf-8"),
    ("/assets/ops.js", "text/javascript; charset=utf-8"),
    ("/assets/ops.css", "text/css; charset=utf-8"),
    ("/assets/icon.svg", "image/svg+xml; charset=utf-8"),
    ("/assets/stats.js", "text/javascript; charset=utf-8"),
    ("/", "text/html; charset=utf-8"),
    ("/assets/chat.js", "text/javascript; charset=utf-8"),
    ("/assets/chat.css", "text/css; charset=utf-8"),
]


def get(b, path, headers=None):
    return http_get(b.port, path, headers=headers, want_close=False, close_wait=0.1)


def stats(b):
    r = get(b, "/stats")
    assert r.status == 200, "GET /stats: %r" % r
    assert r.header("content-type") == "application/json", r.header("content-type")
    return json.loads(r.body)


def csp_directives(r):
    csp = r.header("content-security-policy")
    assert csp, "no Content-Security-Policy on %r" % r
    out = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


# ---------------------------------------------------------------------------------------------
# Assets


def case_assets(b):
    for path, ctype in ASSETS:
        r = get(b, path)
        assert r.status == 200, "GET %s: %r" % (path, r)
        assert r.header("content-type") == ctype, "%s: Content-Type %r, want %r" % (
            path, r.header("content-type"), ctype)
        assert int(r.header("content-length")) == len(r.body) > 0, "%s: length" % path
        assert r.header("content-encoding") is None, "%s: encoded without being asked" % path
        assert r.header("cache-control") == "no-cache", "%s: Cache-Control %r" % (
            path, r.header("cache-control"))
        assert re.fullmatch(r'"[0-9a-f]{16}"', r.header("etag") or ""), "%s: ETag %r" % (
            path, r.header("etag"))
        assert r.header("x-content-type-options") == "nosniff", path


def case_csp(b):
    """The policy forbids inline script: script-src names the broker only, with no
    'unsafe-inline', and default-src is 'none'. Each page loads its script and style from files
    the policy allows, and has no inline script or handler attribute."""
    for page, name in (("/ops", "ops"), ("/", "chat")):
        r = get(b, page)
        d = csp_directives(r)
        assert d.get("default-src") == ["'none'"], d
        assert d.get("script-src") == ["'self'"], d
        assert d.get("style-src") == ["'self'"], d
        assert d.get("connect-src") == ["'self'"], d
        assert d.get("frame-ancestors") == ["'none'"], d
        html = r.body.decode("utf-8")
        for src in ("/assets/stats.js", "/assets/%s.js" % name):
            assert '<script src="%s"' % src in html, "%s does not load %s" % (page, src)
        assert '<link rel="stylesheet" href="/assets/%s.css">' % name in html, \
            "%s does not load %s.css" % (page, name)
        for m in re.finditer(r"<script\b[^>]*>(.*?)</script>", html, re.S):
            assert m.group(1).strip() == "", "inline script in %s: %r" % (page, m.group(1)[:80])
        assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler in %s" % page
        assert "<style" not in html and "style=" not in html, "inline style in %s" % page
        assert 'lang="en"' in html and 'name="viewport"' in html


def case_etag_304(b):
    for path, _ in ASSETS:
        r = get(b, path)
        tag = r.header("etag")
        r2 = get(b, path, [("If-None-Match", tag)])
        assert r2.status == 304, "%s with its ETag: %r" % (path, r2)
        assert r2.body == b"", "%s: 304 with a body" % path
        assert r2.header("etag") == tag, "%s: 304 ETag %r" % (path, r2.header("etag"))
        # A list, a weak form of the same tag, and "*" match; another tag does not.
        for inm in ('"0000000000000000", ' + tag, "W/" + tag, "*"):
            r3 = get(b, path, [("If-None-Match", inm)])
            assert r3.status == 304, "%s If-None-Match %s: %r" % (path, inm, r3)
        r4 = get(b, path, [("If-None-Match", '"0000000000000000"')])
        assert r4.status == 200 and r4.body == r.body, "%s with another tag: %r" % (path, r4)


def case_gzip(b):
    for path, ctype in ASSETS:
        plain = get(b, path)
        r = get(b, path, [("Accept-Encoding", "gzip, deflate, br")])
        assert r.status == 200, "%s gzip: %r" % (path, r)
        assert r.header("content-encoding") == "gzip", "%s: Content-Encoding %r" % (
            path, r.header("content-encoding"))
        assert r.header("vary") == "Accept-Encoding", "%s: Vary %r" % (path, r.header("vary"))
        assert r.header("content-type") == ctype
        assert len(r.body) < len(plain.body), "%s: gzip is not smaller" % path
        assert gzip.decompress(r.body) == plain.body, "%s: gunzip differs" % path
        # Its own validator: the plain tag does not revalidate the gzip copy, its own does.
        assert r.header("etag") != plain.header("etag"), "%s: same ETag for both" % path
        r2 = get(b, path, [("Accept-Encoding", "gzip"), ("If-None-Match", r.header("etag"))])
        assert r2.status == 304 and r2.header("content-encoding") == "gzip", "%r" % r2
        # q=0 refuses it, identity does not ask for it.
        for ae in ("gzip;q=0", "identity", "br"):
            r3 = get(b, path, [("Accept-Encoding", ae)])
            assert r3.header("content-encoding") is None, "%s Accept-Encoding %s: %r" % (
                path, ae, r3)


def case_head(b):
    """HEAD: the GET's head (same length, type, tag) and no body, on a keep-alive connection
    whose next answer is framed right."""
    full = get(b, "/ops")
    s = connect(b.port)
    try:
        s.sendall(b"HEAD /ops HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        rs, _ = read_responses(s, 2, head_only=(0,))
    finally:
        rst_close(s)
    h, nxt = rs
    assert h.status == 200 and h.body == b"", "HEAD /ops: %r" % h
    assert h.header("content-length") == str(len(full.body)), h.header("content-length")
    assert h.header("etag") == full.header("etag")
    assert h.header("content-type") == full.header("content-type")
    assert nxt.status == 200 and nxt.body.strip() == b"ok", "after HEAD: %r" % nxt


def case_not_found(b):
    for path in ("/assets/", "/assets/nope.js", "/assets/ops.js/", "/ops/", "/ops.js"):
        r = get(b, path)
        assert r.status == 404, "GET %s: %r" % (path, r)
    r = http_get(b.port, "/ops", want_close=False, close_wait=0.1)
    assert r.status == 200
    r = get(b, "/assets/ops.js?v=1")
    assert r.status == 200, "a query string does not change the asset: %r" % r


def case_post(b):
    r = http_request(b.port, b"POST /ops HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                     want_close=False, close_wait=0.1)
    assert r.status == 405 and "GET" in (r.header("allow") or ""), "POST /ops: %r" % r


# ---------------------------------------------------------------------------------------------
# /stats


PER_SHARD_KEYS = ("shard", "connections", "accepted", "upgrades", "closes", "messages_received",
                  "messages_delivered", "sends", "send_queue_bytes", "slow_consumer_close",
                  "slow_consumer_drop", "loop_turns", "completions", "tls_handshakes_active",
                  "cpu_seconds")
OLD_KEYS = ("shards", "connections", "max_connections", "accepted", "handshakes_failed",
            "messages_received", "messages_delivered", "bytes_received", "bytes_sent", "sends",
            "frames_per_send", "rooms", "slow_consumer_close", "slow_consumer_drop",
            "send_queue_bytes", "xshard_messages", "loop_turns", "completions",
            "tls_handshakes_active", "tls_handshakes_waiting", "rss_bytes", "cpu_seconds")


def case_stats_shape(b):
    s = stats(b)
    for k in OLD_KEYS + ("upgrades", "closes"):
        assert isinstance(s.get(k), (int, float)), "/stats %s: %r" % (k, s.get(k))
    per = s["per_shard"]
    assert len(per) == s["shards"] == 3, "per_shard has %d entries for %d shards" % (
        len(per), s["shards"])
    for i, sh in enumerate(per):
        assert sh["shard"] == i
        for k in PER_SHARD_KEYS:
            assert isinstance(sh.get(k), (int, float)) and sh[k] >= 0, "shard %d %s: %r" % (
                i, k, sh.get(k))
    lat = s["publish_latency"]
    le, counts = lat["le_seconds"], lat["counts"]
    assert len(counts) == len(le) + 1, "counts must have one more bucket (+Inf) than bounds"
    assert le == sorted(le) and le[0] > 0, le
    assert lat["sum_seconds"] >= 0


def case_stats_traffic(b):
    """20 members of a room on 3 shards, 30 messages: the totals are the sums of the shards,
    the connection counts match, deliveries land in the histogram, and after the clients go
    the closes catch up with the upgrades; the process and shard CPU figures move."""
    before = stats(b)
    n, msgs = 20, 30

    async def go():
        members = [await ws_connect(b.url + "/room/opsroom") for _ in range(n)]
        await settle(b.url, "/room/opsroom", members)
        during = stats(b)
        for i in range(msgs):
            await members[i % n].send("m%d" % i)
        for k, m in enumerate(members):
            own = sum(1 for i in range(msgs) if i % n == k)
            for _ in range(msgs - own):
                await rx(m, 5)
        mid = stats(b)
        for m in members:
            await m.close()
        return during, mid

    during, mid = run_async(go(), 60)
    assert during["connections"] >= n, "connections %d with %d members" % (
        during["connections"], n)
    assert sum(sh["connections"] for sh in during["per_shard"]) == during["connections"]
    assert len([sh for sh in during["per_shard"] if sh["connections"] > 0]) >= 2, \
        "20 connections all on one shard: %r" % [sh["connections"] for sh in during["per_shard"]]
    for k in ("messages_received", "messages_delivered", "sends", "accepted", "upgrades",
              "closes", "loop_turns", "completions"):
        total = sum(sh[k] for sh in mid["per_shard"])
        assert total == mid[k], "%s: shards sum to %d, total %d" % (k, total, mid[k])
    assert mid["upgrades"] - before["upgrades"] >= n + 1  # the members and settle's probe
    delivered = mid["messages_delivered"] - before["messages_delivered"]
    assert delivered >= msgs * (n - 1), "delivered %d" % delivered
    lat_new = sum(mid["publish_latency"]["counts"]) - sum(before["publish_latency"]["counts"])
    assert lat_new >= msgs * (n - 1), "latency observations %d for %d deliveries" % (
        lat_new, delivered)
    after = wait_for(lambda: (lambda s: s if s["connections"] == 0 else None)(stats(b)), 10)
    assert after, "connections did not drop to 0"
    assert after["upgrades"] - after["closes"] == after["connections"] == 0, after
    # The main thread samples thread CPU once a second.
    wait_for(lambda: stats(b)["per_shard"][0]["cpu_seconds"] > 0, 3)
    last = stats(b)
    assert any(sh["cpu_seconds"] > 0 for sh in last["per_shard"]), last["per_shard"]
    assert sum(sh["cpu_seconds"] for sh in last["per_shard"]) <= last["cpu_seconds"] + 0.05, \
        "shards used more CPU than the process: %r" % last


def main():
    r = Runner()
    with Broker("--shards", "3") as b:
        for name, fn in [("GET /ops, GET / and their assets: types, cache, tag, nosniff",
                          case_assets),
                         ("Content-Security-Policy forbids inline script; pages obey", case_csp),
                         ("If-None-Match -> 304", case_etag_304),
                         ("Accept-Encoding: gzip -> the gzip copy", case_gzip),
                         ("HEAD /ops: head only, keep-alive framing right", case_head),
                         ("unknown assets -> 404", case_not_found),
                         ("POST /ops -> 405", case_post),
                         ("/stats: old fields kept, per_shard and latency buckets",
                          case_stats_shape),
                         ("/stats under traffic: shards sum to totals", case_stats_traffic)]:
            r.run(name, fn, b)
    r.finish()


if __name__ == "__main__":
    main()

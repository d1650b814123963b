# SPDX-License-Identifier: MIT
"""The HTTP side and the command line: /healthz, refusals during the upgrade (400, 403, 404,
426, 429, 431) each with a one-line reason, bad room names, garbage, oversized heads,
keep-alive, pipelining, HEAD, 405 with Allow, Transfer-Encoding and Content-Length limits,
--allowed-origins, --max-conns-per-ip, --handshake-timeout, --idle-timeout with server pings;
the HTML 404 page for browsers; failed handshakes by reason in /metrics and /stats; and --help, --version, bad options (exit 2, one line), the environment and --config."""
import asyncio
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Broker, Runner  # noqa: E402
from util import (OP_CLOSE, OP_PING, OP_TEXT, RawWS, assert_conn_ends,  # noqa: E402
                  check_refusal, connect, encode_frame, http_get, http_request, parse_frame,
                  read_response, read_responses, rst_close, run_async, upgrade_request,
                  wait_peer_end, ws_connect, ws_recv, ws_wait_closed)


def upgrade(port, path, **kw):
    return http_request(port, upgrade_request(path, **kw), close_wait=0.3, want_close=False)


# ---------------------------------------------------------------------------------------------
# Plain requests and refusals


def case_healthz(b):
    r = http_get(b.port, "/healthz", close_wait=0.2)
    assert r.status == 200, "GET /healthz: %r" % r
    assert r.body.strip() == b"ok", "GET /healthz body %r, want 'ok'" % r.body


def case_not_found(b):
    check_refusal(http_get(b.port, "/nope", close_wait=0.2), 404)
    check_refusal(upgrade(b.port, "/nope"), 404)
    check_refusal(upgrade(b.port, "/echo/extra"), 404)


BROWSER_ACCEPT = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                  "image/webp,image/apng,*/*;q=0.8")


def case_not_found_page(b):
    """A browser asking for an unknown page (Accept names text/html) gets a small HTML 404 page
    with the pages' security headers; everything else keeps the one-line text; both keep the
    connection."""
    r = http_get(b.port, "/nope", headers=[("Accept", BROWSER_ACCEPT)], want_close=False,
                 close_wait=0.2)
    assert r.status == 404, "GET /nope from a browser: %r" % r
    assert r.header("content-type") == "text/html; charset=utf-8", r.header("content-type")
    assert r.body.lstrip().lower().startswith(b"<!doctype html>"), r.body[:80]
    assert b'href="/"' in r.body, "the 404 page links to the chat page: %r" % r.body[:400]
    assert "script-src 'self'" in (r.header("content-security-policy") or ""), r
    assert r.header("x-content-type-options") == "nosniff", r
    assert r.header("etag") is None, "an error page has no ETag: %r" % r
    assert r.header("connection") != "close", "the 404 page closed the connection: %r" % r
    for accept in (None, "*/*", "application/json", "text/html;q=0"):
        hdrs = [("Accept", accept)] if accept else []
        check_refusal(http_get(b.port, "/nope", headers=hdrs, close_wait=0.2), 404)
    r = http_get(b.port, "/assets/nope.css", headers=[("Accept", "text/css,*/*;q=0.1")],
                 close_wait=0.2)
    check_refusal(r, 404)
    r = http_request(b.port, ("HEAD /nope HTTP/1.1\r\nHost: x\r\nAccept: %s\r\n"
                              "Connection: close\r\n\r\n" % BROWSER_ACCEPT).encode(),
                     close_wait=0.2)
    assert r.status == 404 and r.body == b"" and int(r.header("content-length")) > 100, \
        "HEAD of the 404 page: %r" % r


def case_not_upgrade(b):
    """A plain GET of a WebSocket path is 426 Upgrade Required."""
    check_refusal(http_get(b.port, "/echo", close_wait=0.2), 426)
    check_refusal(http_get(b.port, "/room/lobby", close_wait=0.2), 426)
    r = http_request(b.port, upgrade_request("/echo", omit=("upgrade",)), close_wait=0.2)
    check_refusal(r, (426, 400))


def case_version(b):
    """RFC 6455 4.4: a version we do not speak gets 426 with Sec-WebSocket-Version: 13."""
    for v in ("8", "12", "14"):
        r = upgrade(b.port, "/echo", version=v)
        check_refusal(r, 426)
        assert r.header("sec-websocket-version") == "13", \
            "version %s: Sec-WebSocket-Version header %r, want '13'" % (v, r.header(
                "sec-websocket-version"))
    r = http_request(b.port, upgrade_request("/echo", omit=("sec-websocket-version",)),
                     close_wait=0.2)
    check_refusal(r, (426, 400))


def case_bad_key(b):
    check_refusal(upgrade(b.port, "/echo", key=""), 400)
    r = http_request(b.port, upgrade_request("/echo", omit=("sec-websocket-key",)),
                     close_wait=0.2)
    check_refusal(r, 400)
    for key in ("abc", "not base64 at all!!!!!!!", "AAAAAAAAAAAAAAAAAAAA",  # 15 bytes
                "AAAAAAAAAAAAAAAAAAAAAAAAAA=="):  # 19 bytes
        check_refusal(upgrade(b.port, "/echo", key=key), 400)


def case_missing_host(b):
    """RFC 7230 5.4: an HTTP/1.1 request without Host gets 400."""
    r = http_request(b.port, upgrade_request("/echo", omit=("host",)), close_wait=0.2)
    check_refusal(r, 400)


def case_good_variants(b):
    """Upgrades that must work: Connection as a token list (what Firefox sends), mixed-case
    header names and values, the key's accept computed right, a request split into single
    bytes, and a first frame in the same packet as the request."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    r = upgrade(b.port, "/echo", key=key, extra=[("Connection", "keep-alive, Upgrade")],
                omit=("connection",))
    assert r.status == 101, "Connection: keep-alive, Upgrade: %r" % r
    assert r.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", \
        "RFC 6455 sample key: accept %r" % r.header("sec-websocket-accept")
    assert r.header("upgrade", "").lower() == "websocket", "Upgrade header %r" % r.header(
        "upgrade")
    assert "upgrade" in r.header("connection", "").lower(), "Connection header %r" % r.header(
        "connection")
    raw = (b"GET /echo HTTP/1.1\r\nhost: x\r\nUPGRADE: WebSocket\r\nconnection: upgrade\r\n"
           b"sec-websocket-key: " + key.encode() + b"\r\nSec-Websocket-Version: 13\r\n\r\n")
    r = http_request(b.port, raw, close_wait=0.3, want_close=False)
    assert r.status == 101, "lower/upper-case headers: %r" % r
    # One byte at a time.
    s = connect(b.port)
    try:
        for i in range(len(raw)):
            s.sendall(raw[i:i + 1])
            time.sleep(0.001)
        r = read_response(s, want_close=False)
        assert r.status == 101, "request sent byte by byte: %r" % r
    finally:
        rst_close(s)
    # Request and first frame in one write.
    s = connect(b.port)
    try:
        s.sendall(raw + encode_frame(OP_TEXT, b"same packet"))
        r = read_response(s, want_close=False)
        assert r.status == 101, "%r" % r
        buf = bytearray(r.body)
        deadline = time.monotonic() + 5
        f = None
        while f is None and time.monotonic() < deadline:
            f, n = parse_frame(buf)
            if f is None:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                buf += s.recv(4096)
        assert f is not None and f.payload == b"same packet", "echo of the first frame: %r" % f
    finally:
        rst_close(s)


BAD_ROOMS = [
    ("/room/", "empty"),
    ("/room/a%2Fb", "%2F"),
    ("/room/a%2fb", "%2f"),
    ("/room/a/b", "a literal /"),
    ("/room/a%00b", "NUL"),
    ("/room/a%01b", "%01"),
    ("/room/a%1Fb", "%1F"),
    ("/room/a%0Ab", "newline"),
    ("/room/a%7Fb", "DEL"),
    ("/room/" + "a" * 256, "256 bytes"),
    ("/room/" + "%C3%A9" * 128, "256 bytes after decoding"),
    ("/room/%C0%AF", "overlong UTF-8 %C0%AF"),
    ("/room/%FF", "byte FF"),
    ("/room/%ED%A0%80", "UTF-8 surrogate"),
    ("/room/%E2%82", "truncated UTF-8"),
    ("/room/%", "lone %"),
    ("/room/%4", "% with one hex digit"),
    ("/room/%G1", "% with a non-hex digit"),
]

GOOD_ROOMS = ["/room/ok", "/room/" + "a" * 255, "/room/" + "%C3%A9" * 127 + "a",
              "/room/%E2%9C%93", "/room/a%20b", "/room/x?echo=1", "/room/-._~!$&'()*+,;=:@"]


def case_bad_room_names(b):
    errs = []
    for path, what in BAD_ROOMS:
        try:
            check_refusal(upgrade(b.port, path), 400)
        except AssertionError as e:
            errs.append("%s (%s): %s" % (what, path[:40], e))
    assert not errs, "; ".join(errs)


def case_good_room_names(b):
    errs = []
    for path in GOOD_ROOMS:
        r = upgrade(b.port, path)
        if r.status != 101:
            errs.append("%s: %d %r" % (path[:40], r.status, r.body))
    assert not errs, "; ".join(errs)


def case_control_char_in_request_line(b):
    for raw in (b"GET /room/a\x01b HTTP/1.1\r\n", b"GET /room/a\tb HTTP/1.1\r\n",
                b"GET /room/a\x7fb HTTP/1.1\r\n"):
        req = raw + upgrade_request("/x").split(b"\r\n", 1)[1]
        check_refusal(http_request(b.port, req, close_wait=0.3), 400)


def case_garbage(b):
    tls_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(100)
    for junk, want in ((b"\x00\x01\x02\x03 hello\r\n\r\n", 400), (b"GARBAGE\r\n\r\n", 400),
                       (tls_hello + b"\r\n\r\n", 400), (b"GET\r\n\r\n", 400),
                       (b"GET / HTTP/9.9\r\n\r\n", (400, 505)),
                       (b"GET /echo HTTP/1.1\r\nNo colon\r\n\r\n", 400)):
        r = http_request(b.port, junk, close_wait=2)
        check_refusal(r, want)
        assert r.closed, "connection left open after garbage %r" % junk[:20]


def case_head_too_big(b):
    """A request head over 8 KiB: 431 (or 400), and the connection is closed."""
    req = upgrade_request("/echo", extra=[("X-Pad", "p" * 9000)])
    r = http_request(b.port, req, close_wait=2)
    check_refusal(r, (431, 400))
    assert r.closed, "connection left open after an oversized head"
    # A head that never ends: refused once it passes the limit, not buffered for ever.
    s = connect(b.port)
    try:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(64):
                s.sendall(b"X-Header: " + b"h" * 1000 + b"\r\n")
        except OSError:
            pass  # the broker already answered and closed
        r = read_response(s, close_wait=2)
        check_refusal(r, (431, 400))
        assert r.closed, "connection left open after an endless head"
    finally:
        rst_close(s)


def case_http_paths_unaffected(b):
    """/healthz with a query string and with extra headers still answers."""
    r = http_get(b.port, "/healthz?x=1", headers=[("User-Agent", "t"), ("Accept", "*/*")],
                 close_wait=0.2)
    assert r.status == 200, "%r" % r


# ---------------------------------------------------------------------------------------------
# Keep-alive: requests answered in order on one connection


def get_req(path, method="GET", version="1.1", headers=()):
    req = "%s %s HTTP/%s\r\nHost: 127.0.0.1\r\n" % (method, path, version)
    req += "".join("%s: %s\r\n" % kv for kv in headers)
    return (req + "\r\n").encode("latin-1")


def assert_open(s, what, wait=0.3):
    how, data, _ = wait_peer_end(s, wait)
    assert how == "open" and not data, "%s: connection %s (extra bytes %r), want it open" % (
        what, how, data[:100])


def assert_closed(s, what, wait=2.0):
    how, data, _ = wait_peer_end(s, wait)
    assert how != "open", "%s: connection still open after %.1fs" % (what, wait)
    assert not data, "%s: bytes after the answer: %r" % (what, data[:100])


def check_kept(r, what):
    """An answer that keeps the connection: no `Connection: close`."""
    conn = r.header("connection", "")
    assert "close" not in conn.lower(), "%s: Connection: %s on a kept connection" % (what, conn)


def case_keep_alive(b):
    """Two GET /healthz on one connection, the second in two pieces: both answered, the
    connection open after each."""
    s = connect(b.port)
    try:
        s.sendall(get_req("/healthz"))
        (r,), rest = read_responses(s, 1)
        assert r.status == 200 and r.body == b"ok\n", "first GET /healthz: %r" % r
        check_kept(r, "first GET /healthz")
        assert not rest, "bytes after the first answer: %r" % rest
        assert_open(s, "after the first answer")
        req = get_req("/healthz")
        s.sendall(req[:10])
        time.sleep(0.1)
        s.sendall(req[10:])
        (r,), rest = read_responses(s, 1)
        assert r.status == 200 and r.body == b"ok\n", "second GET /healthz: %r" % r
        check_kept(r, "second GET /healthz")
        assert not rest, "bytes after the second answer: %r" % rest
        assert_open(s, "after the second answer")
    finally:
        rst_close(s)


def case_pipelining(b):
    """Five requests in one send: answered in order, each with its status; still open."""
    paths = ["/healthz", "/stats", "/nope", "/metrics", "/healthz"]
    s = connect(b.port)
    try:
        s.sendall(b"".join(get_req(p) for p in paths))
        rs, rest = read_responses(s, len(paths))
        got = [r.status for r in rs]
        assert got == [200, 200, 404, 200, 200], "statuses %r for %r" % (got, paths)
        assert rs[0].body == b"ok\n" and rs[4].body == b"ok\n", "/healthz bodies %r, %r" % (
            rs[0].body, rs[4].body)
        stats = json.loads(rs[1].body)
        assert isinstance(stats, dict), "/stats is not a JSON object: %r" % rs[1].body[:100]
        assert "application/json" in rs[1].header("content-type", ""), "/stats type %r" % (
            rs[1].header("content-type"))
        check_refusal(rs[2], 404)
        assert b"ringcast_" in rs[3].body, "/metrics body %r" % rs[3].body[:100]
        for p, r in zip(paths, rs):
            check_kept(r, p)
        assert not rest, "bytes after the five answers: %r" % rest[:100]
        assert_open(s, "after five pipelined requests")
        s.sendall(get_req("/healthz"))
        (r,), _ = read_responses(s, 1)
        assert r.status == 200, "a sixth request: %r" % r
    finally:
        rst_close(s)


def case_head(b):
    """HEAD /healthz: GET's head (Content-Length 3) without the body; the next answer on the
    connection starts right after it."""
    s = connect(b.port)
    try:
        s.sendall(get_req("/healthz", method="HEAD"))
        (r,), rest = read_responses(s, 1, head_only=(0,))
        assert r.status == 200, "HEAD /healthz: %r" % r
        assert r.header("content-length") == "3", "HEAD /healthz Content-Length %r, want 3" % (
            r.header("content-length"))
        assert not rest, "HEAD /healthz sent body bytes: %r" % rest
        assert_open(s, "after HEAD")
        s.sendall(get_req("/healthz") + get_req("/healthz", method="HEAD") + get_req("/stats"))
        rs, rest = read_responses(s, 3, head_only=(1,))
        assert [r.status for r in rs] == [200, 200, 200], "%r" % rs
        assert rs[0].body == b"ok\n", "GET after HEAD: %r" % rs[0]
        assert rs[2].body.startswith(b"{"), "GET /stats after HEAD: %r" % rs[2].body[:50]
        assert not rest, "bytes after the answers: %r" % rest[:100]
    finally:
        rst_close(s)


def case_connection_close(b):
    """`Connection: close` and HTTP/1.0: answered, then closed; HTTP/1.0 with keep-alive
    stays open."""
    for what, req in (("Connection: close", get_req("/healthz", headers=[("Connection",
                                                                        "close")])),
                      ("HTTP/1.0", get_req("/healthz", version="1.0"))):
        s = connect(b.port)
        try:
            s.sendall(req + get_req("/healthz"))  # the second must not be answered
            (r,), rest = read_responses(s, 1)
            assert r.status == 200 and r.body == b"ok\n", "%s: %r" % (what, r)
            assert "close" in r.header("connection", "").lower(), \
                "%s: answer without Connection: close: %r" % (what, r)
            assert not rest, "%s: bytes after the answer: %r" % (what, rest[:100])
            assert_closed(s, what)
        finally:
            rst_close(s)
    s = connect(b.port)
    try:
        s.sendall(get_req("/healthz", version="1.0", headers=[("Connection", "keep-alive")]))
        (r,), _ = read_responses(s, 1)
        assert r.status == 200, "HTTP/1.0 keep-alive: %r" % r
        check_kept(r, "HTTP/1.0 keep-alive")
        assert_open(s, "HTTP/1.0 with Connection: keep-alive")
    finally:
        rst_close(s)


def case_method_not_allowed(b):
    """POST /healthz: 405 with Allow: GET, HEAD; the connection goes on."""
    s = connect(b.port)
    try:
        s.sendall(get_req("/healthz", method="POST"))
        (r,), _ = read_responses(s, 1)
        check_refusal(r, 405)
        assert r.header("allow") == "GET, HEAD", "Allow %r, want 'GET, HEAD'" % r.header("allow")
        check_kept(r, "405")
        assert_open(s, "after a 405")
        s.sendall(get_req("/healthz"))
        (r,), _ = read_responses(s, 1)
        assert r.status == 200, "GET after the 405: %r" % r
    finally:
        rst_close(s)


def case_transfer_encoding(b):
    """Transfer-Encoding: chunked is not supported: 400, closed."""
    req = (b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n0\r\n\r\n")
    r = http_request(b.port, req, close_wait=2)
    check_refusal(r, 400)
    assert r.closed, "connection left open after Transfer-Encoding: chunked"


def case_body_too_large(b, limit):
    """Content-Length over --max-message: 413 on the head alone, closed; a body of exactly
    --max-message is read and the connection goes on."""
    s = connect(b.port)
    try:
        s.sendall(get_req("/healthz", headers=[("Content-Length", str(limit + 1))]))
        r = read_response(s, close_wait=2)
        check_refusal(r, 413)
        assert r.closed, "connection left open after a 413"
    finally:
        rst_close(s)
    s = connect(b.port)
    try:
        s.sendall(get_req("/healthz", headers=[("Content-Length", str(limit))]) + b"b" * limit +
                  get_req("/healthz"))
        rs, _ = read_responses(s, 2)
        assert [r.status for r in rs] == [200, 200], "a body of %d bytes then a GET: %r" % (
            limit, rs)
        assert_open(s, "after a body of --max-message bytes")
    finally:
        rst_close(s)


def case_keep_alive_idle(b, timeout):
    """An idle keep-alive connection is closed after about --handshake-timeout seconds."""
    s = connect(b.port)
    try:
        s.sendall(get_req("/healthz"))
        (r,), _ = read_responses(s, 1)
        assert r.status == 200, "%r" % r
        how, data, took = wait_peer_end(s, timeout + 5)
        print("   idle keep-alive connection: %s after %.2fs" % (how, took))
        assert how != "open", "idle keep-alive connection still open after %ds" % (timeout + 5)
        assert not data, "bytes before the close: %r" % data[:100]
        assert timeout - 0.5 <= took <= timeout + 2.5, \
            "idle keep-alive connection closed after %.2fs, want ~%ds" % (took, timeout)
    finally:
        rst_close(s)


# ---------------------------------------------------------------------------------------------
# Options that refuse


def _metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


def case_process_metrics(b):
    """The process figures (sampled once a second off the shard loop) are this broker's own:
    the resident size close to what /proc says, CPU seconds no more than /proc says, and the
    same figures in /stats."""
    time.sleep(1.2)  # at least one sample after startup
    page = os.sysconf("SC_PAGE_SIZE")
    ticks = os.sysconf("SC_CLK_TCK")
    r = http_get(b.port, "/metrics", close_wait=0.2)
    assert r.status == 200, "GET /metrics: %r" % r
    text = r.body.decode()
    rss = _metric(text, "process_resident_memory_bytes")
    cpu = _metric(text, "process_cpu_seconds_total")
    with open("/proc/%d/statm" % b.proc.pid) as f:
        proc_rss = int(f.read().split()[1]) * page
    with open("/proc/%d/stat" % b.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
        proc_cpu = (int(fields[11]) + int(fields[12])) / ticks
    print("   RSS %.1f MiB (/proc %.1f MiB), CPU %.3f s (/proc %.3f s)" % (
        rss / 2**20, proc_rss / 2**20, cpu, proc_cpu))
    assert rss >= 1 << 20, "process_resident_memory_bytes %r" % rss
    assert rss % page == 0, "RSS %r is not whole pages" % rss
    assert proc_rss / 2 <= rss <= proc_rss * 2, "RSS %r, /proc says %r" % (rss, proc_rss)
    # /proc counts in clock ticks, getrusage more finely: allow for the difference.
    assert 0 <= cpu <= proc_cpu + 0.5, "CPU %r s, /proc says %r s" % (cpu, proc_cpu)
    r = http_get(b.port, "/stats", close_wait=0.2)
    stats = __import__("json").loads(r.body)
    assert abs(stats["rss_bytes"] - rss) <= max(rss / 2, 4 << 20), "/stats %r" % stats


def failed_by_reason(b):
    r = http_get(b.port, "/metrics", close_wait=0.2)
    assert r.status == 200, "GET /metrics: %r" % r
    out = {}
    for m in re.finditer(r'^ringcast_handshakes_failed_total\{reason="([a-z_]+)"\} (\d+)$',
                         r.body.decode(), re.M):
        out[m.group(1)] = int(m.group(2))
    return out


FAILED_REASONS = ("bad_request", "forbidden", "not_found", "not_websocket", "per_ip_limit",
                  "unavailable", "timeout", "tls", "other")


def case_failed_reasons(b):
    """ringcast_handshakes_failed_total{reason}: each refusal of the upgrade (400, 403, 404,
    426, 429, 503) and a request that does not arrive in time count under their own reason,
    and /stats has the same figures. Broker: --max-conns 2 --max-conns-per-ip 1
    --allowed-origins http://good.example --handshake-timeout 1."""
    before = failed_by_reason(b)
    assert sorted(before) == sorted(FAILED_REASONS), "reasons in /metrics: %r" % before
    check_refusal(upgrade(b.port, "/room/a%00b"), 400)
    check_refusal(http_request(b.port, b"POST /healthz HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: 0\r\n\r\n", close_wait=0.2), 405)
    check_refusal(upgrade(b.port, "/echo", origin="http://evil.example"), 403)
    check_refusal(upgrade(b.port, "/nope"), 404)
    check_refusal(http_get(b.port, "/echo", close_wait=0.2), 426)
    held = [RawWS(b.port, "/echo", origin="http://good.example")]
    try:
        check_refusal(upgrade(b.port, "/echo", origin="http://good.example"), 429)
        held.append(RawWS(b.port, "/echo", source="127.0.0.2", origin="http://good.example"))
        r = http_request(b.port, upgrade_request("/echo", origin="http://good.example"),
                         source="127.0.0.3", close_wait=0.2)
        check_refusal(r, 503)
    finally:
        for c in held:
            c.rst()
    s = connect(b.port)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert_conn_ends(s, 6)
    rst_close(s)
    want = {"bad_request": 2, "forbidden": 1, "not_found": 1, "not_websocket": 1,
            "per_ip_limit": 1, "unavailable": 1, "timeout": 1}
    after = failed_by_reason(b)
    got = {k: after[k] - before[k] for k in FAILED_REASONS if after[k] != before[k]}
    assert got == want, "failed handshakes by reason rose by %r, want %r" % (got, want)
    r = http_get(b.port, "/stats", close_wait=0.2)
    st = json.loads(r.body)
    assert st["handshakes_failed_by_reason"] == after, "/stats %r vs /metrics %r" % (
        st["handshakes_failed_by_reason"], after)
    assert st["handshakes_failed"] == sum(after.values()), st["handshakes_failed"]


def case_origins(b):
    for origin in ("http://evil.example", "http://good.example.evil", "null",
                   "https://good.example"):
        r = upgrade(b.port, "/echo", origin=origin)
        check_refusal(r, 403)
    for origin in ("http://good.example", "https://ok.example:8443"):
        r = upgrade(b.port, "/echo", origin=origin)
        assert r.status == 101, "allowed origin %s: %r" % (origin, r)
        r = upgrade(b.port, "/room/o", origin=origin)
        assert r.status == 101, "allowed origin %s on a room: %r" % (origin, r)
    r = http_get(b.port, "/healthz", headers=[("Origin", "http://evil.example")],
                 close_wait=0.2)
    assert r.status == 200, "/healthz is not an upgrade and does not check origins: %r" % r


def case_per_ip(b):
    held = [RawWS(b.port, "/echo") for _ in range(3)]
    try:
        r = upgrade(b.port, "/echo")
        check_refusal(r, 429)
        r = upgrade(b.port, "/room/x")
        check_refusal(r, 429)
        other = RawWS(b.port, "/echo", source="127.0.0.2")  # another address is fine
        other.rst()
        r = http_get(b.port, "/healthz", close_wait=0.2)
        assert r.status == 200, "/healthz is not an upgrade: %r" % r
        held.pop().rst()
        deadline = time.monotonic() + 3
        while True:
            r = upgrade(b.port, "/echo")
            if r.status == 101 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert r.status == 101, "a freed per-IP slot is not reusable: %r" % r
    finally:
        for c in held:
            c.rst()


# ---------------------------------------------------------------------------------------------
# Timeouts


def case_handshake_timeout(b):
    """--handshake-timeout 1: half a request, or a request trickled byte by byte, is closed
    after about a second; a silent connection too (the kernel may hold a silent connection
    back from accept for a while with TCP_DEFER_ACCEPT, so it gets longer)."""
    results = {}

    def half():
        s = connect(b.port)
        t0 = time.monotonic()
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert_conn_ends(s, 6)
        results["half"] = time.monotonic() - t0
        rst_close(s)

    def trickle():
        s = connect(b.port)
        t0 = time.monotonic()
        req = upgrade_request("/echo")
        try:
            for i in range(len(req)):
                s.sendall(req[i:i + 1])
                if select.select([s], [], [], 0.25)[0] and not s.recv(4096):
                    break  # EOF: closed by the broker
                if time.monotonic() - t0 > 6:
                    break
        except OSError:
            pass  # reset or EPIPE: closed by the broker
        results["trickle"] = time.monotonic() - t0
        rst_close(s)

    def silent():
        s = connect(b.port)
        t0 = time.monotonic()
        assert_conn_ends(s, 15)
        results["silent"] = time.monotonic() - t0
        rst_close(s)

    errs = []

    def wrap(fn):
        def run():
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                errs.append("%s: %r" % (fn.__name__, e))
        return run
    threads = [threading.Thread(target=wrap(f)) for f in (half, trickle, silent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    print("   closed after: %s" % ", ".join("%s %.2fs" % kv for kv in sorted(results.items())))
    assert not errs, "; ".join(errs)
    assert 0.5 <= results["half"] <= 3.5, "half request closed after %.2fs, want ~1s" % \
        results["half"]
    assert results["trickle"] <= 4, "trickled request still open after %.1fs" % \
        results["trickle"]
    assert results["silent"] <= 12, "silent connection closed after %.1fs" % results["silent"]


def case_handshake_in_time(b):
    """A request split in two halves 0.5 s apart finishes within --handshake-timeout 1, and an
    upgraded connection is no longer subject to it."""
    s = connect(b.port)
    try:
        req = upgrade_request("/echo")
        s.sendall(req[:30])
        time.sleep(0.5)
        s.sendall(req[30:])
        r = read_response(s, want_close=False)
        assert r.status == 101, "%r" % r
    finally:
        rst_close(s)
    with RawWS(b.port, "/echo") as c:
        time.sleep(2.0)
        c.send_text("still here")
        assert c.recv_message(3) == (OP_TEXT, b"still here")


def case_idle_timeout(b):
    """--ping-interval 1 --idle-timeout 2: the broker pings; a client that neither answers nor
    sends anything is closed after about 2 s; one that answers pings, a library client, and one
    that sends messages (but no pongs) all stay."""
    out = {}

    def silent():
        try:
            with RawWS(b.port, "/echo") as c:
                t0 = time.monotonic()
                frames, how = c.read_until_end(8)
                out["silent"] = (time.monotonic() - t0, how,
                                 sum(1 for f in frames if f.opcode == OP_PING),
                                 [f.close_code() for f in frames if f.opcode == OP_CLOSE])
        except Exception as e:  # noqa: BLE001
            out["silent"] = (None, "error %r" % e, 0, [])

    def ponger():
        """Answers every ping for 6 s and publishes once into a room of one at 5 s."""
        pings, sent = 0, False
        try:
            with RawWS(b.port, "/room/idle") as c:
                t0 = time.monotonic()
                while time.monotonic() - t0 < 6:
                    if not sent and time.monotonic() - t0 >= 5:
                        c.send_text("alive")
                        sent = True
                    try:
                        f = c.recv_frame(0.2)
                    except TimeoutError:
                        continue
                    if f.opcode == OP_PING:
                        pings += 1
                        c.send_frame(0xA, f.payload)
                    elif f.opcode == OP_CLOSE:
                        out["ponger"] = "closed with %r after %.1fs and %d pings" % (
                            f.close_code(), time.monotonic() - t0, pings)
                        return
                    else:
                        out["ponger"] = "unexpected frame %r" % f
                        return
            out["ponger"] = "ok" if pings >= 3 else "only %d pings in 6s" % pings
        except Exception as e:  # noqa: BLE001
            out["ponger"] = "connection ended after %d pings: %r" % (pings, e)

    def talker():
        """Sends a message every 0.5 s for 5 s and never answers a ping."""
        try:
            with RawWS(b.port, "/echo") as c:
                t0 = time.monotonic()
                while time.monotonic() - t0 < 5:
                    c.send_text("tick")
                    deadline = time.monotonic() + 0.5
                    while time.monotonic() < deadline:
                        try:
                            f = c.recv_frame(max(0.01, deadline - time.monotonic()))
                        except TimeoutError:
                            break
                        if f.opcode == OP_CLOSE:
                            out["talker"] = "closed with %r after %.1fs" % (
                                f.close_code(), time.monotonic() - t0)
                            return
            out["talker"] = "ok"
        except Exception as e:  # noqa: BLE001
            out["talker"] = "connection ended: %r" % e

    def library():
        async def go():
            async with ws_connect(b.url + "/echo") as ws:
                await asyncio.sleep(5)
                await ws.send("lib")
                assert await ws_recv(ws, 3) == "lib"
        try:
            run_async(go(), 15)
            out["library"] = "ok"
        except Exception as e:  # noqa: BLE001
            out["library"] = repr(e)

    threads = [threading.Thread(target=f) for f in (silent, ponger, talker, library)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    took, how, pings, closes = out.get("silent", (None, None, 0, []))
    print("   silent client: ended %s after %s s, %d pings, close %r" % (how, took and
                                                                          "%.2f" % took, pings,
                                                                          closes))
    errs = []
    if took is None:
        errs.append("silent client: %s" % how)
    elif how not in ("eof", "reset") and not closes:
        errs.append("silent client still open after 8s")
    elif not (1.5 <= took <= 5.0):
        errs.append("silent client closed after %.2fs, want ~2s" % took)
    if pings < 1:
        errs.append("no server ping within the idle time (--ping-interval 1)")
    for k in ("ponger", "talker", "library"):
        if out.get(k) != "ok":
            errs.append("%s: %s" % (k, out.get(k)))
    assert not errs, "; ".join(errs)


# ---------------------------------------------------------------------------------------------
# Command line


def run_bin(args, env=None, timeout=15):
    e = dict(os.environ)
    e.update(env or {})
    try:
        p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout,
                           env=e, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError("%s did not exit within %ss" % (" ".join(args), timeout)) from None
    return p


def case_cli_help():
    p = run_bin(["--help"])
    assert p.returncode == 0, "--help exit %d" % p.returncode
    for opt in ("--listen", "--max-conns", "--max-message", "--slow-consumer", "--config"):
        assert opt in p.stdout, "--help does not mention %s" % opt


def case_cli_version():
    p = run_bin(["--version"])
    assert p.returncode == 0, "--version exit %d" % p.returncode
    out = p.stdout.strip()
    print("   --version: %r" % out)
    assert re.search(r"\d+\.\d+", out), "--version printed %r: no version number" % out


def case_cli_bad(tmpdir):
    cases = [(["--no-such-option"], {}), (["--max-conns", "abc"], {}),
             (["--max-message"], {}), (["--slow-consumer", "maybe"], {}),
             (["--listen", "nohostnoport"], {}), (["--shards", "-1"], {}),
             (["--config", os.path.join(tmpdir, "does-not-exist.conf")], {}),
             ([], {"RINGCAST_MAX_MESSAGE": "lots"}),
             # Values the engine cannot honour are refused, not clamped or wrapped.
             (["--shards", "65"], {}), (["--send-queue", "4g"], {}),
             (["--max-message", "2g"], {}), (["--max-conns", "18446744073709551615"], {})]
    bad = os.path.join(tmpdir, "bad.conf")
    with open(bad, "w") as f:
        f.write("no-such-key = 1\n")
    cases.append((["--config", bad], {}))
    errs = []
    for args, env in cases:
        p = run_bin(["--listen", "127.0.0.1:0"] + args, env=env)
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        what = " ".join(args) or repr(env)
        if p.returncode != 2:
            errs.append("%s: exit %r, want 2" % (what, p.returncode))
        elif len(lines) != 1:
            errs.append("%s: %d lines on stderr, want 1: %r" % (what, len(lines), p.stderr))
        elif "listening" in p.stdout:
            errs.append("%s: started listening" % what)
    assert not errs, "; ".join(errs)


def _max_message_is(b, limit):
    """The broker echoes a message of <limit> bytes and closes 1009 on <limit>+1."""
    async def go():
        async with ws_connect(b.url + "/echo") as ws:
            await ws.send(b"m" * limit)
            assert await ws_recv(ws) == b"m" * limit, "message of exactly %d bytes" % limit
        async with ws_connect(b.url + "/echo") as ws:
            await ws.send(b"m" * (limit + 1))
            code = await ws_wait_closed(ws, 5)
            assert code == 1009, "message of %d bytes: close %r, want 1009 (limit %d)" % (
                limit + 1, code, limit)
    run_async(go(), 15)


def case_ipv6_listening_line():
    """--listen [::1]:0 prints a URL with the IPv6 host in brackets (RFC 3986), one that works:
    ws://[::1]:PORT, not the ambiguous ws://::1:PORT."""
    import socket
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        print("   skipped: no IPv6 loopback here")
        return
    p = subprocess.Popen([BIN, "--listen", "[::1]:0", "--shards", "1"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    try:
        line = p.stdout.readline().strip()
        m = re.fullmatch(r"ringcast: listening on ws://\[::1\]:(\d+)", line)
        assert m, "listening line %r" % line
        s = socket.create_connection(("::1", int(m.group(1))), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: [::1]\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200"), "GET /healthz over IPv6 failed"
        s.close()
    finally:
        p.terminate()
        assert p.wait(timeout=15) == 0, "exit status %r" % p.returncode


def case_env_max_message():
    with Broker("--shards", "1", env={"RINGCAST_MAX_MESSAGE": "1000"}) as b:
        _max_message_is(b, 1000)


def case_config_file(tmpdir):
    path = os.path.join(tmpdir, "ringcast.conf")
    with open(path, "w") as f:
        f.write("# a comment\n\nmax-message = 1200\nshards = 1\n")
    with Broker("--config", path) as b:
        _max_message_is(b, 1200)


def case_precedence(tmpdir):
    """Command line beats environment beats file."""
    path = os.path.join(tmpdir, "prec.conf")
    with open(path, "w") as f:
        f.write("max-message = 3000\n")
    with Broker("--shards", "1", "--config", path, env={"RINGCAST_MAX_MESSAGE": "1500"}) as b:
        _max_message_is(b, 1500)
    with Broker("--shards", "1", "--config", path, "--max-message", "2500",
                env={"RINGCAST_MAX_MESSAGE": "1500"}) as b:
        _max_message_is(b, 2500)
    with Broker("--shards", "1", env={"RINGCAST_CONFIG": path}) as b:
        _max_message_is(b, 3000)


def main():
    r = Runner()
    with Broker("--shards", "2") as b:
        for name, fn in [("GET /healthz -> 200 ok", case_healthz),
                         ("unknown path -> 404", case_not_found),
                         ("unknown page from a browser -> HTML 404", case_not_found_page),
                         ("not an upgrade -> 426", case_not_upgrade),
                         ("Sec-WebSocket-Version 8 -> 426 + version 13", case_version),
                         ("missing or bad key -> 400", case_bad_key),
                         ("missing Host -> 400", case_missing_host),
                         ("upgrade variants that must work", case_good_variants),
                         ("bad room names -> 400", case_bad_room_names),
                         ("good room names -> 101", case_good_room_names),
                         ("control characters in the request line -> 400",
                          case_control_char_in_request_line),
                         ("garbage -> 400 and closed", case_garbage),
                         ("head over 8 KiB -> 431/400 and closed", case_head_too_big),
                         ("/healthz with query and headers", case_http_paths_unaffected),
                         ("keep-alive: two GET /healthz on one connection", case_keep_alive),
                         ("pipelining: five requests answered in order", case_pipelining),
                         ("HEAD /healthz: head without body", case_head),
                         ("Connection: close and HTTP/1.0 close after the answer",
                          case_connection_close),
                         ("POST /healthz -> 405 with Allow: GET, HEAD", case_method_not_allowed),
                         ("Transfer-Encoding: chunked -> 400 and closed",
                          case_transfer_encoding),
                         ("/metrics: process figures are the broker's own",
                          case_process_metrics)]:
            r.run(name, fn, b)
    with Broker("--shards", "2", "--handshake-timeout", "1") as b:
        r.run("--handshake-timeout 1 closes slow handshakes", case_handshake_timeout, b)
        r.run("a handshake within the timeout works", case_handshake_in_time, b)
    with Broker("--shards", "2", "--max-message", "1000", "--handshake-timeout", "2") as b:
        r.run("Content-Length over --max-message 1000 -> 413 and closed", case_body_too_large,
              b, 1000)
        r.run("--handshake-timeout 2 closes an idle keep-alive connection",
              case_keep_alive_idle, b, 2)
    with Broker("--shards", "2", "--allowed-origins",
                "http://good.example,https://ok.example:8443") as b:
        r.run("--allowed-origins: 403 for others, 101 for listed", case_origins, b)
    with Broker("--shards", "2", "--max-conns", "2", "--max-conns-per-ip", "1",
                "--allowed-origins", "http://good.example", "--handshake-timeout", "1") as b:
        r.run("/metrics: failed handshakes by reason", case_failed_reasons, b)
    with Broker("--shards", "2", "--max-conns-per-ip", "3") as b:
        r.run("--max-conns-per-ip 3: 429 for the 4th", case_per_ip, b)
    with Broker("--shards", "2", "--ping-interval", "1", "--idle-timeout", "2") as b:
        r.run("--idle-timeout 2 with --ping-interval 1", case_idle_timeout, b)
    r.run("--help", case_cli_help)
    r.run("--version", case_cli_version)
    with tempfile.TemporaryDirectory() as tmp:
        r.run("bad options -> exit 2, one line", case_cli_bad, tmp)
        r.run("--listen [::1]:0 prints ws://[::1]:PORT", case_ipv6_listening_line)
        r.run("RINGCAST_MAX_MESSAGE takes effect", case_env_max_message)
        r.run("--config FILE takes effect", case_config_file, tmp)
        r.run("precedence: command line, environment, file", case_precedence, tmp)
    r.finish()


if __name__ == "__main__":
    main()

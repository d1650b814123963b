# SPDX-License-Identifier: MIT
"""RFC 6455 conformance of WS /echo: the Autobahn TestSuite categories 1 to 7, 9 and 10, ported
into our own tables (conformance_cases.py), since Autobahn's wstest cannot be installed here.

The client side is written from the RFC on purpose, with the standard library only (raw
sockets, our own framing and masking): it shares no code with the broker or with the other
integration tests, so a misreading of the RFC has to be made twice to go unnoticed.

Every case runs on its own connection and is strict:
- data messages come back with exactly the payload and opcode sent;
- where the connection must fail, the broker sends a close frame with exactly the expected
  code and closes the TCP connection within 2 s without waiting for our close (RFC 6455
  section 7.1.7), and nothing else comes first (except the echoes of valid messages sent
  before the bad frame);
- where we close, the broker answers with the same code and closes the TCP connection
  within 2 s;
- every frame from the broker is checked: unmasked, RSV bits clear, a known opcode, minimal
  length encoding, control frames final and at most 125 bytes, fragments in sequence, text
  valid UTF-8, close payloads well formed;
- afterwards another /echo connection still works (the broker is healthy).
At the end each broker must exit 0 on SIGTERM.

Two brokers: "main" with --max-message 16777216 (and a send queue large enough to hold the
16 MiB echo, so that category 9 measures framing, not the slow-consumer policy), and "small"
with the default --max-message (65536) for the 1009 cases.

Transport: plain TCP by default. With RINGCAST_CONFORMANCE_TLS=1 the same cases run over TLS
(wss): the brokers get --tls-listen/--tls-cert/--tls-key with a throwaway self-signed
certificate and the client wraps its socket with ssl, without verification (ctest runs it
as integration.test_conformance_tls).

Run it directly (python3 tests/integration/test_conformance.py [CASE-PREFIX ...]) or through
ctest; RINGCAST_BIN names the broker. It prints one ok/FAIL line per case and ends with the
Runner's "N passed, N failed" line.
"""
import base64
import collections
import hashlib
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Broker, Runner  # noqa: E402

import conformance_cases as cc  # noqa: E402
from conformance_cases import BINARY, CLOSE, CONT, PING, PONG, TEXT  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
TCP_CLOSE_WITHIN = 2.0  # seconds from the broker's close frame to its TCP close
CLOSE_WAIT = 10.0  # bound on the wait for the broker's close frame (it returns at once)
HANDSHAKE_TIMEOUT = 5.0
BROKER_START_TIMEOUT = 15.0
# Bound on the whole run, under ctest's TIMEOUT of 300 s: past it, the remaining cases fail
# at once instead of each waiting for its own timeouts (a broker that stopped answering).
SUITE_BUDGET = float(os.environ.get("RINGCAST_CONFORMANCE_BUDGET", "240"))
# Sleep between small writes in the byte-wise cases, so that the broker really receives them
# one by one; only when there are few of them.
CHOP_DELAY = 0.0005
CHOP_DELAY_MAX_WRITES = 400

MAIN_ARGS = ["--max-message", str(cc.BIG_MAX_MESSAGE), "--send-queue", str(64 * cc.MIB),
             "--ping-interval", "3600", "--idle-timeout", "3600"]
SMALL_ARGS = ["--ping-interval", "3600", "--idle-timeout", "3600"]

OPNAMES = {CONT: "continuation", TEXT: "text", BINARY: "binary", CLOSE: "close", PING: "ping",
           PONG: "pong"}
# RFC 6455 section 7.4: codes an endpoint may put in a close frame (1005, 1006, 1015 never).
SENDABLE = set([1000, 1001, 1002, 1003]) | set(range(1007, 1015)) | set(range(3000, 5000))


class CaseFailure(AssertionError):
    pass


# =============================================================================================
# Client codec (RFC 6455 section 5): masked client frames out, strict checks on server frames.


def mask_bytes(data, key):
    """XOR <data> with the 4-byte <key> (RFC 6455 section 5.3), fast for large payloads."""
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def encode_header(op, fin, rsv, masked, length, key):
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (op & 0x0F)
    mbit = 0x80 if masked else 0
    if length < 126:
        hdr = bytes([b0, mbit | length])
    elif length < 65536:
        hdr = bytes([b0, mbit | 126]) + length.to_bytes(2, "big")
    else:
        hdr = bytes([b0, mbit | 127]) + length.to_bytes(8, "big")
    return hdr + key if masked else hdr


def encode_frame(fr):
    """Encodes an F(...) tuple; returns (bytes, header length)."""
    _, op, payload, fin, rsv, masked, length = fr
    key = os.urandom(4) if masked else b""
    hdr = encode_header(op, fin, rsv, masked, len(payload) if length is None else length, key)
    return hdr + (mask_bytes(payload, key) if masked else payload), len(hdr)


def close_frame(code=None, reason=b""):
    payload = b"" if code is None else code.to_bytes(2, "big") + reason
    return encode_frame(cc.F(CLOSE, payload))[0]


def show(data, limit=48):
    """A short printable picture of a payload."""
    if len(data) <= limit:
        return repr(bytes(data))
    return "%d bytes %r..." % (len(data), bytes(data[:limit]))


def describe(ev):
    if ev is None:
        return "nothing (timed out)"
    kind = ev[0]
    if kind == "msg":
        return "%s message %s" % (OPNAMES[ev[1]], show(ev[2]))
    if kind in ("ping", "pong"):
        return "%s %s" % (kind, show(ev[1]))
    if kind == "close":
        if ev[1] is None:
            return "close (empty payload)"
        return "close %d%s" % (ev[1], (" reason %r" % bytes(ev[2])) if ev[2] else "")
    if kind == "eof":
        return "TCP close (%s)" % ev[1]
    if kind == "bad":
        return "BAD FRAME FROM SERVER: " + ev[1]
    return repr(ev)


def describe_expected(ev):
    if ev[0] == "msg":
        return "%s message %s" % (OPNAMES[ev[1]], show(ev[2]))
    return "%s %s" % (ev[0], show(ev[1]))


class Decoder:
    """Incremental decoder of server frames, producing events:
    ("msg", opcode, payload) a whole data message, ("ping"|"pong", payload),
    ("close", code or None, reason), ("bad", why): the server broke the RFC (parsing stops),
    ("eof", "FIN"|"reset"): the TCP connection ended."""

    def __init__(self):
        self.buf = bytearray()
        self.events = collections.deque()
        self.frag_op = None
        self.frag_parts = []
        self.dead = False

    def feed(self, data):
        if self.dead:
            return
        self.buf += data
        off = 0
        buf = self.buf
        while True:
            avail = len(buf) - off
            if avail < 2:
                break
            b0, b1 = buf[off], buf[off + 1]
            fin, rsv, op = b0 & 0x80, (b0 >> 4) & 7, b0 & 0x0F
            n = b1 & 0x7F
            hlen = 2
            if n == 126:
                hlen = 4
                if avail < hlen:
                    break
                n = int.from_bytes(buf[off + 2:off + 4], "big")
                if n < 126:
                    return self._bad("16-bit length %d is not the minimal encoding" % n)
            elif n == 127:
                hlen = 10
                if avail < hlen:
                    break
                n = int.from_bytes(buf[off + 2:off + 10], "big")
                if n >> 63:
                    return self._bad("64-bit length with the most significant bit set")
                if n < 65536:
                    return self._bad("64-bit length %d is not the minimal encoding" % n)
            if b1 & 0x80:
                return self._bad("server frame is masked (RFC 6455 5.1)")
            if rsv:
                return self._bad("RSV bits 0x%x set in a server frame" % rsv)
            if avail < hlen + n:
                break
            payload = bytes(buf[off + hlen:off + hlen + n])
            off += hlen + n
            if not self._frame(bool(fin), op, payload):
                return
        if off:
            del buf[:off]

    def _bad(self, why):
        self.events.append(("bad", why))
        self.dead = True

    def _frame(self, fin, op, payload):
        if op >= 0x8:
            if op not in (CLOSE, PING, PONG):
                self._bad("reserved control opcode 0x%X" % op)
                return False
            if not fin:
                self._bad("fragmented %s frame" % OPNAMES[op])
                return False
            if len(payload) > 125:
                self._bad("%s frame of %d bytes (max 125)" % (OPNAMES[op], len(payload)))
                return False
            if op == CLOSE:
                return self._close(payload)
            self.events.append(("ping" if op == PING else "pong", payload))
            return True
        if op not in (CONT, TEXT, BINARY):
            self._bad("reserved data opcode 0x%X" % op)
            return False
        if op == CONT:
            if self.frag_op is None:
                self._bad("continuation frame with no message open")
                return False
        else:
            if self.frag_op is not None:
                self._bad("new %s message while a fragmented one is open" % OPNAMES[op])
                return False
            self.frag_op = op
            self.frag_parts = []
        self.frag_parts.append(payload)
        if fin:
            whole = self.frag_parts[0] if len(self.frag_parts) == 1 else \
                b"".join(self.frag_parts)
            mop, self.frag_op, self.frag_parts = self.frag_op, None, []
            if mop == TEXT:
                try:
                    whole.decode("utf-8")
                except UnicodeDecodeError as e:
                    self._bad("text message from the server is not valid UTF-8: %s" % e)
                    return False
            self.events.append(("msg", mop, whole))
        return True

    def _close(self, payload):
        if len(payload) == 0:
            self.events.append(("close", None, b""))
            return True
        if len(payload) == 1:
            self._bad("close frame with a 1-byte payload")
            return False
        code = int.from_bytes(payload[:2], "big")
        if code not in SENDABLE:
            self._bad("close frame with code %d, which may not be sent" % code)
            return False
        try:
            payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            self._bad("close reason is not valid UTF-8: %r" % payload[2:])
            return False
        self.events.append(("close", code, payload[2:]))
        return True

    def end(self, how):
        if not self.dead and self.buf:
            self.events.append(("bad", "TCP closed inside a frame (%d bytes pending)"
                                % len(self.buf)))
        self.events.append(("eof", how))
        self.dead = True


# =============================================================================================
# Transport: a function that returns a connected socket. Plain TCP, or TLS.

TLS = os.environ.get("RINGCAST_CONFORMANCE_TLS") == "1"
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_GONE = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, ssl.SSLError)


def open_plain(broker):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=HANDSHAKE_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def open_tls(broker):
    raw = socket.create_connection(("127.0.0.1", broker.tls_port), timeout=HANDSHAKE_TIMEOUT)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


OPEN_SOCKET = open_tls if TLS else open_plain


def tls_broker_args(tmpdir):
    """--tls-* options with a throwaway self-signed certificate from tools/gen-certs.sh, or
    straight from openssl where that script is missing."""
    gen = os.path.join(harness.SRC, "tools", "gen-certs.sh")
    if os.path.exists(gen):
        subprocess.run(["sh", gen, tmpdir], check=True, capture_output=True, timeout=60)
        cert, key = os.path.join(tmpdir, "rsa.crt"), os.path.join(tmpdir, "rsa.key")
    else:
        cert, key = os.path.join(tmpdir, "cert.pem"), os.path.join(tmpdir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "1", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=60)
    return ["--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key]


class Conn:
    """One client connection to WS /echo, non-blocking underneath, every wait bounded."""

    def __init__(self, broker, path="/echo"):
        self.sock = OPEN_SOCKET(broker)
        self.dec = Decoder()
        self.eof = False
        self.broken = False  # writing failed: the broker closed or reset the connection
        self.log = []  # every event taken so far, for the failure report
        self.kept = {}
        self._handshake(path)
        self.sock.setblocking(False)

    def _handshake(self, path):
        key = base64.b64encode(os.urandom(16))
        req = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
               b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.settimeout(HANDSHAKE_TIMEOUT)
        self.sock.sendall(req)
        data = b""
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        while b"\r\n\r\n" not in data:
            if time.monotonic() > deadline:
                raise CaseFailure("no complete HTTP response to the upgrade within %.0f s"
                                  % HANDSHAKE_TIMEOUT)
            chunk = self.sock.recv(4096)
            if not chunk:
                raise CaseFailure("connection closed during the upgrade; got %r" % data)
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise CaseFailure("upgrade refused: %r" % lines[0])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        if hdrs.get("sec-websocket-accept") != want:
            raise CaseFailure("bad Sec-WebSocket-Accept %r (want %r)"
                              % (hdrs.get("sec-websocket-accept"), want))
        if hdrs.get("upgrade", "").lower() != "websocket":
            raise CaseFailure("bad Upgrade header %r" % hdrs.get("upgrade"))
        if "upgrade" not in [t.strip().lower() for t in hdrs.get("connection", "").split(",")]:
            raise CaseFailure("bad Connection header %r" % hdrs.get("connection"))
        if "sec-websocket-extensions" in hdrs:
            raise CaseFailure("extension %r negotiated though none was offered"
                              % hdrs["sec-websocket-extensions"])
        if rest:
            self.dec.feed(rest)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- low level ----

    def _read_available(self):
        while not self.eof:
            try:
                data = self.sock.recv(1 << 18)
            except _WOULD_BLOCK:
                return
            except _GONE:
                self.eof = True
                self.dec.end("reset")
                return
            if not data:
                self.eof = True
                self.dec.end("FIN")
                return
            self.dec.feed(data)

    def _select(self, deadline, want_write=False):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        rd = [] if self.eof else [self.sock]
        wr = [self.sock] if want_write else []
        if not rd and not wr:
            time.sleep(min(left, 0.05))
            return
        select.select(rd, wr, [], min(left, 0.5))

    def write(self, data, deadline):
        """Sends all of <data>, reading meanwhile. False when the broker closed on us."""
        view = memoryview(data)
        off = 0
        while off < len(view):
            if self.broken:
                return False
            try:
                off += self.sock.send(view[off:off + (1 << 20)])
                continue
            except _WOULD_BLOCK:
                pass
            except (_GONE + (OSError,)):
                self.broken = True
                return False
            self._read_available()
            if time.monotonic() > deadline:
                raise CaseFailure("could not send %d bytes within the timeout (sent %d)"
                                  % (len(view), off))
            self._select(deadline, want_write=True)
        return True

    def next_event(self, deadline):
        while True:
            if self.dec.events:
                ev = self.dec.events.popleft()
                self.log.append(ev)
                return ev
            if self.eof:
                return ("eof", "already closed")
            self._read_available()
            if self.dec.events:
                continue
            if time.monotonic() >= deadline:
                return None
            self._select(deadline)

    def shutdown_write(self):
        # The plain socket's shutdown also for TLS: SSLSocket.shutdown would drop the TLS
        # state, and we still want to read the broker's close frame.
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_WR)
        except OSError:
            self.broken = True


# =============================================================================================
# Playing a case


def fail(conn, what, expected, got):
    earlier = conn.log[:-1] if conn.log and got is conn.log[-1] else conn.log
    seen = "; ".join(describe(e) for e in earlier[-6:]) or "nothing"
    raise CaseFailure("%s: expected %s, got %s [received before it: %s]"
                      % (what, expected, describe(got), seen))


def same_event(want, got):
    if got is None or got[0] != want[0]:
        return False
    if want[0] == "msg":
        return got[1] == want[1] and got[2] == want[2]
    return got[1] == want[1]


def mismatch_detail(want, got):
    if got is not None and want[0] == "msg" and got[0] == "msg" and got[1] == want[1]:
        a, b = want[2], got[2]
        i = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
        return " (lengths %d sent, %d back; first difference at byte %d)" % (len(a), len(b), i)
    return ""


def encode_many(frames):
    return [encode_frame(f)[0] for f in frames]


def play_send(conn, frames, mode, deadline):
    chunks = encode_many(frames)
    if mode == cc.ONE:
        writes, delay = [b"".join(chunks)], 0
    elif mode == cc.FRAMES:
        writes, delay = chunks, 0.002
    elif mode[0] == "cuts":
        data = b"".join(chunks)
        edges = [0] + list(mode[1]) + [len(data)]
        writes = [data[a:b] for a, b in zip(edges, edges[1:])]
        delay = CHOP_DELAY
    else:
        data = b"".join(chunks)
        size = mode[1]
        writes = [data[i:i + size] for i in range(0, len(data), size)]
        delay = CHOP_DELAY if len(writes) <= CHOP_DELAY_MAX_WRITES else 0
    for i, w in enumerate(writes):
        if not conn.write(w, deadline):
            return False
        if delay and i + 1 < len(writes):
            time.sleep(delay)
    return True


def send_step(conn, step, deadline):
    if step[0] == "send":
        return play_send(conn, step[1], step[2], deadline)
    data, hlen = conn.kept[step[1]]
    start = 0 if step[2] == 0 else hlen + step[2]
    end = len(data) if step[3] is None else hlen + step[3]
    return conn.write(data[start:end], deadline)


def expect_events(conn, events, timeout, what):
    deadline = time.monotonic() + timeout
    for want in events:
        got = conn.next_event(deadline)
        if not same_event(want, got):
            fail(conn, what, describe_expected(want) + mismatch_detail(want, got), got)


def expect_tcp_close(conn, what):
    got = conn.next_event(time.monotonic() + TCP_CLOSE_WITHIN)
    if got is None:
        fail(conn, what, "TCP close within %.0f s of the close frame" % TCP_CLOSE_WITHIN, got)
    if got[0] != "eof":
        fail(conn, what, "TCP close after the close frame (nothing else)", got)


def expect_close(conn, codes, timeout, what, got=None):
    if got is None:
        got = conn.next_event(time.monotonic() + timeout)
    want = " or ".join("an empty close" if c is None else "close %d" % c for c in codes)
    if got is None or got[0] != "close" or got[1] not in codes:
        fail(conn, what, want, got)
    return got


def play(conn, case):
    """Plays <case>'s steps on <conn> and checks its outcome; raises CaseFailure."""
    deadline_for = lambda s: time.monotonic() + s  # noqa: E731
    outcome = case.outcome
    early_close = None
    steps = list(case.steps)
    i = 0
    while i < len(steps):
        step = steps[i]
        i += 1
        kind = step[0]
        if kind in ("send", "send_slice"):
            send_step(conn, step, deadline_for(60.0))
        elif kind == "expect":
            expect_events(conn, step[1], step[2], "after step %d" % i)
        elif kind == "quiet":
            got = conn.next_event(deadline_for(step[1]))
            if got is not None:
                fail(conn, "during a %.1f s pause (step %d)" % (step[1], i), "nothing", got)
        elif kind == "sleep":
            time.sleep(step[1])
        elif kind == "encode":
            conn.kept[step[1]] = encode_frame(step[2])
        elif kind == "failfast":
            code, secs = step[1], step[2]
            got = conn.next_event(deadline_for(secs))
            if got is not None and got[0] == "close":
                if got[1] != code:
                    fail(conn, "fail-fast", "close %d" % code, got)
                early_close = got
                break
            if got is not None:
                fail(conn, "fail-fast", "close %d within %.1f s" % (code, secs), got)
            # Not failed fast: send the rest anyway to report what the broker does then.
            for rest in steps[i:]:
                if rest[0] in ("send", "send_slice"):
                    send_step(conn, rest, deadline_for(10.0))
            later = conn.next_event(deadline_for(3.0))
            raise CaseFailure("not fail-fast: no close %d within %.1f s of the bad bytes, "
                              "before the rest of the message was sent; after the rest was "
                              "sent, got %s" % (code, secs, describe(later)))
        elif kind == "shutdown":
            conn.shutdown_write()
        elif kind == "send_fin":
            # Corked, the frames wait for the FIN and leave with it in one segment.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            play_send(conn, step[1], cc.ONE, deadline_for(5.0))
            conn.shutdown_write()
        elif kind == "roundtrips":
            roundtrips(conn, step[1], step[2], step[3])
        else:
            raise AssertionError("unknown step %r" % (step,))

    if outcome[0] == "ok":
        conn.write(close_frame(1000), deadline_for(5.0))
        expect_close(conn, [1000], CLOSE_WAIT, "closing handshake we started with close 1000")
        expect_tcp_close(conn, "after the closing handshake")
    elif outcome[0] == "fail":
        # No close back from us: failing a connection closes TCP without waiting for the
        # peer's close (RFC 6455 section 7.1.7), so the broker must not need it.
        got = expect_close(conn, [outcome[1]], CLOSE_WAIT, "failing the connection", early_close)
        expect_tcp_close(conn, "after close %d" % got[1])
    elif outcome[0] == "closed":
        expect_close(conn, outcome[1], CLOSE_WAIT, "answer to our close frame")
        expect_tcp_close(conn, "after the closing handshake")
    else:
        raise AssertionError("unknown outcome %r" % (outcome,))


def roundtrips(conn, op, size, count):
    payload = cc.pattern(size) if op == TEXT else cc.binary_pattern(size)
    for n in range(count):
        deadline = time.monotonic() + 10.0
        conn.write(encode_frame(cc.F(op, payload))[0], deadline)
        got = conn.next_event(deadline)
        if got is None or got[0] != "msg" or got[1] != op or got[2] != payload:
            fail(conn, "round trip %d of %d" % (n + 1, count),
                 "%s message %s" % (OPNAMES[op], show(payload)), got)


def health_check(broker):
    if broker.proc.poll() is not None:
        raise CaseFailure("broker process exited with status %r" % broker.proc.returncode)
    conn = Conn(broker)
    try:
        deadline = time.monotonic() + 10.0
        conn.write(encode_frame(cc.F(TEXT, b"health check"))[0], deadline)
        got = conn.next_event(deadline)
        if not same_event(("msg", TEXT, b"health check"), got):
            fail(conn, "health check", "text message b'health check'", got)
        conn.write(close_frame(1000), deadline)
        expect_close(conn, [1000], 10.0, "health check close")
        expect_tcp_close(conn, "health check close")
    finally:
        conn.close()


# =============================================================================================
# Main


def start_bounded(broker, timeout):
    """Broker.start, bounded: it reads the listening lines with a blocking readline, which
    would wait for ever on a broker that prints only some of them (say, no wss line)."""
    err = []

    def go():
        try:
            broker.start()
        except Exception as e:  # noqa: BLE001 - handed to the caller below
            err.append(e)
    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        if broker.proc is not None:
            broker.proc.kill()  # readline then sees EOF and start() gives up
        t.join(5.0)
        raise CaseFailure("the broker did not print all its listening lines within %.0f s "
                          "(TLS wanted: %s); stderr: %s"
                          % (timeout, TLS, "".join(broker.stderr_lines).strip()))
    if err:
        raise err[0]


class Suite:
    def __init__(self):
        self.brokers = {}
        self.start = time.monotonic()

    def run_case(self, case):
        if time.monotonic() - self.start > SUITE_BUDGET:
            raise CaseFailure("not run: the suite passed its time budget of %.0f s"
                              % SUITE_BUDGET)
        broker = self.brokers.get(case.broker)
        if broker is None:
            raise CaseFailure("not run: the %s broker did not start" % case.broker)
        if broker.proc.poll() is not None:
            raise CaseFailure("not run: the broker exited with status %r"
                              % broker.proc.returncode)
        conn = Conn(broker)
        try:
            play(conn, case)
        except CaseFailure as e:
            conn.close()
            try:
                health_check(broker)
            except (CaseFailure, OSError) as h:
                raise CaseFailure("%s [and the broker is unhealthy afterwards: %s]" % (e, h))
            raise
        finally:
            conn.close()
        health_check(broker)


def main():
    wanted = sys.argv[1:]
    cases = cc.all_cases()
    if wanted:
        cases = [c for c in cases if any(c.cid == w or c.cid.startswith(w + ".")
                                         for w in wanted)]
    runner = Runner()
    suite = Suite()
    tmpdir = tempfile.mkdtemp(prefix="ringcast-conformance-")
    try:
        tls_args = []
        if TLS:
            runner.run("make a throwaway TLS certificate",
                       lambda: tls_args.extend(tls_broker_args(tmpdir)))
        for name, args in [("main", MAIN_ARGS), ("small", SMALL_ARGS)]:
            if not any(c.broker == name for c in cases) or (TLS and not tls_args):
                continue
            b = Broker(*(args + tls_args))

            def start(b=b, name=name):
                start_bounded(b, BROKER_START_TIMEOUT)
                suite.brokers[name] = b
            runner.run("start the %s broker (%s)" % (name, " ".join(args + tls_args)), start)
        print("%d cases over %s" % (len(cases), "TLS (wss)" if TLS else "plain TCP (ws)"),
              flush=True)
        for case in cases:
            runner.run(case.name, suite.run_case, case)
        for name, b in suite.brokers.items():
            # Broker.__exit__ stops it with SIGTERM and raises unless it exited 0.
            runner.run("the %s broker exits 0 on SIGTERM" % name, b.__exit__, None, None, None)
    finally:
        for b in suite.brokers.values():
            b.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)
    print("run time %.1f s" % (time.monotonic() - suite.start), flush=True)
    runner.finish()


if __name__ == "__main__":
    main()

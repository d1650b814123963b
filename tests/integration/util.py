# SPDX-License-Identifier: MIT
"""Helpers for the integration tests, on top of harness.py: a raw HTTP request sender, a small
raw WebSocket client (for what a library client will not do: not reading, not answering pings,
sending broken frames, resetting mid-message), the broker's resident memory and its count of
open connections read from /proc, a few wait helpers, and settle() to make a room's members
known on every shard before a case publishes into it.

Nothing here starts the broker: harness.Broker does that.
"""
import asyncio
import base64
import errno
import hashlib
import os
import socket
import struct
import time

import websockets

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

# TCP states in /proc/net/tcp (include/net/tcp_states.h).
TCP_ESTABLISHED, TCP_SYN_RECV, TCP_CLOSE_WAIT, TCP_LISTEN = 0x01, 0x03, 0x08, 0x0A


# ---------------------------------------------------------------------------------------------
# Small things


def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def ws_accept(key):
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def wait_for(pred, timeout, interval=0.05):
    """Calls <pred> until it returns a true value or <timeout> seconds pass; returns the last
    value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def run_async(coro, timeout):
    """Runs <coro> on a fresh event loop, bounded by <timeout> seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def ws_connect(url, **kw):
    """websockets.connect with test-friendly defaults: no compression offer, no keepalive
    pings of its own, no message size limit, short timeouts."""
    kw.setdefault("compression", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_size", None)
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 3)
    kw.setdefault("max_queue", None)
    return websockets.connect(url, **kw)


async def ws_recv(ws, timeout=5.0):
    return await asyncio.wait_for(ws.recv(), timeout)


async def ws_expect_silence(ws, seconds):
    """Fails if <ws> receives a message within <seconds>."""
    try:
        m = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError("expected no message, got %r" % (m[:80],))


async def ws_wait_closed(ws, timeout=5.0):
    """Waits for the broker to close <ws>; returns the close code received (None if the TCP
    connection ended without a close frame)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("connection still open after %.1fs" % timeout)
        try:
            await asyncio.wait_for(ws.recv(), left)
        except websockets.exceptions.ConnectionClosed as e:
            return e.rcvd.code if e.rcvd is not None else None
        except asyncio.TimeoutError:
            raise AssertionError("connection still open after %.1fs" % timeout)


def rss_bytes(pid):
    """Resident set size of process <pid> in bytes, from /proc/PID/status (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for pid %d" % pid)


def tcp_conns(port, states=(TCP_ESTABLISHED, TCP_CLOSE_WAIT), local_ip="127.0.0.1"):
    """Counts TCP sockets on this host whose local address is <local_ip>:<port> (the broker's
    side of its connections) and whose state is one of <states>. ESTABLISHED and CLOSE_WAIT
    together are what the broker still holds (CLOSE_WAIT: the peer has gone and the broker has
    not closed); connections still in the accept queue count too. Listeners do not."""
    n = 0
    want = set(states)
    ip_hex = "%08X" % int.from_bytes(socket.inet_aton(local_ip), "little")
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            f = open(path)
        except OSError:
            continue
        with f:
            next(f, None)
            for line in f:
                parts = line.split(None, 4)
                if len(parts) < 4:
                    continue
                lip, _, lport = parts[1].rpartition(":")
                if int(lport, 16) == port and int(parts[3], 16) in want and \
                        (lip == ip_hex or lip.endswith("FFFF0000" + ip_hex)):
                    n += 1
    return n


def wait_conns(port, target, timeout=10.0):
    """Waits until the broker holds at most <target> connections (see tcp_conns); returns the
    count then."""
    wait_for(lambda: tcp_conns(port) <= target, timeout, interval=0.1)
    return tcp_conns(port)


def connect(port, host="127.0.0.1", source=None, rcvbuf=None, timeout=5.0):
    """A blocking TCP socket to <host>:<port>, from source address <source> (any port)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source:
        s.setsockopt(socket.IPPROTO_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT
        s.bind((source, 0))
    s.settimeout(timeout)
    s.connect((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def rst_close(s):
    """Closes <s> with a TCP RST (SO_LINGER on, 0 seconds)."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


# ---------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, reason, headers, body, closed, raw):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case name -> list of values
        self.body = body
        self.closed = closed    # True when the broker closed the connection after it
        self.raw = raw

    def header(self, name, default=None):
        v = self.headers.get(name.lower())
        return v[0] if v else default

    def __repr__(self):
        return "<Response %s %r headers=%r body=%r closed=%r>" % (
            self.status, self.reason, self.headers, self.body[:200], self.closed)


def upgrade_request(path, key=None, version="13", host="127.0.0.1", origin=None, extra=None,
                    omit=()):
    """The bytes of a WebSocket upgrade request for <path> (a str; characters up to U+00FF
    become single bytes). <omit> names headers to leave out (lower case); <extra> is a list of
    (name, value) added at the end."""
    hdrs = [("Host", host), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key if key is not None else ws_key()),
            ("Sec-WebSocket-Version", version)]
    if origin is not None:
        hdrs.append(("Origin", origin))
    hdrs = [(k, v) for k, v in hdrs if k.lower() not in omit]
    hdrs += list(extra or [])
    head = "GET %s HTTP/1.1\r\n" % path + "".join("%s: %s\r\n" % kv for kv in hdrs) + "\r\n"
    return head.encode("latin-1")


def parse_head(data):
    """Parses an HTTP response head (bytes up to and including the blank line)."""
    lines = data.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
        raise AssertionError("not an HTTP response: %r" % data[:200])
    status = int(status_line[1])
    reason = status_line[2] if len(status_line) > 2 else ""
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return status, reason, headers


def _recv_some(s, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("timed out")
    s.settimeout(left)
    try:
        return s.recv(65536)
    except ConnectionResetError:
        return b""


def read_response(s, timeout=5.0, want_close=True, close_wait=2.0, buf=b""):
    """Reads one HTTP response from <s>. With <want_close>, then waits up to <close_wait>
    seconds to see whether the broker closes the connection. Returns a Response."""
    deadline = time.monotonic() + timeout
    data = bytearray(buf)
    while b"\r\n\r\n" not in data:
        chunk = _recv_some(s, deadline)
        if not chunk:
            if not data:
                raise AssertionError("connection closed with no response")
            raise AssertionError("connection closed inside the response head: %r" % bytes(data))
        data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    status, reason, headers = parse_head(head + b"\r\n\r\n")
    body = bytearray(rest)
    closed = False
    if status == 101:
        return Response(status, reason, headers, bytes(body), False, bytes(data))
    clen = headers.get("content-length")
    if status in (204, 304):
        clen = ["0"]  # RFC 9112 §6.3: no body, whatever Content-Length says
    if clen is not None:
        n = int(clen[0])
        while len(body) < n:
            chunk = _recv_some(s, deadline)
            if not chunk:
                closed = True
                break
            body += chunk
    else:
        while True:
            try:
                chunk = _recv_some(s, deadline)
            except socket.timeout:
                break
            if not chunk:
                closed = True
                break
            body += chunk
    if want_close and not closed:
        end = time.monotonic() + close_wait
        while True:
            try:
                chunk = _recv_some(s, end)
            except (socket.timeout, BlockingIOError):
                break
            if not chunk:
                closed = True
                break
            body += chunk  # extra bytes after the response: kept so a test can see them
    return Response(status, reason, headers, bytes(body), closed, bytes(data))


def http_request(port, data, timeout=5.0, source=None, want_close=True, close_wait=2.0):
    """Sends <data> (bytes) on a new connection to the broker and returns its Response."""
    s = connect(port, source=source, timeout=timeout)
    try:
        s.sendall(data)
        return read_response(s, timeout, want_close, close_wait)
    finally:
        rst_close(s)


def http_get(port, path, headers=None, **kw):
    req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % path
    req += "".join("%s: %s\r\n" % kv for kv in (headers or []))
    return http_request(port, (req + "\r\n").encode("latin-1"), **kw)


def read_responses(s, n, timeout=5.0, head_only=(), buf=b""):
    """Reads <n> responses that follow each other on a keep-alive connection <s> (pipelined
    answers, in order). Each is framed by its Content-Length, except that those whose index is
    in <head_only> (answers to HEAD) have no body whatever Content-Length says. Returns
    (list of Response, the bytes received after the last one). Raises AssertionError when the
    connection ends first, and socket.timeout after <timeout> seconds."""
    deadline = time.monotonic() + timeout
    data = bytearray(buf)
    out = []
    for i in range(n):
        while b"\r\n\r\n" not in data:
            chunk = _recv_some(s, deadline)
            if not chunk:
                raise AssertionError("connection ended after %d of %d responses: %r" %
                                     (i, n, bytes(data[:200])))
            data += chunk
        head, _, rest = bytes(data).partition(b"\r\n\r\n")
        status, reason, headers = parse_head(head + b"\r\n\r\n")
        clen = headers.get("content-length")
        if clen is None:
            raise AssertionError("response %d of %d has no Content-Length: %r" % (i, n, head))
        want = 0 if i in head_only or status in (204, 304) else int(clen[0])
        data = bytearray(rest)
        while len(data) < want:
            chunk = _recv_some(s, deadline)
            if not chunk:
                raise AssertionError("connection ended inside response %d of %d: %r" %
                                     (i, n, bytes(data[:200])))
            data += chunk
        body = bytes(data[:want])
        del data[:want]
        out.append(Response(status, reason, headers, body, False, head + b"\r\n\r\n" + body))
    return out, bytes(data)


def wait_peer_end(s, timeout):
    """Waits up to <timeout> seconds for the peer to end the connection on <s>. Returns
    (how, data, seconds): how is "eof", "reset" or "open" (still open when the time was up),
    data what arrived meanwhile, seconds how long it took."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    data = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "open", bytes(data), time.monotonic() - t0
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EPIPE):
                return "reset", bytes(data), time.monotonic() - t0
            raise
        if not chunk:
            return "eof", bytes(data), time.monotonic() - t0
        data += chunk


def check_refusal(r, status):
    """Asserts that <r> has status <status> (an int or a tuple of allowed ints) and a one-line
    reason body, as the contract asks of every refusal."""
    allowed = status if isinstance(status, tuple) else (status,)
    if r.status not in allowed:
        raise AssertionError("expected %s, got %r" % (allowed, r))
    body = r.body.decode("utf-8", "replace")
    text = body[:-1] if body.endswith("\n") else body
    text = text[:-1] if text.endswith("\r") else text
    if not text.strip() or "\n" in text:
        raise AssertionError("refusal body is not one line of reason: %r" % r.body)
    clen = r.header("content-length")
    if clen is not None and int(clen) != len(r.body):
        raise AssertionError("content-length %s but body of %d bytes" % (clen, len(r.body)))


# ---------------------------------------------------------------------------------------------
# A raw WebSocket client


class WSClosed(Exception):
    """The broker sent a close frame (code is None when it carried no code)."""

    def __init__(self, code, reason=b""):
        super().__init__("closed by the broker with %r %r" % (code, reason))
        self.code = code
        self.reason = reason


class ConnEnded(Exception):
    """The TCP connection ended (EOF or reset) without a close frame."""


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "payload")

    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def close_code(self):
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    def __repr__(self):
        return "<Frame op=%d fin=%d len=%d %r>" % (self.opcode, self.fin, len(self.payload),
                                                   self.payload[:40])


def encode_frame(opcode, payload, fin=True, mask=True, rsv=0, mask_key=None):
    payload = bytes(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + mask_bytes(payload, key)


def mask_bytes(data, key):
    if not data:
        return b""
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def parse_frame(buf):
    """Parses one (unmasked, server-to-client) frame at the start of <buf>. Returns (Frame,
    consumed bytes) or (None, 0) when more bytes are needed."""
    if len(buf) < 2:
        return None, 0
    b0, b1 = buf[0], buf[1]
    n = b1 & 0x7F
    off = 2
    if n == 126:
        if len(buf) < 4:
            return None, 0
        n = struct.unpack_from("!H", buf, 2)[0]
        off = 4
    elif n == 127:
        if len(buf) < 10:
            return None, 0
        n = struct.unpack_from("!Q", buf, 2)[0]
        off = 10
    key = None
    if b1 & 0x80:
        if len(buf) < off + 4:
            return None, 0
        key = bytes(buf[off:off + 4])
        off += 4
    if len(buf) < off + n:
        return None, 0
    payload = bytes(buf[off:off + n])
    if key:
        payload = mask_bytes(payload, key)
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload), off + n


class RawWS:
    """A blocking WebSocket client on a plain socket. Every read takes a timeout."""

    def __init__(self, port, path="/echo", source=None, rcvbuf=None, timeout=5.0,
                 origin=None, extra=None, handshake=True):
        self.port = port
        self.path = path
        self.timeout = timeout
        self.sock = connect(port, source=source, rcvbuf=rcvbuf, timeout=timeout)
        self.buf = bytearray()
        self.response = None
        if handshake:
            self.handshake(origin=origin, extra=extra)

    def handshake(self, origin=None, extra=None):
        key = ws_key()
        self.sock.sendall(upgrade_request(self.path, key=key, origin=origin, extra=extra))
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buf:
            chunk = _recv_some(self.sock, deadline)
            if not chunk:
                raise AssertionError("connection closed during the handshake: %r" %
                                     bytes(self.buf))
            self.buf += chunk
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        status, reason, headers = parse_head(head + b"\r\n\r\n")
        self.response = (status, reason, headers)
        if status != 101:
            raise AssertionError("upgrade of %s refused: %d %s %r" % (self.path, status, reason,
                                                                      rest[:200]))
        got = headers.get("sec-websocket-accept", [None])[0]
        if got != ws_accept(key):
            raise AssertionError("bad Sec-WebSocket-Accept %r (want %r)" % (got, ws_accept(key)))
        self.buf = bytearray(rest)
        return self

    # sending

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0):
        self.sock.sendall(encode_frame(opcode, payload, fin=fin, mask=mask, rsv=rsv))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def ping(self, payload=b""):
        self.send_frame(OP_PING, payload)

    def close(self, code=1000, reason=b""):
        payload = b"" if code is None else struct.pack("!H", code) + reason
        self.send_frame(OP_CLOSE, payload)

    # receiving

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError:
            raise ConnEnded("connection reset") from None
        if not chunk:
            raise ConnEnded("connection closed (EOF)")
        self.buf += chunk

    def recv_frame(self, timeout=None):
        """Next frame; raises socket.timeout, or ConnEnded at EOF/reset."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            f, n = parse_frame(self.buf)
            if f is not None:
                del self.buf[:n]
                return f
            self._fill(deadline)

    def recv_message(self, timeout=None, auto_pong=True):
        """Next data message as (opcode, payload), reassembling fragments and answering pings
        (unless not <auto_pong>). Raises WSClosed on a close frame."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        parts, op = [], None
        while True:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if f.opcode == OP_PING:
                if auto_pong:
                    self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_CLOSE:
                raise WSClosed(f.close_code(), f.payload[2:])
            if f.opcode == OP_CONT:
                if op is None:
                    raise AssertionError("continuation frame with no message started")
            else:
                if op is not None:
                    raise AssertionError("new data frame inside a fragmented message")
                op = f.opcode
            parts.append(f.payload)
            if f.fin:
                return op, b"".join(parts)

    def expect_close(self, timeout=None):
        """Reads until the broker's close frame and returns its code; skips data frames.
        Raises AssertionError if the connection ends without one or stays open."""
        try:
            while True:
                self.recv_message(timeout)
        except WSClosed as e:
            return e.code
        except ConnEnded as e:
            raise AssertionError("connection ended without a close frame (%s)" % e) from None
        except socket.timeout:
            raise AssertionError("no close frame within %ss" % (timeout or self.timeout)) \
                from None

    def read_until_end(self, timeout):
        """Reads frames until the connection ends or <timeout> passes. Returns (frames, how),
        how being 'eof', 'reset' or 'timeout'. Answers a close frame with a close frame, as
        RFC 6455 section 5.5.1 asks, so a broker that waits for the answer can finish."""
        frames = []
        deadline = time.monotonic() + timeout
        answered = False
        while True:
            try:
                f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            except socket.timeout:
                return frames, "timeout"
            except ConnEnded as e:
                return frames, "reset" if "reset" in str(e) else "eof"
            frames.append(f)
            if f.opcode == OP_CLOSE and not answered:
                answered = True
                try:
                    self.close(f.close_code() or 1000)
                except OSError:
                    pass

    def is_closed_by_peer(self, timeout):
        """True if the connection ends (EOF, reset or a close frame) within <timeout>."""
        try:
            frames, how = self.read_until_end(timeout)
        except OSError:
            return True
        return how != "timeout" or any(f.opcode == OP_CLOSE for f in frames)

    def rst(self):
        rst_close(self.sock)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def fileno(self):
        return self.sock.fileno()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        rst_close(self.sock)


def assert_conn_ends(sock, timeout):
    """Asserts that the peer ends the TCP connection on <sock> (EOF or reset) within <timeout>
    seconds, discarding anything it sends first. Returns the bytes received."""
    deadline = time.monotonic() + timeout
    got = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("connection still open after %.1fs (got %r)" %
                                 (timeout, bytes(got[:200])))
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EPIPE):
                return bytes(got)
            raise
        if not chunk:
            return bytes(got)
        got += chunk


# ---------------------------------------------------------------------------------------------
# Rooms: settling before a publish

PROBE = "__settle__"


async def rx(ws, timeout=5.0):
    """Next message on <ws> that is not a settle probe."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        m = await asyncio.wait_for(ws.recv(), max(0.0, deadline - loop.time()))
        if m != PROBE:
            return m


def _raw_wait_probe(r, timeout):
    while True:
        op, data = r.recv_message(timeout)
        if data == PROBE.encode():
            return
        raise AssertionError("raw member got %r before the probe" % data[:60])


async def settle(url, room, members, raw=()):
    """A new member's join reaches the room's home shard through a cross-shard queue, so a
    message published at once from another shard may legitimately miss it. Before a case
    publishes, a plain probe connection to <url> (the broker's ws:// base URL) publishes probes
    into <room> until every one of <members> (websockets clients) and <raw> (RawWS clients) has
    received one: from then on their joins are known everywhere. Later probes are skipped by
    rx()."""
    p = await ws_connect(url + room)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def pump():
        while not done.is_set():
            await p.send(PROBE)
            await asyncio.sleep(0.05)

    async def wait_one(m):
        got = await asyncio.wait_for(m.recv(), 10)
        if got != PROBE:
            raise AssertionError("member got %r before the probe" % (got[:60],))

    t = asyncio.ensure_future(pump())
    try:
        await asyncio.wait_for(asyncio.gather(
            *(wait_one(m) for m in members),
            *(loop.run_in_executor(None, _raw_wait_probe, r, 10) for r in raw)), 12)
    except asyncio.TimeoutError:
        raise AssertionError("room %s: not every member got a probe within 10s" % room) \
            from None
    finally:
        done.set()
        await t
        await p.close()

# SPDX-License-Identifier: MIT
"""wss:// against the real broker, with independent clients: Python `websockets` and the `ssl`
module, and the `openssl s_client` command line.

Certificates come from tools/gen-certs.sh, written into a temporary directory that is removed
at the end (keys are never committed). Every client verifies the broker's certificate (the
generated self-signed one is the trust anchor, server name "localhost").

For each of ECDSA and RSA certificates, with --tls-offload on and off (the behaviour must be the
same), one broker and these cases: echo of text, binary and 64 KiB messages; a room with a wss
member and a plain ws member hearing each other (raw rooms and TLS share one namespace); 1,000
messages in order; close 1000 echoed and a protocol error answered with 1002; TLS 1.1 refused
with a protocol_version alert; CBC-only cipher lists refused; ALPN "h2" alone refused and
"http/1.1" accepted; plain HTTP bytes sent to the TLS port closed promptly; close_notify
answered; session resumption; the plain listener working alongside; SIGTERM draining wss
clients with close 1001. Once: a truncated ClientHello closed by --handshake-timeout; SIGHUP
reloading the certificate for new connections while an old connection keeps working; a
failed reload keeping the current certificate; a bad --tls-cert path or mismatched key refused
at start with one line on stderr.

Prints one ok/FAIL line per case and "N passed, N failed"; exits non-zero on failure.
"""
import asyncio
import hashlib
import json
import os
import shutil
import signal
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
from util import (OP_BINARY, OP_TEXT, RawWS, assert_conn_ends, http_get,  # noqa: E402
                  run_async, rx, settle, ws_connect, ws_recv, ws_wait_closed)

HANDSHAKE_TIMEOUT = 1        # --handshake-timeout for every broker here
OPENSSL_TIMEOUT = 10         # seconds for one `openssl s_client` run

# ---------------------------------------------------------------------------------------------
# Certificates and TLS clients


class Certs:
    def __init__(self, tmpdir):
        self.dir = tmpdir
        subprocess.run(["sh", os.path.join(harness.SRC, "tools", "gen-certs.sh"), tmpdir],
                       check=True, capture_output=True, timeout=60)
        for name in ("ec", "ec2", "rsa"):
            for ext in ("crt", "key"):
                p = os.path.join(tmpdir, "%s.%s" % (name, ext))
                if not os.path.exists(p):
                    raise AssertionError("gen-certs.sh did not write %s" % p)

    def crt(self, name):
        return os.path.join(self.dir, name + ".crt")

    def key(self, name):
        return os.path.join(self.dir, name + ".key")

    def der(self, name):
        with open(self.crt(name)) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def fingerprint(self, name):
        return hashlib.sha256(self.der(name)).hexdigest()


def client_ctx(cafile, alpn=None):
    """A client context that verifies the broker's certificate against <cafile>."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    ctx.load_verify_locations(cafile)
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_socket(port, ctx, session=None, timeout=5.0):
    """A blocking TLS socket to the broker's TLS port, handshake done."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        return ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    except BaseException:
        raw.close()
        raise


def peer_fingerprint(sslobj):
    return hashlib.sha256(sslobj.getpeercert(binary_form=True)).hexdigest()


class TlsWS(RawWS):
    """util.RawWS (a blocking WebSocket client with bounded reads) on a TLS socket."""

    def __init__(self, sock, path="/echo", timeout=5.0, handshake=True):  # noqa: D107
        self.port = None
        self.path = path
        self.timeout = timeout
        self.sock = sock
        self.buf = bytearray()
        self.response = None
        if handshake:
            self.handshake()


def openssl_client(port, *args):
    """Runs `openssl s_client -connect 127.0.0.1:PORT ARGS` with stdin from /dev/null and a
    timeout; returns (exit status, stdout + stderr)."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
           "-servername", "localhost"] + list(args)
    with open(os.devnull, "rb") as devnull:
        try:
            p = subprocess.run(cmd, stdin=devnull, capture_output=True, text=True,
                               timeout=OPENSSL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s: no answer within %ds" % (" ".join(cmd), OPENSSL_TIMEOUT)) \
                from None
    return p.returncode, p.stdout + p.stderr


def wss_connect(port, path, cafile, **kw):
    return ws_connect("wss://127.0.0.1:%d%s" % (port, path), ssl=client_ctx(cafile),
                      server_hostname="localhost", **kw)


# ---------------------------------------------------------------------------------------------
# A broker with a TLS listener


class Setup:
    """One broker: <cert> is "ec" or "rsa", <offload> "on" or "off"."""

    def __init__(self, certs, cert, offload):
        self.certs = certs
        self.cert = cert
        self.offload = offload
        self.name = "%s, offload %s" % ("ECDSA" if cert == "ec" else "RSA", offload)
        self.b = None

    def start(self):
        self.b = Broker("--shards", "2", "--handshake-timeout", str(HANDSHAKE_TIMEOUT),
                        "--tls-listen", "127.0.0.1:0",
                        "--tls-cert", self.certs.crt(self.cert),
                        "--tls-key", self.certs.key(self.cert),
                        "--tls-offload", self.offload).start()
        if not self.b.tls_port:
            raise AssertionError("no wss:// listening line")

    @property
    def cafile(self):
        return self.certs.crt(self.cert)

    def wss(self, path, **kw):
        return wss_connect(self.b.tls_port, path, self.cafile, **kw)

    def ws(self, path, **kw):
        return ws_connect(self.b.url + path, **kw)

    def sock(self, **kw):
        return tls_socket(self.b.tls_port, client_ctx(self.cafile), **kw)


# ---------------------------------------------------------------------------------------------
# Cases on every broker


def case_echo(s):
    async def go():
        async with s.wss("/echo") as ws:
            sslobj = ws.transport.get_extra_info("ssl_object")
            assert sslobj.version() == "TLSv1.2", "negotiated %s" % sslobj.version()
            assert peer_fingerprint(sslobj) == s.certs.fingerprint(s.cert), \
                "the broker presented a certificate other than --tls-cert"
            cases = ["hello", "héllo wörld ✓ 𝄞", "", b"\x00\x01\xfe\xff", b"",
                     os.urandom(1000), "t" * 65536, os.urandom(65536)]
            for m in cases:
                await ws.send(m)
                got = await ws_recv(ws)
                assert type(got) is type(m), \
                    "sent %s of %d, got %s back" % (type(m).__name__, len(m),
                                                    type(got).__name__)
                assert got == m, "sent %d %s, got %d different back" % (
                    len(m), type(m).__name__, len(got))
    run_async(go(), 20)


def case_room_mixed(s):
    async def go():
        room = "/room/tls-mixed-" + s.cert + s.offload
        t = await s.wss(room)
        p = await s.ws(room)
        try:
            await settle(s.b.url, room, [t, p])
            await t.send("from wss")
            got = await rx(p)
            assert got == "from wss", "plain member got %r, want 'from wss'" % (got,)
            await p.send("from ws")
            got = await rx(t)
            assert got == "from ws", "wss member got %r, want 'from ws'" % (got,)
            blob = os.urandom(40000)
            await p.send(blob)
            got = await rx(t)
            assert got == blob, "wss member got %d bytes (%s), want the 40000 sent" % (
                len(got), type(got).__name__)
            blob = os.urandom(65536)
            await t.send(blob)
            got = await rx(p)
            assert got == blob, "plain member got %d bytes (%s), want the 65536 sent" % (
                len(got), type(got).__name__)
        finally:
            await asyncio.gather(t.close(), p.close(), return_exceptions=True)
    run_async(go(), 30)


def case_order(s):
    n = 1000

    async def go():
        # Echo over wss: 1,000 messages sent back to back come back in order.
        async with s.wss("/echo") as ws:
            for i in range(n):
                await ws.send("e%d" % i)
            for i in range(n):
                got = await ws_recv(ws, 10)
                assert got == "e%d" % i, "echo: message %d came back as %r" % (i, got[:40])
        # A wss publisher into a room with a wss member and a plain member.
        room = "/room/tls-order-" + s.cert + s.offload
        pub = await s.wss(room)
        mt = await s.wss(room)
        mp = await s.ws(room)
        try:
            await settle(s.b.url, room, [pub, mt, mp])

            async def check(m, who):
                for i in range(n):
                    try:
                        got = await rx(m, 10)
                    except asyncio.TimeoutError:
                        raise AssertionError("%s member stalled after %d of %d" %
                                             (who, i, n)) from None
                    assert got == "m%d" % i, "%s member: message %d arrived as %r" % (
                        who, i, got[:40])

            checks = [asyncio.ensure_future(check(mt, "wss")),
                      asyncio.ensure_future(check(mp, "plain"))]
            for i in range(n):
                await pub.send("m%d" % i)
            await asyncio.gather(*checks)
        finally:
            await asyncio.gather(pub.close(), mt.close(), mp.close(), return_exceptions=True)
    run_async(go(), 40)


def case_close_codes(s):
    async def go():
        ws = await s.wss("/echo")
        await ws.send("x")
        await ws_recv(ws)
        await asyncio.wait_for(ws.close(1000, "bye"), 5)
        assert ws.close_rcvd is not None, "no close frame came back for close 1000"
        assert ws.close_rcvd.code == 1000, "close 1000 answered with %d" % ws.close_rcvd.code
    run_async(go(), 10)
    # Protocol error over TLS: an unknown opcode (0x3) gets close 1002.
    with TlsWS(s.sock(), "/echo") as c:
        c.send_frame(0x3, b"bad")
        code = c.expect_close(5)
        assert code == 1002, "reserved opcode 0x3: close %r, want 1002" % (code,)
    # A reserved bit set without an extension: 1002 too.
    with TlsWS(s.sock(), "/echo") as c:
        c.send_frame(OP_TEXT, b"rsv1", rsv=4)
        code = c.expect_close(5)
        assert code == 1002, "RSV1 set: close %r, want 1002" % (code,)


def case_tls11_refused(s):
    # SECLEVEL=0 so that OpenSSL 3 really offers TLS 1.1 rather than refusing on its own side.
    rc, out = openssl_client(s.b.tls_port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-brief")
    assert rc != 0, "TLS 1.1 was accepted:\n" + out
    assert "CONNECTION ESTABLISHED" not in out, "TLS 1.1 was accepted:\n" + out
    assert "alert protocol version" in out, \
        "TLS 1.1: want a protocol_version alert (70) from the broker, got:\n" + out


def case_cbc_refused(s):
    rc, out = openssl_client(s.b.tls_port, "-tls1_2", "-cipher",
                             "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA", "-brief")
    assert rc != 0, "a CBC-only ClientHello was accepted:\n" + out
    assert "CONNECTION ESTABLISHED" not in out, "a CBC-only ClientHello was accepted:\n" + out
    assert "handshake failure" in out or "no shared cipher" in out, \
        "CBC only: want a handshake_failure alert, got:\n" + out
    # And the same openssl, left to its defaults at TLS 1.2, gets an AEAD suite.
    rc, out = openssl_client(s.b.tls_port, "-tls1_2", "-brief", "-CAfile", s.cafile)
    assert rc == 0 and "CONNECTION ESTABLISHED" in out, "openssl -tls1_2 refused:\n" + out
    suite = [ln for ln in out.splitlines() if ln.startswith("Ciphersuite:")]
    assert suite and ("GCM" in suite[0] or "CHACHA20" in suite[0]), \
        "default suite not an AEAD: %r" % (suite,)


def case_alpn(s):
    try:
        sock = tls_socket(s.b.tls_port, client_ctx(s.cafile, alpn=["h2"]))
    except ssl.SSLError as e:
        assert "APPLICATION" in str(e).upper() and "PROTOCOL" in str(e).upper(), \
            "ALPN h2 only: refused, but not with no_application_protocol: %r" % (e,)
    else:
        proto = sock.selected_alpn_protocol()
        sock.close()
        raise AssertionError("ALPN h2 only: handshake accepted (selected %r)" % (proto,))
    for offer in (["http/1.1"], ["h2", "http/1.1"]):
        sock = tls_socket(s.b.tls_port, client_ctx(s.cafile, alpn=offer))
        with TlsWS(sock, "/echo") as c:
            got = sock.selected_alpn_protocol()
            assert got == "http/1.1", "ALPN %r: selected %r" % (offer, got)
            c.send_text("alpn")
            op, data = c.recv_message(5)
            assert (op, data) == (OP_TEXT, b"alpn"), "echo after ALPN: %r" % ((op, data),)
    # No ALPN at all is fine too (websockets offers none): covered by the echo case.


def case_garbage(s):
    sock = socket.create_connection(("127.0.0.1", s.b.tls_port), timeout=5)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        t0 = time.monotonic()
        got = assert_conn_ends(sock, 2.0)
        dt = time.monotonic() - t0
        assert b"HTTP/" not in got, "the TLS port answered plain HTTP: %r" % got[:100]
        assert dt < 2.0, "closed after %.2fs" % dt
    finally:
        sock.close()


def case_close_notify(s):
    sock = s.sock()
    raw = socket.socket(fileno=os.dup(sock.fileno()))  # to watch the TCP connection after
    raw.settimeout(5)
    try:
        c = TlsWS(sock, "/echo")
        c.send_text("before close_notify")
        op, data = c.recv_message(5)
        assert data == b"before close_notify", "echo: %r" % data
        sock.settimeout(3)
        t0 = time.monotonic()
        try:
            sock.unwrap()  # sends close_notify, then waits for the broker's
            answered = True
            why = ""
        except (ssl.SSLError, OSError) as e:
            answered = False
            why = repr(e)
        # Either way the broker must end the TCP connection promptly.
        assert_conn_ends(raw, 3.0)
        dt = time.monotonic() - t0
        assert dt < 3.0, "connection still open %.2fs after close_notify" % dt
        if not answered:
            print("  note: the broker closed the TCP connection without a close_notify of "
                  "its own (%s)" % why, flush=True)
    finally:
        raw.close()
        sock.close()


class BioTLS:
    """A TLS client on a raw socket through memory BIOs, so that the test decides which TLS
    records leave together in one TCP write."""

    def __init__(self, port, cafile, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_ctx(cafile).wrap_bio(self.inc, self.out, server_hostname="localhost")
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.out.read())
                self._pull()
        self.sock.sendall(self.out.read())

    def _pull(self):
        data = self.sock.recv(65536)
        if not data:
            raise AssertionError("connection closed during the TLS handshake")
        self.inc.write(data)

    def seal(self, data):
        """The TLS records carrying <data>, not sent."""
        self.obj.write(data)
        return self.out.read()

    def close_notify(self):
        """Our close_notify record, not sent."""
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        return self.out.read()

    def read_until(self, marker):
        buf = bytearray()
        while marker not in buf:
            try:
                buf += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._pull()
        return bytes(buf)


def tls_record_types(data):
    """The content types of the TLS records in <data> (20 change_cipher_spec, 21 alert, 22
    handshake, 23 application data), in order; a partial last record is ignored."""
    types, i = [], 0
    while i + 5 <= len(data):
        types.append(data[i])
        i += 5 + int.from_bytes(data[i + 3:i + 5], "big")
    return types


def case_close_notify_with_frames_queued(s):
    """A message and close_notify in one TCP segment: the echo is queued when close_notify is
    read. TLS 1.2 (RFC 5246 7.2.1) says to answer close_notify with ours and drop pending
    writes; the queued frame must not take our close_notify down with it."""
    t = BioTLS(s.b.tls_port, s.cafile)
    try:
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        t.sock.sendall(t.seal(("GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                               "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode()))
        head = t.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), "upgrade: %r" % head[:80]
        mask = b"\x01\x02\x03\x04"
        payload = b"queued when close_notify arrives"
        frame = bytes([0x81, 0x80 | len(payload)]) + mask + \
            bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        t.sock.sendall(t.seal(frame) + t.close_notify())
        got = assert_conn_ends(t.sock, 3.0)
        types = tls_record_types(got)
        assert 21 in types, "no alert (close_notify) from the broker; records %r" % types
    finally:
        t.sock.close()


def case_resumption(s):
    ctx = client_ctx(s.cafile)
    s1 = tls_socket(s.b.tls_port, ctx)
    try:
        with TlsWS(s1, "/echo") as c:
            c.send_text("first")
            assert c.recv_message(5)[1] == b"first"
            sess = s1.session
            assert sess is not None, "no TLS session after the first handshake"
            assert not s1.session_reused, "the first connection says it was resumed"
    finally:
        s1.close()
    for i in range(2):
        s2 = tls_socket(s.b.tls_port, ctx, session=sess)
        try:
            assert s2.session_reused, \
                "connection %d offered the first one's session (ticket %s) but was not " \
                "resumed" % (i + 2, "present" if sess.has_ticket else "absent")
            assert peer_fingerprint(s2) == s.certs.fingerprint(s.cert)
            # The resumed session's keys carry the records (offloaded or not).
            with TlsWS(s2, "/echo") as c:
                big = os.urandom(50000)
                c.send_binary(big)
                op, data = c.recv_message(5)
                assert (op, data) == (OP_BINARY, big), \
                    "echo on a resumed session: %d bytes back" % len(data)
        finally:
            s2.close()


def case_plain_alongside(s):
    r = http_get(s.b.port, "/healthz")
    assert r.status == 200, "plain GET /healthz: %r" % r

    async def go():
        async with s.ws("/echo") as p, s.wss("/echo") as t:
            await p.send("plain")
            await t.send("tls")
            assert await ws_recv(p) == "plain"
            assert await ws_recv(t) == "tls"
    run_async(go(), 10)
    # A TLS ClientHello on the plain port is not HTTP: refused, not hung.
    sock = socket.create_connection(("127.0.0.1", s.b.port), timeout=5)
    ctx = client_ctx(s.cafile)
    try:
        try:
            ctx.wrap_socket(sock, server_hostname="localhost").close()
        except (ssl.SSLError, OSError):
            pass
        else:
            raise AssertionError("a TLS handshake succeeded on the plain port")
    finally:
        sock.close()


def case_drain(s):
    async def go():
        t1 = await s.wss("/echo")
        t2 = await s.wss("/room/tls-drain")
        p = await s.ws("/room/tls-drain")
        await t1.send("up")
        assert await ws_recv(t1) == "up"
        t0 = time.monotonic()
        s.b.signal(signal.SIGTERM)
        codes = await asyncio.gather(ws_wait_closed(t1, 5), ws_wait_closed(t2, 5),
                                     ws_wait_closed(p, 5))
        assert codes == [1001, 1001, 1001], \
            "SIGTERM: close codes (wss echo, wss room, plain room) %r, want 1001 each" % (codes,)
        return time.monotonic() - t0
    run_async(go(), 15)
    rc = s.b.wait(15)
    assert rc == 0, "exit status %r after SIGTERM; stderr:\n%s" % (rc, "".join(s.b.stderr_lines))


# ---------------------------------------------------------------------------------------------
# Cases once


def client_hello():
    """The bytes of a ClientHello from Python's ssl module."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    assert len(hello) > 100 and hello[0] == 0x16, "not a ClientHello: %r" % hello[:20]
    return hello


def case_truncated_hello(s):
    hello = client_hello()
    sock = socket.create_connection(("127.0.0.1", s.b.tls_port), timeout=5)
    try:
        sock.sendall(hello[:50])
        t0 = time.monotonic()
        # Half a record is not an error: the broker must wait for the rest ...
        sock.settimeout(0.5)
        try:
            early = sock.recv(4096)
        except socket.timeout:
            pass
        else:
            raise AssertionError("closed %.2fs after half a ClientHello (got %r), before "
                                 "--handshake-timeout %d" % (time.monotonic() - t0, early[:40],
                                                             HANDSHAKE_TIMEOUT))
        # ... until --handshake-timeout (plus up to a second of timer granularity).
        limit = HANDSHAKE_TIMEOUT + 2.5
        assert_conn_ends(sock, limit - (time.monotonic() - t0))
        dt = time.monotonic() - t0
        assert dt >= HANDSHAKE_TIMEOUT - 0.1, "closed after %.2fs" % dt
        print("  note: truncated ClientHello closed after %.2fs" % dt, flush=True)
    finally:
        sock.close()


def _wait_stderr(b, text, since, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in ln for ln in b.stderr_lines[since:]):
            return
        time.sleep(0.02)
    raise AssertionError("no %r on stderr within %.0fs; stderr:\n%s" %
                         (text, timeout, "".join(b.stderr_lines)))


def case_reload(certs, tmpdir):
    """SIGHUP with the files replaced: new connections get the new certificate at once (the
    first one after the broker logged the reload), the old connection keeps working; a reload
    from a broken file keeps the current certificate."""
    cur_crt = os.path.join(tmpdir, "live.crt")
    cur_key = os.path.join(tmpdir, "live.key")
    shutil.copyfile(certs.crt("ec"), cur_crt)
    shutil.copyfile(certs.key("ec"), cur_key)
    os.chmod(cur_key, 0o600)
    bundle = os.path.join(tmpdir, "both.crt")  # trust both: the client outlives the reload
    with open(bundle, "w") as f:
        for name in ("ec", "ec2"):
            with open(certs.crt(name)) as c:
                f.write(c.read())
    fp_old, fp_new = certs.fingerprint("ec"), certs.fingerprint("ec2")
    b = Broker("--shards", "2", "--tls-listen", "127.0.0.1:0", "--tls-cert", cur_crt,
               "--tls-key", cur_key).start()
    old = None
    problems = []  # reported together at the end, so that every step runs
    try:
        ctx = client_ctx(bundle)
        old = TlsWS(tls_socket(b.tls_port, ctx), "/echo")
        assert peer_fingerprint(old.sock) == fp_old, "the first connection did not get ec.crt"
        old.send_text("before")
        assert old.recv_message(5)[1] == b"before"

        shutil.copyfile(certs.crt("ec2"), cur_crt)
        shutil.copyfile(certs.key("ec2"), cur_key)
        since = len(b.stderr_lines)
        b.signal(signal.SIGHUP)
        _wait_stderr(b, "SIGHUP: reloaded", since)
        t_reload = time.monotonic()

        got = []
        for i in range(4):  # new connections, one after another, as soon as the log says so
            with TlsWS(tls_socket(b.tls_port, ctx), "/echo") as c:
                got.append((round(time.monotonic() - t_reload, 3), peer_fingerprint(c.sock)))
                c.send_text("new %d" % i)
                assert c.recv_message(5)[1] == ("new %d" % i).encode()
        stale = [t for t, fp in got if fp != fp_new]
        if stale:
            # Tell "late" from "never": the shards' loops turn at least once a second.
            time.sleep(1.2)
            later = []
            for i in range(4):
                with TlsWS(tls_socket(b.tls_port, ctx), "/echo") as c:
                    later.append(peer_fingerprint(c.sock) == fp_new)
            problems.append(
                "after SIGHUP (logged as reloaded), %d of %d new connections made at once "
                "still got the OLD certificate (at %s s after the log line); 1.2 s later %d "
                "of 4 new connections got the new one" % (len(stale), len(got), stale,
                                                          sum(later)))

        # The old connection still works, on its old certificate.
        old.send_text("after")
        assert old.recv_message(5)[1] == b"after", "the old connection broke after SIGHUP"
        assert peer_fingerprint(old.sock) == fp_old

        # A broken file: the reload fails, logged; the current certificate stays.
        with open(cur_crt, "w") as f:
            f.write("not a certificate\n")
        since = len(b.stderr_lines)
        b.signal(signal.SIGHUP)
        _wait_stderr(b, "SIGHUP:", since)
        said = [ln for ln in b.stderr_lines[since:] if "SIGHUP:" in ln]
        assert "reloaded" not in said[0], "a broken certificate file was 'reloaded': %r" % said
        time.sleep(1.2)  # let every shard take a (wrongly) swapped config, if any
        for i in range(2):
            with TlsWS(tls_socket(b.tls_port, ctx), "/echo") as c:
                assert peer_fingerprint(c.sock) == fp_new, \
                    "a failed reload changed the certificate"
                c.send_text("still")
                assert c.recv_message(5)[1] == b"still"
        old.send_text("still old")
        assert old.recv_message(5)[1] == b"still old"
    finally:
        if old is not None:
            old.rst()
        rc = b.stop()
    assert rc == 0, "exit %r; stderr:\n%s" % (rc, "".join(b.stderr_lines))
    assert not problems, "; ".join(problems)


def _tls_stats(b):
    r = http_get(b.port, "/stats")
    assert r.status == 200, "GET /stats: %r" % r
    st = json.loads(r.body)
    return st["tls_handshakes_active"], st["tls_handshakes_waiting"]


def _wait_tls_stats(b, want, timeout=3.0):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = _tls_stats(b)
        if got == want:
            return
        time.sleep(0.02)
    raise AssertionError("/stats TLS handshakes (active, waiting): %r, expected %r" % (got, want))


def case_handshake_limit(certs):
    """--tls-max-handshakes 2: two connections that never finish their handshake hold both
    turns; a third waits, unread, and its handshake completes as soon as one of them goes."""
    b = Broker("--shards", "1", "--handshake-timeout", "10", "--tls-max-handshakes", "2",
               "--tls-listen", "127.0.0.1:0", "--tls-cert", certs.crt("ec"),
               "--tls-key", certs.key("ec")).start()
    held, done, third = [], [], {}
    try:
        # Half a ClientHello each (whole bytes, or the listener's deferred accept would hold
        # them back): their handshakes have begun and cannot go on.
        hello = client_hello()
        for _ in range(2):
            held.append(socket.create_connection(("127.0.0.1", b.tls_port), timeout=5))
            held[-1].sendall(hello[:50])
        _wait_tls_stats(b, (2, 0))

        def handshake():
            try:
                third["sock"] = tls_socket(b.tls_port, client_ctx(certs.crt("ec")), timeout=8)
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                third["error"] = e
            done.append(time.monotonic())

        t = threading.Thread(target=handshake, daemon=True)
        t.start()
        _wait_tls_stats(b, (2, 1))
        time.sleep(0.5)
        assert not done, "the third handshake completed while both turns were taken"
        t_close = time.monotonic()
        held.pop(0).close()
        t.join(5)
        assert done, "the third handshake did not complete after a turn was freed"
        assert "error" not in third, "the third handshake failed: %r" % third.get("error")
        print("  note: third handshake done %.0f ms after a turn was freed" %
              ((done[0] - t_close) * 1000), flush=True)
        with TlsWS(third["sock"], "/echo") as c:
            c.send_text("after the wait")
            assert c.recv_message(5)[1] == b"after the wait"
        _wait_tls_stats(b, (1, 0))
    finally:
        for sock in held:
            sock.close()
        if "sock" in third:
            third["sock"].close()
        b.stop()


def _start_fails(args, what):
    with open(os.devnull, "rb") as devnull:
        p = subprocess.run([harness.BIN, "--listen", "127.0.0.1:0"] + args, stdin=devnull,
                           capture_output=True, text=True, timeout=10)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode not in (0, None), "%s: started (exit %r)" % (what, p.returncode)
    assert "listening on" not in p.stdout, "%s: printed %r" % (what, p.stdout)
    assert len(lines) == 1, "%s: want one line on stderr, got %r" % (what, p.stderr)
    return p.returncode, lines[0]


def case_killed_while_decrypting(certs):
    """A TLS connection the handler kills while its input is being decrypted (the answer to its
    request found no memory): the session must outlive the decryption loop that delivered the
    request. A fault-injection build fails every second HTTP answer (RINGCAST_FAULT)."""
    b = Broker("--tls-listen", "127.0.0.1:0", "--tls-cert", certs.crt("ec"),
               "--tls-key", certs.key("ec"), env={"RINGCAST_FAULT": "http_answer:2"}).start()
    try:
        time.sleep(0.2)
        if not any("RINGCAST_FAULT" in line for line in b.stderr_lines):
            print("  skipped: not a fault-injection build (the debug presets are)", flush=True)
            return
        r = http_get(b.port, "/healthz", close_wait=0)  # answer 1: served
        assert r.status == 200, "first /healthz: %r" % r
        sock = tls_socket(b.tls_port, client_ctx(certs.crt("ec")))
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")  # answer 2: fails
            assert_conn_ends(sock, 3.0)
        finally:
            sock.close()
        r = http_get(b.port, "/healthz", close_wait=0)  # answer 3: served
        assert r.status == 200, "/healthz after the failure: %r" % r
        assert b.proc.poll() is None, "the broker died"
    finally:
        b.stop()


def case_bad_files(certs, tmpdir):
    missing = os.path.join(tmpdir, "no-such.crt")
    rc, line = _start_fails(["--tls-listen", "127.0.0.1:0", "--tls-cert", missing,
                             "--tls-key", certs.key("ec")], "missing --tls-cert")
    assert "no-such.crt" in line, "the line does not name the file: %r" % line
    print("  note: missing --tls-cert: exit %d, %r" % (rc, line), flush=True)
    rc2, line = _start_fails(["--tls-listen", "127.0.0.1:0", "--tls-cert", certs.crt("ec"),
                              "--tls-key", certs.key("rsa")], "key of another certificate")
    print("  note: mismatched --tls-key: exit %d, %r" % (rc2, line), flush=True)
    rc3, line = _start_fails(["--tls-listen", "127.0.0.1:0", "--tls-cert", certs.crt("ec"),
                              "--tls-key", certs.key("ec"), "--tls-offload", "maybe"],
                             "--tls-offload maybe")
    assert rc3 == 2, "--tls-offload maybe: exit %d, want 2 (bad option)" % rc3


# ---------------------------------------------------------------------------------------------


def main():
    t_start = time.monotonic()
    r = Runner()
    tmpdir = tempfile.mkdtemp(prefix="ringcast-tls-")
    try:
        certs = []
        r.run("make test certificates (tools/gen-certs.sh)", lambda: certs.append(Certs(tmpdir)))
        if not certs:
            r.finish()
        certs = certs[0]

        per_broker = [
            ("echo text, binary and 64 KiB over wss", case_echo),
            ("room: a wss member and a plain ws member hear each other", case_room_mixed),
            ("1,000 messages in order (echo, and a room to wss and ws members)", case_order),
            ("close 1000 echoed; protocol errors get 1002", case_close_codes),
            ("TLS 1.1 refused with protocol_version", case_tls11_refused),
            ("CBC-only cipher list refused; default is AEAD", case_cbc_refused),
            ("ALPN: h2 alone refused, http/1.1 accepted", case_alpn),
            ("plain HTTP bytes on the TLS port: closed promptly", case_garbage),
            ("close_notify: answered, connection closed", case_close_notify),
            ("close_notify behind a message: answered all the same",
             case_close_notify_with_frames_queued),
            ("session resumption (ticket)", case_resumption),
            ("plain listener alongside the TLS one", case_plain_alongside),
        ]
        first = True
        for cert, offload in (("ec", "on"), ("ec", "off"), ("rsa", "on"), ("rsa", "off")):
            s = Setup(certs, cert, offload)
            r.run("[%s] start the broker" % s.name, s.start)
            if s.b is None or s.b.tls_port is None:
                continue
            try:
                for name, fn in per_broker:
                    r.run("[%s] %s" % (s.name, name), fn, s)
                if first:
                    r.run("[%s] truncated ClientHello closed after --handshake-timeout"
                          % s.name, case_truncated_hello, s)
                    first = False
                r.run("[%s] SIGTERM: wss and ws clients get 1001, exit 0" % s.name,
                      case_drain, s)
            finally:
                if s.b.proc.poll() is None:
                    s.b.stop()
        r.run("SIGHUP reloads the certificate for new connections; old ones keep working",
              case_reload, certs, tmpdir)
        r.run("--tls-max-handshakes: a connection past the limit waits for a turn",
              case_handshake_limit, certs)
        r.run("a connection killed while its TLS input is decrypted (out of memory)",
              case_killed_while_decrypting, certs)
        r.run("bad --tls-cert / --tls-key / --tls-offload refused at start, one line",
              case_bad_files, certs, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
        print("total %.1fs" % (time.monotonic() - t_start), flush=True)
    r.finish()


if __name__ == "__main__":
    main()

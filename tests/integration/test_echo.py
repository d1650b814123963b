# SPDX-License-Identifier: MIT
"""WS /echo with a real client library (python3-websockets) and a raw client for the frames a
library will not send: text, binary, empty and large messages, order, fragmentation, pings from
the client, and the close codes of RFC 6455 (1000 echoed, 1002, 1007, 1009)."""
import asyncio
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import websockets  # noqa: E402

from harness import Broker, Runner  # noqa: E402
from util import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWS,  # noqa: E402
                  encode_frame, run_async, ws_connect, ws_recv, ws_wait_closed)

MIB = 1 << 20


def case_text(b):
    async def go():
        async with ws_connect(b.url + "/echo") as ws:
            for msg in ["hello", "", "x" * 125, "y" * 126, "z" * 65535, "héllo wörld ✓ 𝄞"]:
                await ws.send(msg)
                got = await ws_recv(ws)
                assert isinstance(got, str), "text came back as %s" % type(got).__name__
                assert got == msg, "text of %d chars came back as %d chars" % (len(msg), len(got))
    run_async(go(), 15)


def case_binary(b):
    async def go():
        async with ws_connect(b.url + "/echo") as ws:
            for msg in [bytes(range(256)), b"", b"\x00" * 1000, os.urandom(65536)]:
                await ws.send(msg)
                got = await ws_recv(ws)
                assert isinstance(got, bytes), "binary came back as %s" % type(got).__name__
                assert got == msg, "binary of %d bytes came back as %d" % (len(msg), len(got))
    run_async(go(), 15)


def case_at_limit(b):
    """--max-message is the largest message accepted: exactly that many bytes is fine."""
    async def go():
        async with ws_connect(b.url + "/echo") as ws:
            msg = os.urandom(65536)
            await ws.send(msg)
            assert await ws_recv(ws) == msg
    run_async(go(), 10)


def case_over_limit_1009(b):
    async def go():
        async with ws_connect(b.url + "/echo") as ws:
            await ws.send(b"\x01" * 65537)
            code = await ws_wait_closed(ws, 5)
            assert code == 1009, "close code %r, want 1009" % code
    run_async(go(), 10)


def case_over_limit_fragmented_1009(b):
    """The limit applies to the reassembled message, not to each fragment."""
    with RawWS(b.port, "/echo") as c:
        for _ in range(4):
            c.send_frame(OP_BINARY if _ == 0 else OP_CONT, b"a" * 20000, fin=False)
        c.send_frame(OP_CONT, b"a" * 20000, fin=True)
        code = c.expect_close(5)
        assert code == 1009, "close code %r, want 1009" % code


def case_1mib(b):
    """--max-message raised: a 1 MiB binary and a 1 MiB text message come back whole."""
    async def go():
        async with ws_connect(b.url + "/echo") as ws:
            data = os.urandom(MIB)
            await ws.send(data)
            assert await ws_recv(ws, 15) == data, "1 MiB binary came back different"
            text = ("0123456789abcdef" * (MIB // 16))
            await ws.send(text)
            assert await ws_recv(ws, 15) == text, "1 MiB text came back different"
            # Just over the raised limit is still refused.
            await ws.send(b"\x00" * (2 * MIB + 1))
            code = await ws_wait_closed(ws, 10)
            assert code == 1009, "close code %r, want 1009" % code
    run_async(go(), 40)


def case_many_in_order(b):
    """5,000 messages sent back to back (pipelined) come back complete and in order."""
    n = 5000

    async def go():
        async with ws_connect(b.url + "/echo") as ws:
            async def reader():
                for i in range(n):
                    got = await ws_recv(ws, 10)
                    assert got == "m%d" % i, "message %d came back as %r" % (i, got[:40])
            t = asyncio.ensure_future(reader())
            for i in range(n):
                await ws.send("m%d" % i)
            await t
    run_async(go(), 40)


def case_many_clients(b):
    """50 clients at once, each with its own stream: no cross-talk."""
    async def one(i):
        async with ws_connect(b.url + "/echo") as ws:
            for j in range(50):
                await ws.send("c%d-%d" % (i, j))
            for j in range(50):
                got = await ws_recv(ws, 10)
                assert got == "c%d-%d" % (i, j), "client %d got %r" % (i, got)

    async def go():
        await asyncio.gather(*(one(i) for i in range(50)))
    run_async(go(), 30)


def case_fragmented(b):
    """A message sent in fragments comes back as one message with the first frame's opcode."""
    async def go():
        async with ws_connect(b.url + "/echo") as ws:
            await ws.send(["frag", "men", "ted ✓"])
            assert await ws_recv(ws) == "fragmented ✓"
            await ws.send([b"\x00\x01", b"", b"\x02"])
            assert await ws_recv(ws) == b"\x00\x01\x02"
    run_async(go(), 10)


def case_utf8_split_across_fragments(b):
    """A multi-byte character split between two fragments is valid UTF-8 (RFC 6455 8.1)."""
    with RawWS(b.port, "/echo") as c:
        s = "€𝄞".encode()
        c.send_frame(OP_TEXT, s[:2], fin=False)
        c.send_frame(OP_CONT, s[2:5], fin=False)
        c.send_frame(OP_CONT, s[5:], fin=True)
        op, data = c.recv_message(5)
        assert (op, data) == (OP_TEXT, s), "got %r %r" % (op, data)


def case_ping_from_client(b):
    async def go():
        async with ws_connect(b.url + "/echo") as ws:
            for payload in [b"", b"abc", os.urandom(125)]:
                waiter = await ws.ping(payload)
                await asyncio.wait_for(waiter, 5)
            # The connection still echoes afterwards.
            await ws.send("after ping")
            assert await ws_recv(ws) == "after ping"
    run_async(go(), 15)


def case_ping_raw_pong_payload(b):
    """RFC 6455 5.5.3: the pong carries the ping's application data."""
    with RawWS(b.port, "/echo") as c:
        c.ping(b"payload-123")
        f = c.recv_frame(5)
        while f.opcode == OP_PING:  # a server ping may come first
            f = c.recv_frame(5)
        assert f.opcode == OP_PONG and f.payload == b"payload-123", "got %r" % f


def case_ping_between_fragments(b):
    """A control frame between the fragments of a message is answered at once and does not
    break the message (RFC 6455 5.4)."""
    with RawWS(b.port, "/echo") as c:
        c.send_frame(OP_TEXT, b"one ", fin=False)
        c.ping(b"mid")
        f = c.recv_frame(5)
        while f.opcode == OP_PING:
            f = c.recv_frame(5)
        assert f.opcode == OP_PONG and f.payload == b"mid", "got %r" % f
        c.send_frame(OP_CONT, b"two", fin=True)
        op, data = c.recv_message(5)
        assert (op, data) == (OP_TEXT, b"one two"), "got %r %r" % (op, data)


def case_close_1000(b):
    """A client's close is answered with a close frame (RFC 6455 5.5.1) carrying its code."""
    async def go():
        ws = await ws_connect(b.url + "/echo")
        await ws.send("x")
        await ws_recv(ws)
        await ws.close(1000, "bye")
        assert ws.close_code == 1000, "close answered with %r" % ws.close_code
    run_async(go(), 10)


def case_close_app_code(b):
    """An application code 4000 is echoed back; the TCP connection then ends."""
    with RawWS(b.port, "/echo") as c:
        c.close(4000, b"app")
        frames, how = c.read_until_end(5)
        closes = [f for f in frames if f.opcode == OP_CLOSE]
        assert closes, "no close frame back (%s, frames %r)" % (how, frames)
        assert closes[0].close_code() in (4000, 1000), "close answered with %r" % \
            closes[0].close_code()
        assert how in ("eof", "reset"), "connection not ended after the close handshake"


def case_close_empty(b):
    """A close frame with no body is answered with no code or with 1000 (never with 1005,
    which RFC 6455 7.4.1 forbids on the wire)."""
    with RawWS(b.port, "/echo") as c:
        c.close(None)
        frames, how = c.read_until_end(5)
        closes = [f for f in frames if f.opcode == OP_CLOSE]
        assert closes, "no close frame back (%s)" % how
        assert closes[0].close_code() in (None, 1000), "got %r" % closes[0].close_code()


def _expect_close_code(b, send, want, what):
    with RawWS(b.port, "/echo") as c:
        send(c)
        try:
            code = c.expect_close(5)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (what, e)) from None
        assert code == want, "%s: close code %r, want %d" % (what, code, want)


def case_close_1002_protocol_errors(b):
    cases = [
        ("unmasked frame", lambda c: c.send_frame(OP_TEXT, b"hi", mask=False)),
        ("reserved opcode 3", lambda c: c.send_frame(3, b"hi")),
        ("reserved control opcode 0xB", lambda c: c.send_frame(0xB, b"hi")),
        ("RSV1 without an extension", lambda c: c.send_frame(OP_TEXT, b"hi", rsv=4)),
        ("continuation with nothing to continue", lambda c: c.send_frame(OP_CONT, b"hi")),
        ("fragmented ping", lambda c: c.send_frame(OP_PING, b"hi", fin=False)),
        ("ping of 126 bytes", lambda c: c.send_frame(OP_PING, b"p" * 126)),
        ("new message inside a fragmented one",
         lambda c: (c.send_frame(OP_TEXT, b"a", fin=False), c.send_frame(OP_TEXT, b"b"))),
        ("close with a 1-byte body", lambda c: c.send_raw(encode_frame(OP_CLOSE, b"\x03"))),
        ("close with code 1005", lambda c: c.close(1005)),
        ("close with code 999", lambda c: c.close(999)),
    ]
    errs = []
    for what, send in cases:
        try:
            _expect_close_code(b, send, 1002, what)
        except AssertionError as e:
            errs.append(str(e))
    assert not errs, "; ".join(errs)


def case_close_1007_invalid_utf8(b):
    cases = [
        ("text C0 AF", lambda c: c.send_frame(OP_TEXT, b"\xc0\xaf")),
        ("text surrogate ED A0 80", lambda c: c.send_frame(OP_TEXT, b"a\xed\xa0\x80")),
        ("text truncated at the end", lambda c: c.send_frame(OP_TEXT, "€".encode()[:2])),
        ("fragmented text, bad byte in the second fragment",
         lambda c: (c.send_frame(OP_TEXT, b"ok", fin=False),
                    c.send_frame(OP_CONT, b"\xff", fin=True))),
        ("close reason not UTF-8", lambda c: c.send_frame(OP_CLOSE, struct.pack("!H", 1000) +
                                                          b"\xff")),
    ]
    errs = []
    for what, send in cases:
        try:
            _expect_close_code(b, send, 1007, what)
        except AssertionError as e:
            errs.append(str(e))
    assert not errs, "; ".join(errs)


def case_extension_offer_declined(b):
    """A client offering permessage-deflate (the library default) still gets a working
    connection; the broker either declines or supports it."""
    async def go():
        async with websockets.connect(b.url + "/echo", ping_interval=None,
                                      open_timeout=5, close_timeout=3) as ws:
            await ws.send("compressed?")
            assert await ws_recv(ws) == "compressed?"
    run_async(go(), 10)


def main():
    r = Runner()
    with Broker("--shards", "2") as b:
        for name, fn in [("text", case_text), ("binary", case_binary),
                         ("message at --max-message", case_at_limit),
                         ("message over --max-message -> 1009", case_over_limit_1009),
                         ("fragmented message over --max-message -> 1009",
                          case_over_limit_fragmented_1009),
                         ("5000 messages in order", case_many_in_order),
                         ("50 clients at once", case_many_clients),
                         ("fragmented message", case_fragmented),
                         ("UTF-8 split across fragments", case_utf8_split_across_fragments),
                         ("ping from the client", case_ping_from_client),
                         ("pong carries the ping payload", case_ping_raw_pong_payload),
                         ("ping between fragments", case_ping_between_fragments),
                         ("close 1000 answered", case_close_1000),
                         ("close 4000 answered, connection ends", case_close_app_code),
                         ("close without a code answered", case_close_empty),
                         ("protocol errors -> 1002", case_close_1002_protocol_errors),
                         ("invalid UTF-8 -> 1007", case_close_1007_invalid_utf8),
                         ("permessage-deflate offer", case_extension_offer_declined)]:
            r.run(name, fn, b)
    with Broker("--shards", "2", "--max-message", str(2 * MIB)) as b:
        r.run("1 MiB messages with --max-message 2 MiB", case_1mib, b)
    r.finish()


if __name__ == "__main__":
    main()

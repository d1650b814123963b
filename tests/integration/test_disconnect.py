# SPDX-License-Identifier: MIT
"""Abrupt disconnects: clients that reset the connection (SO_LINGER 0) at every stage (right
after connect, in the middle of the HTTP request, right after the upgrade, in the middle of a
frame, while the broker is sending to them), and clients that half-close (FIN, no close frame).
The broker must keep serving, and its connections must come back: there is no /metrics yet, so
that is checked by behaviour. The broker runs with --max-conns 100; after each case it must
accept 80 upgrades at once (a leaked slot per reset would soon exhaust it), and /proc/net/tcp
must show none of its sockets left ESTABLISHED or CLOSE_WAIT (CLOSE_WAIT: the client went away
and the broker never closed its side)."""
import asyncio
import concurrent.futures
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker, Runner  # noqa: E402
from util import (OP_BINARY, OP_TEXT, RawWS, assert_conn_ends, connect,  # noqa: E402
                  encode_frame, rst_close, run_async, tcp_conns, upgrade_request, wait_conns,
                  ws_connect, ws_recv)

MAX_CONNS = 100
CAPACITY_PROBE = 80

HALF_REQUEST = b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConn"


def check_healthy(b):
    """The broker is alive, holds no connection, can take CAPACITY_PROBE upgrades at once, and
    echoes."""
    assert b.proc.poll() is None, "broker exited with %r" % b.proc.returncode
    left = wait_conns(b.port, 0, 10)
    assert left == 0, "broker still holds %d connections (ESTABLISHED/CLOSE_WAIT)" % left
    deadline = time.monotonic() + 5
    while True:
        conns, err = [], None
        try:
            for _ in range(CAPACITY_PROBE):
                conns.append(RawWS(b.port, "/echo", timeout=3))
            c = conns[-1]
            c.send_text("alive")
            assert c.recv_message(3) == (OP_TEXT, b"alive")
            return
        except (AssertionError, OSError) as e:
            err = e
        finally:
            for c in conns:
                c.rst()
        if time.monotonic() > deadline:
            raise AssertionError("only %d of %d upgrades at once succeeded (--max-conns %d): %s"
                                 % (len(conns), CAPACITY_PROBE, MAX_CONNS, err))
        time.sleep(0.2)
        wait_conns(b.port, 0, 5)


def case_rst_after_connect(b):
    for _ in range(100):
        rst_close(connect(b.port))
    check_healthy(b)


def case_rst_mid_request(b):
    for i in range(100):
        s = connect(b.port)
        s.sendall(HALF_REQUEST[:1 + i % len(HALF_REQUEST)])
        if i % 2:
            time.sleep(0.001)
        rst_close(s)
    check_healthy(b)


def case_rst_before_response(b):
    """Full upgrade request, then RST before the 101 is read: the 101 hits a dead socket."""
    for _ in range(100):
        s = connect(b.port)
        s.sendall(upgrade_request("/echo"))
        rst_close(s)
    check_healthy(b)


def case_rst_after_upgrade(b):
    for i in range(100):
        RawWS(b.port, "/echo" if i % 2 else "/room/rst-%d" % (i % 5)).rst()
    check_healthy(b)


def case_rst_mid_frame(b):
    """RST after part of a frame header, or part of a 64 KiB payload, or in the middle of a
    fragmented message."""
    big = encode_frame(OP_BINARY, os.urandom(65000))
    frag = encode_frame(OP_TEXT, b"first", fin=False)
    for i in range(60):
        c = RawWS(b.port, "/echo" if i % 2 else "/room/midframe")
        k = i % 3
        if k == 0:
            c.send_raw(big[:1 + i % 9])          # inside the header (mask key included)
        elif k == 1:
            c.send_raw(big[:14 + 1000 * i])      # inside the payload
        else:
            c.send_raw(frag + big[:100])         # a fragment, then a broken second frame
        c.rst()
    check_healthy(b)


def case_rst_while_sending(b):
    """RST from clients the broker is busy sending to: echoes of 3 x 60 KiB not read, and a
    room member that does not read while the room is flooded."""
    for _ in range(30):
        c = RawWS(b.port, "/echo", rcvbuf=4096)
        for _ in range(3):
            c.send_binary(b"e" * 60000)
        c.rst()

    async def go():
        pub = await ws_connect(b.url + "/room/flooded")
        keeper = await ws_connect(b.url + "/room/flooded")
        victims = [RawWS(b.port, "/room/flooded", rcvbuf=4096) for _ in range(5)]
        for i in range(300):
            await pub.send(os.urandom(2048))
            if i % 50 == 0:
                await asyncio.sleep(0.01)
        for v in victims:
            v.rst()
        # The remaining member still hears the publisher (it may first have a backlog).
        await pub.send("last")
        while True:
            m = await ws_recv(keeper, 10)
            if m == "last":
                break
        await pub.close()
        await keeper.close()
    run_async(go(), 30)
    check_healthy(b)


def case_rst_others_unaffected(b):
    """Members that reset mid-message do not disturb the others in their room."""
    async def go():
        pub = await ws_connect(b.url + "/room/steady")
        subs = [await ws_connect(b.url + "/room/steady") for _ in range(3)]
        for _ in range(100):  # settle: every member hears the publisher
            await pub.send("probe")
            await asyncio.sleep(0.02)
            ok = 0
            for s in subs:
                try:
                    while await ws_recv(s, 0.05) != "probe":
                        pass
                    ok += 1
                except asyncio.TimeoutError:
                    pass
            if ok == len(subs):
                break
        stop = threading.Event()

        def churn():
            big = encode_frame(OP_BINARY, b"z" * 30000)
            while not stop.is_set():
                c = RawWS(b.port, "/room/steady")
                c.send_raw(big[:5000])
                c.rst()

        t = threading.Thread(target=churn, daemon=True)
        t.start()
        try:
            for i in range(500):
                await pub.send("n%d" % i)
            for s in subs:
                i = 0
                while i < 500:
                    m = await ws_recv(s, 10)
                    if m == "probe":
                        continue
                    assert m == "n%d" % i, "member expected n%d, got %r" % (i, m)
                    i += 1
        finally:
            stop.set()
            t.join(5)
        await pub.close()
        for s in subs:
            await s.close()
    run_async(go(), 30)
    check_healthy(b)


def case_fin_mid_request(b):
    """A client that sends half a request and then half-closes (FIN): the broker must close its
    side (perhaps after a 400), not sit in CLOSE_WAIT."""
    socks = []
    for _ in range(10):
        s = connect(b.port)
        s.sendall(HALF_REQUEST)
        s.shutdown(socket.SHUT_WR)
        socks.append(s)
    try:
        for s in socks:
            assert_conn_ends(s, 5)
    finally:
        for s in socks:
            rst_close(s)
    check_healthy(b)


def case_fin_after_upgrade(b):
    """Upgraded clients that half-close with no close frame: the broker closes its side."""
    conns = [RawWS(b.port, "/echo" if i % 2 else "/room/fin") for i in range(10)]
    try:
        for c in conns:
            c.shutdown_write()
        for c in conns:
            frames, how = c.read_until_end(5)
            assert how in ("eof", "reset"), "broker kept a half-closed connection open"
    finally:
        for c in conns:
            c.rst()
    check_healthy(b)


def case_fin_mid_frame(b):
    """Half-close in the middle of a frame: the broker closes its side."""
    conns = [RawWS(b.port, "/echo") for _ in range(10)]
    try:
        for c in conns:
            c.send_raw(encode_frame(OP_BINARY, b"q" * 5000)[:2000])
            c.shutdown_write()
        for c in conns:
            frames, how = c.read_until_end(5)
            assert how in ("eof", "reset"), "broker kept a half-closed connection open"
    finally:
        for c in conns:
            c.rst()
    check_healthy(b)


def _cycle(port, i):
    """One connect/RST cycle; the stage it resets at depends on <i>."""
    k = i % 6
    if k == 0:
        rst_close(connect(port))
    elif k == 1:
        s = connect(port)
        s.sendall(HALF_REQUEST[:10 + i % 40])
        rst_close(s)
    elif k == 2:
        s = connect(port)
        s.sendall(upgrade_request("/room/cycle"))
        rst_close(s)
    elif k == 3:
        RawWS(port, "/room/cycle-%d" % (i % 7)).rst()
    elif k == 4:
        c = RawWS(port, "/echo")
        c.send_raw(encode_frame(OP_BINARY, b"p" * 3000)[:1500])
        c.rst()
    else:
        c = RawWS(port, "/echo")
        c.send_text("cycle %d" % i)
        got = c.recv_message(5)
        c.rst()
        assert got == (OP_TEXT, b"cycle %d" % i), "echo got %r" % (got,)


def case_500_cycles(b):
    """500 connect/RST cycles from 8 threads, each at one of six stages."""
    errors = []
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(_cycle, b.port, i) for i in range(500)]
        for f in futs:
            try:
                f.result(timeout=30)
            except Exception as e:  # noqa: BLE001 - collect them all
                errors.append(repr(e))
    assert not errors, "%d of 500 cycles failed, first: %s" % (len(errors), errors[:3])
    check_healthy(b)


def case_baseline(b):
    """At the end: nothing held, echo and rooms work with a library client."""
    check_healthy(b)
    assert tcp_conns(b.port) == 0

    async def go():
        a = await ws_connect(b.url + "/room/final")
        c = await ws_connect(b.url + "/room/final")
        for _ in range(100):
            await a.send("x")
            try:
                if await ws_recv(c, 0.1) == "x":
                    break
            except asyncio.TimeoutError:
                pass
        else:
            raise AssertionError("room does not deliver")
        await a.close()
        await c.close()
    run_async(go(), 15)


def main():
    r = Runner()
    with Broker("--shards", "2", "--max-conns", str(MAX_CONNS)) as b:
        check_healthy(b)
        for name, fn in [("RST right after connect x100", case_rst_after_connect),
                         ("RST in the middle of the HTTP request x100", case_rst_mid_request),
                         ("RST before the 101 is read x100", case_rst_before_response),
                         ("RST right after the upgrade x100", case_rst_after_upgrade),
                         ("RST in the middle of a frame x60", case_rst_mid_frame),
                         ("RST while the broker is sending", case_rst_while_sending),
                         ("RST churn does not disturb a room", case_rst_others_unaffected),
                         ("half-close in the middle of the request", case_fin_mid_request),
                         ("half-close after the upgrade", case_fin_after_upgrade),
                         ("half-close in the middle of a frame", case_fin_mid_frame),
                         ("500 connect/RST cycles", case_500_cycles),
                         ("baseline at the end", case_baseline)]:
            r.run(name, fn, b)
    r.finish()


if __name__ == "__main__":
    main()

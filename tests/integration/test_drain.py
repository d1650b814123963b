# SPDX-License-Identifier: MIT
"""SIGTERM and SIGINT drain the broker: it stops accepting (GET /healthz and new upgrades get
503 while it drains), sends close 1001 to every connection, flushes queued sends for up to
10 s, and exits with status 0. A member that reads nothing and has megabytes queued keeps the
broker draining for the full 10 s; one that starts reading gets its backlog and the close."""
import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker, Runner  # noqa: E402
from util import (OP_BINARY, OP_CLOSE, OP_TEXT, ConnEnded, RawWS, check_refusal,  # noqa: E402
                  http_get, http_request, upgrade_request, ws_connect, ws_recv, ws_wait_closed)

MSG = 16 * 1024
BACKLOG = 1024           # 16 MiB queued for the stuck member: more than the kernel holds
                         # (tcp_wmem max 4 MiB), so the broker has to keep draining
EXIT_LIMIT = 12.0        # 10 s of flushing plus slack


def _start(*args):
    return Broker("--shards", "2", "--send-queue", str(64 << 20), *args).start()


async def _setup(b, loop_clients=10):
    """Connects <loop_clients> library clients (half /echo, half a room), a stuck raw member
    that reads nothing, a reading member and a publisher that queues BACKLOG messages for the
    stuck member. Returns (clients, stuck, helpers)."""
    clients = []
    for i in range(loop_clients):
        clients.append(await ws_connect(b.url + ("/echo" if i % 2 else "/room/drain")))
    stuck = RawWS(b.port, "/room/stuck", rcvbuf=4096)
    pub = await ws_connect(b.url + "/room/stuck")
    reader = await ws_connect(b.url + "/room/stuck")
    # Settle: the stuck member and the reader both hear the publisher.
    for _ in range(100):
        await pub.send("probe")
        try:
            if stuck.recv_message(0.1)[1] == b"probe":
                break
        except TimeoutError:
            continue
    else:
        raise AssertionError("stuck member never heard the publisher")
    for i in range(BACKLOG):
        await pub.send(i.to_bytes(4, "big") + bytes(MSG - 4))
    n = 0
    while n < BACKLOG:  # once the reader has them all, the broker has queued them all
        m = await ws_recv(reader, 10)
        if m != "probe":
            n += 1
    for c in clients[1::2]:  # the echo clients answer: they are really up
        await c.send("up")
        assert await ws_recv(c) == "up"
    return clients, stuck, [pub, reader]


def _check_refusing(b, deadline_s=3.0):
    """While draining, /healthz answers 503 and an upgrade answers 503. The first request may
    race the signal, so retry until <deadline_s>."""
    deadline = time.monotonic() + deadline_s
    while True:
        r = http_get(b.port, "/healthz", close_wait=0.2)
        if r.status == 503 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    check_refusal(r, 503)
    r = http_request(b.port, upgrade_request("/echo"), close_wait=0.2)
    check_refusal(r, 503)
    r = http_request(b.port, upgrade_request("/room/drain"), close_wait=0.2)
    check_refusal(r, 503)


async def _all_get_1001(clients, timeout):
    codes = await asyncio.gather(*(ws_wait_closed(c, timeout) for c in clients),
                                 return_exceptions=True)
    bad = [(i, c) for i, c in enumerate(codes) if c != 1001]
    assert not bad, "clients closed with %r, want 1001 for all" % bad[:5]


def case_sigterm_stuck(sig):
    """<sig> with a member that never reads: 1001 to everyone, 503 while draining, exit 0 after
    at most ~10 s of flushing."""
    def run():
        b = _start()
        loop = asyncio.new_event_loop()
        stuck = None
        try:
            clients, stuck, helpers = loop.run_until_complete(asyncio.wait_for(_setup(b), 30))
            t0 = time.monotonic()
            b.signal(sig)
            _check_refusing(b)
            loop.run_until_complete(asyncio.wait_for(
                _all_get_1001(clients + helpers, 5), 8))
            try:
                rc = b.wait(timeout=EXIT_LIMIT - (time.monotonic() - t0))
            except Exception:
                raise AssertionError("broker still running %.1fs after the signal" %
                                     (time.monotonic() - t0)) from None
            took = time.monotonic() - t0
            print("   exited with %r after %.2fs" % (rc, took))
            assert rc == 0, "exit status %r, want 0; stderr: %s" % (rc, "".join(
                b.stderr_lines)[-2000:])
            # The stuck member's connection is gone now (data may still be in its buffers).
            frames, how = stuck.read_until_end(5)
            got = sum(1 for f in frames if f.opcode == OP_BINARY)
            closes = [f.close_code() for f in frames if f.opcode == OP_CLOSE]
            print("   stuck member then read %d of %d queued messages, close %r, %s" % (
                got, BACKLOG, closes, how))
            assert how in ("eof", "reset"), "stuck member still connected after exit"
            assert closes in ([], [1001]), "stuck member got close %r" % closes
            # It never read, so its sends could not flush: the broker should have kept trying
            # for the full 10 s rather than drop what it had queued.
            assert took >= 8.0, "broker stopped draining after %.1fs with the stuck member's " \
                "sends unflushed (it got %d of %d messages)" % (took, got, BACKLOG)
        finally:
            if stuck:
                stuck.rst()
            loop.close()
            b.stop()
    return run


def case_flush_then_exit(sig):
    """<sig> with a member that starts reading 3 s into the drain: it gets its whole backlog
    in order and then close 1001, and the broker exits 0 soon after, well before 10 s."""
    def run():
        b = _start()
        loop = asyncio.new_event_loop()
        stuck = None
        try:
            clients, stuck, helpers = loop.run_until_complete(asyncio.wait_for(_setup(b), 30))
            t0 = time.monotonic()
            b.signal(sig)
            _check_refusing(b)
            loop.run_until_complete(asyncio.wait_for(_all_get_1001(clients + helpers, 5), 8))
            time.sleep(max(0.0, 3.0 - (time.monotonic() - t0)))
            if b.proc.poll() is not None:
                frames, how = stuck.read_until_end(5)
                got = sum(1 for f in frames if f.opcode == OP_BINARY)
                raise AssertionError(
                    "broker had exited (status %r) by %.1fs after the signal, before the stuck "
                    "member started reading its backlog; it could then read %d of %d "
                    "messages, close %r (%s)" % (b.proc.returncode, time.monotonic() - t0, got, BACKLOG,
                                 [f.close_code() for f in frames if f.opcode == OP_CLOSE], how))
            seqs, code = [], None
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                try:
                    f = stuck.recv_frame(max(0.0, deadline - time.monotonic()))
                except ConnEnded as e:
                    raise AssertionError("stuck member's connection ended (%s) after %d of %d "
                                         "queued messages, no close frame, %.1fs after the "
                                         "signal" % (e, len(seqs), BACKLOG,
                                                     time.monotonic() - t0)) from None
                if f.opcode == OP_BINARY:
                    seqs.append(int.from_bytes(f.payload[:4], "big"))
                elif f.opcode == OP_CLOSE:
                    code = f.close_code()
                    stuck.close(1001)
                    break
                elif f.opcode == OP_TEXT and f.payload == b"probe":
                    continue
            assert seqs == list(range(BACKLOG)), "stuck member got %d of %d queued messages" \
                " (first gaps at %r)" % (len(seqs), BACKLOG, [
                    i for i, s in enumerate(seqs) if s != i][:3])
            assert code == 1001, "close after the backlog was %r, want 1001" % code
            try:
                rc = b.wait(timeout=3)
            except Exception:
                raise AssertionError("broker still running 3s after its last connection "
                                     "was flushed and closed") from None
            took = time.monotonic() - t0
            print("   exited with %r after %.2fs" % (rc, took))
            assert rc == 0, "exit status %r, want 0" % rc
            assert took < 9.5, "drain took %.1fs though everything was flushed" % took
        finally:
            if stuck:
                stuck.rst()
            loop.close()
            b.stop()
    return run


def case_quick(sig):
    """<sig> with only well-behaved clients (they answer the close): 1001 to all, exit 0 in a
    few seconds; with no client at all, exit 0 at once."""
    def run():
        b = _start()
        try:
            t0 = time.monotonic()
            b.signal(sig)
            rc = b.wait(timeout=5)
            assert rc == 0, "idle broker exited with %r" % rc
            assert time.monotonic() - t0 < 3, "idle broker took %.1fs to exit" % (
                time.monotonic() - t0)
        finally:
            b.stop()
        b = _start()
        loop = asyncio.new_event_loop()
        try:
            async def connect_all():
                cs = []
                for i in range(20):
                    cs.append(await ws_connect(b.url + ("/echo" if i % 2 else "/room/q%d" % i)))
                for c in cs:
                    await c.send("x")
                return cs
            clients = loop.run_until_complete(asyncio.wait_for(connect_all(), 15))
            time.sleep(0.2)
            t0 = time.monotonic()
            b.signal(sig)
            loop.run_until_complete(asyncio.wait_for(_all_get_1001(clients, 5), 8))
            rc = b.wait(timeout=5)
            took = time.monotonic() - t0
            print("   exited with %r after %.2fs" % (rc, took))
            assert rc == 0, "exit status %r" % rc
            assert took < 4, "took %.1fs to drain 20 cooperative clients" % took
        finally:
            loop.close()
            b.stop()
    return run


def case_many_shards():
    """More shards than the main thread's doorbell ring once had completion slots (16): 40
    shards, clients spread over them, SIGTERM: every client gets 1001 and the broker exits 0
    promptly, having rung every shard's doorbell (no warning that some were not woken)."""
    b = Broker("--shards", "40", "--max-conns", "512").start()
    loop = asyncio.new_event_loop()
    try:
        async def connect_all():
            cs = []
            for i in range(80):
                cs.append(await ws_connect(b.url + ("/echo" if i % 2 else "/room/m%d" % i)))
            for c in cs[1::2]:
                await c.send("up")
                assert await ws_recv(c) == "up"
            return cs
        clients = loop.run_until_complete(asyncio.wait_for(connect_all(), 20))
        t0 = time.monotonic()
        b.signal(signal.SIGTERM)
        loop.run_until_complete(asyncio.wait_for(_all_get_1001(clients, 5), 8))
        rc = b.wait(timeout=8)
        took = time.monotonic() - t0
        print("   40 shards: exited with %r after %.2fs" % (rc, took))
        assert rc == 0, "exit status %r; stderr:\n%s" % (rc, "".join(b.stderr_lines))
        assert took < 5, "took %.1fs to drain 40 shards" % took
        time.sleep(0.1)  # the stderr pump
        woke = [ln for ln in b.stderr_lines if "woke" in ln or "doorbell" in ln]
        assert not woke, "doorbells missed: %r" % woke
    finally:
        loop.close()
        b.stop()


def main():
    r = Runner()
    r.run("SIGTERM, idle and cooperative clients", case_quick(signal.SIGTERM))
    r.run("SIGINT, idle and cooperative clients", case_quick(signal.SIGINT))
    r.run("SIGTERM with a stuck member: 1001, 503s, drains ~10s, exit 0",
          case_sigterm_stuck(signal.SIGTERM))
    r.run("SIGINT with a stuck member: 1001, 503s, drains ~10s, exit 0",
          case_sigterm_stuck(signal.SIGINT))
    r.run("SIGTERM: queued data flushed before the close, then exit",
          case_flush_then_exit(signal.SIGTERM))
    r.run("SIGTERM with 40 shards: every shard woken, exit 0", case_many_shards)
    r.finish()


if __name__ == "__main__":
    main()

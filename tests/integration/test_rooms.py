# SPDX-License-Identifier: MIT
"""Raw room mode, WS /room/<name>: every message a member sends reaches every other member of
the room verbatim with the same opcode; the sender gets it too only with ?echo=1. Covers
percent-encoded names, rooms spanning several shards, per-publisher ordering under concurrent
publishers, isolation between rooms, and members leaving."""
import asyncio
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker, Runner  # noqa: E402
from util import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PONG, OP_TEXT, PROBE, RawWS,  # noqa: E402
                  run_async, rx, settle, ws_connect)


async def _members(b, path, n):
    return [await ws_connect(b.url + path) for _ in range(n)]


async def _close_all(conns):
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


async def silence(ws, seconds):
    """Fails if <ws> receives a message other than a probe within <seconds>."""
    try:
        m = await rx(ws, seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError("expected no message, got %r" % (m[:80],))


def _raw_rx(r, timeout):
    """Next message on RawWS <r> that is not a probe, as (opcode, payload)."""
    while True:
        op, data = r.recv_message(timeout)
        if data != PROBE.encode():
            return op, data


def case_basic(b):
    async def go():
        a, m1, m2 = await _members(b, "/room/basic", 3)
        await settle(b.url, "/room/basic", [a, m1, m2])
        await a.send("hello room")
        for m in (m1, m2):
            got = await rx(m)
            assert got == "hello room", "member got %r" % got
        await silence(a, 0.5)  # the sender does not get its own message
        await m1.send("reply")
        assert await rx(a) == "reply"
        assert await rx(m2) == "reply"
        await silence(m1, 0.3)
        await _close_all([a, m1, m2])
    run_async(go(), 20)


def case_verbatim_opcodes(b):
    """Text stays text, binary stays binary, bytes are unchanged, empty messages pass."""
    msgs = ["plain", "ünïcödé ✓ 𝄞", "", bytes(range(256)), b"", os.urandom(60000),
            "t" * 65536, b"\xff\xfe" * 100]

    async def go():
        a, m = await _members(b, "/room/verbatim", 2)
        await settle(b.url, "/room/verbatim", [a, m])
        for msg in msgs:
            await a.send(msg)
        for i, msg in enumerate(msgs):
            got = await rx(m)
            assert type(got) is type(msg), "message %d: %s became %s" % (
                i, type(msg).__name__, type(got).__name__)
            assert got == msg, "message %d changed (%d -> %d bytes)" % (i, len(msg), len(got))
        await _close_all([a, m])
    run_async(go(), 20)


def case_fragmented_publish(b):
    """A message published in fragments (with a ping between them) reaches members whole."""
    async def go():
        m = await ws_connect(b.url + "/room/frag")
        with RawWS(b.port, "/room/frag") as p:
            await settle(b.url, "/room/frag", [m], raw=[p])
            p.send_frame(OP_TEXT, "frag".encode(), fin=False)
            p.ping(b"x")
            p.send_frame(OP_CONT, "ment€".encode(), fin=True)
            f = p.recv_frame(5)
            while f.opcode == OP_TEXT and f.payload == PROBE.encode():
                f = p.recv_frame(5)
            assert f.opcode == OP_PONG, "publisher got %r, want its pong" % f
            got = await rx(m)
            assert got == "fragment€", "member got %r" % got
            p.send_frame(OP_BINARY, b"\x01", fin=False)
            p.send_frame(OP_CONT, b"\x02", fin=True)
            got = await rx(m)
            assert got == b"\x01\x02", "member got %r" % got
        await silence(m, 0.3)  # the ping was not published
        await m.close()
    run_async(go(), 20)


def case_echo_param(b):
    async def go():
        e = await ws_connect(b.url + "/room/echo?echo=1")
        n = await ws_connect(b.url + "/room/echo")
        z = await ws_connect(b.url + "/room/echo?echo=0")
        await settle(b.url, "/room/echo", [e, n, z])
        await e.send("from e")
        assert await rx(e) == "from e", "?echo=1 member did not get its own message"
        assert await rx(n) == "from e"
        assert await rx(z) == "from e"
        await n.send(b"from n")
        assert await rx(e) == b"from n"
        assert await rx(z) == b"from n"
        await z.send("from z")
        assert await rx(e) == "from z"
        assert await rx(n) == "from z"
        await silence(n, 0.3)
        await silence(z, 0.1)
        await _close_all([e, n, z])
    run_async(go(), 20)


def case_percent_encoded(b):
    """Room names are compared after percent-decoding; '+' in a path is a plain '+'."""
    pairs_same = [("/room/%61bc", "/room/abc"),
                  ("/room/caf%C3%A9", "/room/caf%c3%a9"),
                  ("/room/sp%20ace", "/room/sp%20ace?echo=0"),
                  ("/room/plus+sign", "/room/plus%2Bsign"),
                  ("/room/%E2%9C%93", "/room/%e2%9c%93")]
    pairs_diff = [("/room/plus+x", "/room/plus%20x"), ("/room/Abc", "/room/abc")]

    async def go():
        for x, y in pairs_same:
            a = await ws_connect(b.url + x)
            c = await ws_connect(b.url + y)
            await settle(b.url, y, [a, c])
            await a.send("via " + x)
            try:
                got = await rx(c, 3)
            except asyncio.TimeoutError:
                raise AssertionError("%s and %s are not the same room" % (x, y)) from None
            assert got == "via " + x
            await _close_all([a, c])
        for x, y in pairs_diff:
            a = await ws_connect(b.url + x)
            c = await ws_connect(b.url + y)
            await settle(b.url, x, [a])
            await settle(b.url, y, [c])
            await a.send("via " + x)
            try:
                await silence(c, 0.5)
            except AssertionError:
                raise AssertionError("%s and %s are the same room" % (x, y)) from None
            await _close_all([a, c])
    run_async(go(), 30)


def case_cross_shard_room(b):
    """40 members of one room (spread by the kernel over the shards' listeners): each member's
    message reaches the 39 others exactly once."""
    n = 40

    async def go():
        conns = await _members(b, "/room/big", n)
        await settle(b.url, "/room/big", conns)
        for i, c in enumerate(conns):
            await c.send("from %d" % i)

        async def collect(i, c):
            got = []
            for _ in range(n - 1):
                try:
                    got.append(await rx(c, 10))
                except asyncio.TimeoutError:
                    break
            want = {"from %d" % j for j in range(n) if j != i}
            assert sorted(got) == sorted(want), "member %d: missing %s, unexpected %s" % (
                i, sorted(want - set(got))[:5], sorted(set(got) - want)[:5])
            await silence(c, 0.05)
        await asyncio.gather(*(collect(i, c) for i, c in enumerate(conns)))
        await _close_all(conns)
    run_async(go(), 40)


def case_ordering(b):
    """4 publishers send 2,000 numbered messages each, all at once, into a room with 12 more
    members across the shards: every member sees each publisher's numbers strictly increasing
    with no gap, and publishers do not see their own."""
    nr_pub, nr_sub, count = 4, 12, 2000

    async def go():
        pubs = await _members(b, "/room/order", nr_pub)
        subs = await _members(b, "/room/order", nr_sub)
        await settle(b.url, "/room/order", pubs + subs)

        async def publish(p, ws):
            for n in range(count):
                await ws.send("%d:%d" % (p, n))
                if n % 200 == 0:
                    await asyncio.sleep(0)

        async def check(who, ws, expect_from):
            nxt = {p: 0 for p in expect_from}
            total = count * len(expect_from)
            for k in range(total):
                try:
                    m = await rx(ws, 15)
                except asyncio.TimeoutError:
                    raise AssertionError("%s: stalled after %d of %d messages, next expected %r"
                                         % (who, k, total, nxt)) from None
                p, _, n = m.partition(":")
                p, n = int(p), int(n)
                assert p in nxt, "%s got a message from publisher %d (itself?)" % (who, p)
                assert n == nxt[p], "%s: publisher %d sent #%d next but #%d arrived" % (
                    who, p, nxt[p], n)
                nxt[p] = n + 1
            await silence(ws, 0.1)

        checks = [check("member %d" % i, ws, list(range(nr_pub))) for i, ws in enumerate(subs)]
        checks += [check("publisher %d" % p, ws, [q for q in range(nr_pub) if q != p])
                   for p, ws in enumerate(pubs)]
        await asyncio.gather(*(publish(p, ws) for p, ws in enumerate(pubs)), *checks)
        await _close_all(pubs + subs)
    run_async(go(), 50)


def case_isolation(b):
    """50 rooms of 3: each member hears its own room's two other members and nothing else."""
    nr_rooms = 50

    async def go():
        rooms = []
        for r in range(nr_rooms):
            rooms.append(await _members(b, "/room/iso-%d" % r, 3))
        await asyncio.gather(*(settle(b.url, "/room/iso-%d" % r, room)
                               for r, room in enumerate(rooms)))
        for r, room in enumerate(rooms):
            for j, c in enumerate(room):
                await c.send("%d/%d" % (r, j))

        async def collect(r, j, c):
            got = sorted([await rx(c, 10), await rx(c, 10)])
            want = sorted("%d/%d" % (r, k) for k in range(3) if k != j)
            assert got == want, "room %d member %d got %r, want %r" % (r, j, got, want)
            await silence(c, 0.3)
        await asyncio.gather(*(collect(r, j, c) for r, room in enumerate(rooms)
                               for j, c in enumerate(room)))
        await _close_all([c for room in rooms for c in room])
    run_async(go(), 40)


def case_leave(b):
    """A member that leaves (clean close, or RST) stops receiving; the others go on."""
    async def go():
        a, m, c = await _members(b, "/room/leave", 3)
        await settle(b.url, "/room/leave", [a, m, c])
        await c.close()
        for i in range(100):
            await a.send("after close %d" % i)
        for i in range(100):
            assert await rx(m) == "after close %d" % i
        with RawWS(b.port, "/room/leave") as r:
            await settle(b.url, "/room/leave", [a, m], raw=[r])
            await a.send("to three")
            got = await asyncio.get_running_loop().run_in_executor(None, _raw_rx, r, 5)
            assert got == (OP_TEXT, b"to three"), "raw member got %r" % (got,)
            assert await rx(m) == "to three"
            r.rst()
        for i in range(100):
            await a.send("after rst %d" % i)
        for i in range(100):
            assert await rx(m) == "after rst %d" % i
        await silence(a, 0.2)
        await _close_all([a, m])
    run_async(go(), 20)


def case_no_data_after_close(b):
    """A member that sends a close frame while the room is busy gets the broker's close frame,
    and no data frame after it (RFC 6455 5.5.1); then the connection ends."""
    async def go():
        a = await ws_connect(b.url + "/room/busy")
        with RawWS(b.port, "/room/busy") as r:
            await settle(b.url, "/room/busy", [a], raw=[r])

            async def publish():
                for i in range(2000):
                    await a.send("busy %d" % i)
                    if i % 50 == 0:
                        await asyncio.sleep(0.001)
            t = asyncio.ensure_future(publish())
            await asyncio.sleep(0.05)
            r.close(1000)
            frames, how = await asyncio.get_running_loop().run_in_executor(
                None, r.read_until_end, 5)
            await t
            ops = [f.opcode for f in frames]
            assert OP_CLOSE in ops, "no close frame from the broker (%s after %d frames)" % (
                how, len(frames))
            after = ops[ops.index(OP_CLOSE) + 1:]
            assert not after, "%d frames after the broker's close frame" % len(after)
            assert how in ("eof", "reset"), "connection still open after the close handshake"
        await a.close()
    run_async(go(), 20)


def case_rejoin_other_room(b):
    """A client that left room A and joined room B hears B only."""
    async def go():
        pa = await ws_connect(b.url + "/room/ra")
        pb = await ws_connect(b.url + "/room/rb")
        x = await ws_connect(b.url + "/room/ra")
        await settle(b.url, "/room/ra", [pa, x])
        await pa.send("a1")
        assert await rx(x) == "a1"
        await x.close()
        x = await ws_connect(b.url + "/room/rb")
        await settle(b.url, "/room/rb", [pb, x])
        await pa.send("a2")
        await pb.send("b1")
        assert await rx(x) == "b1"
        await silence(x, 0.3)
        await _close_all([pa, pb, x])
    run_async(go(), 20)


def case_random_traffic(b):
    """Ten members of one room send random-size text and binary messages at random; every
    member ends with exactly the others' messages, per sender in order."""
    n, per = 10, 100
    rnd = random.Random(7)
    # Sizes under 800 bytes: a member's whole intake (9 x 100 messages) stays under the default
    # --send-queue of 1 MiB even if the test client falls behind on a loaded machine.
    plan = [[(rnd.random() < 0.5, rnd.randrange(0, 800)) for _ in range(per)] for _ in range(n)]

    def body(i, k, is_text, size):
        head = "%d:%d:" % (i, k)
        return (head + "x" * size) if is_text else (head.encode() + bytes(size))

    async def go():
        conns = await _members(b, "/room/rand", n)
        await settle(b.url, "/room/rand", conns)

        async def send(i, c):
            for k, (t, size) in enumerate(plan[i]):
                await c.send(body(i, k, t, size))
                if rnd.random() < 0.2:
                    await asyncio.sleep(0.001)

        async def recv(i, c):
            nxt = {j: 0 for j in range(n) if j != i}
            for _ in range(per * (n - 1)):
                m = await rx(c, 10)
                head = (m if isinstance(m, str) else m.decode("latin-1")).split(":", 2)
                j, k = int(head[0]), int(head[1])
                assert j != i, "member %d got its own message" % i
                assert k == nxt[j], "member %d: from %d expected #%d got #%d" % (i, j, nxt[j], k)
                t, size = plan[j][k]
                assert m == body(j, k, t, size), "member %d: message %d/%d altered" % (i, j, k)
                nxt[j] += 1
        await asyncio.gather(*(send(i, c) for i, c in enumerate(conns)),
                             *(recv(i, c) for i, c in enumerate(conns)))
        await _close_all(conns)
    run_async(go(), 40)


def main():
    r = Runner()
    with Broker("--shards", "4") as b:
        for name, fn in [("basic publish, sender excluded", case_basic),
                         ("verbatim, same opcode", case_verbatim_opcodes),
                         ("fragmented publish", case_fragmented_publish),
                         ("?echo=1 includes the sender", case_echo_param),
                         ("percent-encoded room names", case_percent_encoded),
                         ("room of 40 across 4 shards", case_cross_shard_room),
                         ("per-publisher order, 4 x 2000 messages", case_ordering),
                         ("50 rooms isolated", case_isolation),
                         ("a member that leaves stops receiving", case_leave),
                         ("no data after the close frame", case_no_data_after_close),
                         ("rejoin another room", case_rejoin_other_room),
                         ("random traffic, 10 members", case_random_traffic)]:
            r.run(name, fn, b)
    r.finish()


if __name__ == "__main__":
    main()

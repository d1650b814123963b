# SPDX-License-Identifier: MIT
"""A flood with no --rate-limit must punish the flooder, not its victims (issue 13, part 4).

One client writes 1 KiB messages into a room of 10 as fast as loopback allows, for 8 s, while
the 9 other members read as fast as they can (Python clients: far slower than the broker) and
each publishes a numbered message every 0.25 s. What the issue asks for:

- no member is closed (they read all the time: they are not slow consumers, the flood is just
  faster than any reader), and slow_consumer_close does not move;
- every member's own messages reach the 8 others, all of them, in order;
- the flooder is slowed to what the room can take: it gets no further ahead of the slowest
  member than the queues and socket buffers between them hold (here 32 MiB, against the
  gigabytes a broker that reads without pause accepts from it in 8 s).

How the broker does it: a publisher whose message meets a receiver holding more than a
quarter of --send-queue (or waits with as many bytes for another shard to take them) stops
being read for a while (room.h, ROOM_PAUSE_MS), so TCP slows it; a receiver whose sends stopped
moving is the one cut (test_slow_consumer.py).
"""
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import websockets  # noqa: E402
from harness import Broker, Runner  # noqa: E402
from test_attacks import Flooder  # noqa: E402
from util import http_get, run_async, settle, ws_connect  # noqa: E402

FLOOD_S = 8.0
NR_MEMBERS = 9
OWN_GAP = 0.25
FLOOD_MSG = 1024
# Between the flooder and its slowest reader: that reader's send queue (--send-queue, 1 MiB by
# default), the broker's and the reader's socket buffers (a few MiB each at most on loopback,
# tcp_wmem and tcp_rmem), the flooder's own socket buffers, and the broker's read-ahead.
AHEAD_LIMIT = 32 << 20


def stats(b):
    return json.loads(http_get(b.port, "/stats", want_close=False).body)


def case_flood(b):
    room = "/room/flooded"
    fl = Flooder(b.port, room, limit=FLOOD_S)

    async def go():
        members = [await ws_connect(b.url + room) for _ in range(NR_MEMBERS)]
        await settle(b.url, room, members, raw=[fl.ws])
        closes0 = stats(b)["slow_consumer_close"]
        flood_bytes = [0] * NR_MEMBERS
        own = [[[] for _ in range(NR_MEMBERS)] for _ in range(NR_MEMBERS)]  # [rx][tx] -> seqs
        closed = [None] * NR_MEMBERS
        sent = [0] * NR_MEMBERS
        done = asyncio.Event()

        async def reader(i, m):
            try:
                while True:
                    data = await m.recv()
                    if isinstance(data, bytes):
                        flood_bytes[i] += len(data)
                        continue
                    if data.startswith("own "):
                        _, tx, n = data.split()
                        own[i][int(tx)].append(int(n))
            except websockets.exceptions.ConnectionClosed as e:
                closed[i] = e.rcvd.code if e.rcvd is not None else "no close frame"

        async def publisher(i, m):
            while not done.is_set():
                try:
                    await m.send("own %d %d" % (i, sent[i]))
                except websockets.exceptions.ConnectionClosed:
                    return
                sent[i] += 1
                await asyncio.sleep(OWN_GAP)

        readers = [asyncio.ensure_future(reader(i, m)) for i, m in enumerate(members)]
        pubs = [asyncio.ensure_future(publisher(i, m)) for i, m in enumerate(members)]
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        fl.start()
        await loop.run_in_executor(None, fl.join, FLOOD_S + 5)
        flood_s = time.monotonic() - t0
        done.set()
        await asyncio.gather(*pubs)
        # The flood is over: let the members read what is still queued for them.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if all(closed[i] is not None or
                   all(len(own[i][tx]) >= sent[tx] for tx in range(NR_MEMBERS) if tx != i)
                   for i in range(NR_MEMBERS)):
                break
            await asyncio.sleep(0.1)
        st = stats(b)
        for t in readers:
            t.cancel()
        await asyncio.gather(*(m.close() for m in members), return_exceptions=True)
        return flood_s, flood_bytes, own, closed, sent, st["slow_consumer_close"] - closes0

    flood_s, flood_bytes, own, closed, sent, slow_closes = run_async(go(), 60)
    fl.ws.rst()
    written = fl.sent * FLOOD_MSG
    slowest = min(flood_bytes)
    print("   flooder wrote %.1f MiB in %.1f s (%.0f MiB/s), %s; members read %.1f-%.1f MiB of "
          "it; members closed: %d %r; slow_consumer_close +%d; own messages sent %r" % (
              written / 2**20, flood_s, written / 2**20 / max(flood_s, 0.001),
              "closed with %r" % fl.code if fl.code else "not closed",
              slowest / 2**20, max(flood_bytes) / 2**20,
              sum(c is not None for c in closed), closed, slow_closes, sent))
    problems = []
    if any(c is not None for c in closed):
        problems.append("%d of %d members were closed (%r) while they were reading" % (
            sum(c is not None for c in closed), NR_MEMBERS, closed))
    if slow_closes:
        problems.append("slow_consumer_close rose by %d" % slow_closes)
    lost = []
    for rx in range(NR_MEMBERS):
        for tx in range(NR_MEMBERS):
            if rx != tx and own[rx][tx] != list(range(sent[tx])):
                lost.append((tx, rx, len(own[rx][tx]), sent[tx]))
    if lost:
        problems.append("%d (publisher, member) pairs lost or reordered own messages, e.g. "
                        "member %d got %d of %d from member %d" % (
                            len(lost), lost[0][1], lost[0][2], lost[0][3], lost[0][0]))
    if written - slowest > AHEAD_LIMIT:
        problems.append("the flooder got %.0f MiB ahead of the slowest member: it was not "
                        "slowed" % ((written - slowest) / 2**20))
    assert not problems, "; ".join(problems)


def main():
    r = Runner()
    with Broker("--shards", "2") as b:
        r.run("a flood without --rate-limit slows the flooder; the room's members keep "
              "reading and publishing", case_flood, b)
    r.finish()


if __name__ == "__main__":
    main()

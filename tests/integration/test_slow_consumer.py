# SPDX-License-Identifier: MIT
"""Slow consumers: one member of a room stops reading (a raw socket with a small receive
buffer that reads nothing after the handshake) while a publisher floods the room with 16 KiB
messages. With --slow-consumer close the slow member is closed with 1008; with drop it stays
and later gets a subset of the messages, in order. Either way the other members get every
message and the broker's resident memory stays bounded."""
import asyncio
import os
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker, Runner  # noqa: E402
from util import (OP_BINARY, OP_CLOSE, OP_TEXT, RawWS, rss_bytes, run_async,  # noqa: E402
                  ws_connect)

MSG = 16 * 1024
COUNT = 5000                 # drop: 5000 x 16 KiB = 78 MiB through the room, more than the
                             # RSS limit, so a broker that buffers without bound fails
CLOSE_COUNT = 600            # close: 9.4 MiB, more than the kernel and --send-queue hold for
                             # the slow member; short, so it reads soon after being closed
WINDOW = 8                   # publisher runs at most this far ahead of the good members (128 KiB,
                             # half of --send-queue: a reading member never trips the policy)
RSS_LIMIT = 64 * 1024 * 1024
SEND_QUEUE = 262144


def payload(seq):
    return struct.pack("!I", seq) + bytes([seq & 0xFF]) * (MSG - 4)


def check_payload(data):
    """Returns the sequence number of a flood message, or raises if it is not whole."""
    assert len(data) == MSG, "flood message of %d bytes, want %d" % (len(data), MSG)
    seq = struct.unpack("!I", data[:4])[0]
    fill = bytes([seq & 0xFF])
    assert data[4:] == fill * (MSG - 4), "flood message %d is corrupted" % seq
    return seq


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.base = rss_bytes(pid)
        self.peak = self.base
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.02):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return

    def growth(self):
        return self.peak - self.base


async def flood(b, room, slow, count, nr_good=2):
    """Connects <nr_good> reading members and a publisher to <room>, waits until they and the
    RawWS <slow> hear the publisher, publishes <count> messages paced by the good members, and
    checks that each good member got all of them in order."""
    t0 = time.monotonic()
    good = [await ws_connect(b.url + room) for _ in range(nr_good)]
    pub = await ws_connect(b.url + room)
    for _ in range(100):
        await pub.send("probe")
        try:
            if slow.recv_message(0.1) == (OP_TEXT, b"probe"):
                break
        except TimeoutError:
            continue
    else:
        raise AssertionError("the slow member never heard the publisher")
    # Settle: wait until every good member hears the publisher (joins cross shards).
    for g in good:
        for _ in range(100):
            await pub.send("probe")
            try:
                while await asyncio.wait_for(g.recv(), 0.1) != "probe":
                    pass
                break
            except asyncio.TimeoutError:
                continue
        else:
            raise AssertionError("a good member never heard the publisher")
    got = [0] * nr_good
    t_settled = time.monotonic()
    stall = [0.0]

    async def reader(i, ws):
        last = time.monotonic()
        while got[i] < count:
            m = await asyncio.wait_for(ws.recv(), 20)
            now = time.monotonic()
            stall[0] = max(stall[0], now - last)
            last = now
            if m == "probe":
                continue
            seq = check_payload(m)
            assert seq == got[i], "good member %d: expected #%d, got #%d" % (i, got[i], seq)
            got[i] += 1

    readers = [asyncio.ensure_future(reader(i, ws)) for i, ws in enumerate(good)]
    try:
        for seq in range(count):
            while seq - min(got) > WINDOW:
                done = [t for t in readers if t.done()]
                for t in done:
                    t.result()  # raises the reader's failure
                await asyncio.sleep(0.001)
            await pub.send(payload(seq))
        await asyncio.wait_for(asyncio.gather(*readers), 30)
    finally:
        for t in readers:
            t.cancel()
    print("   settle %.2fs, flood of %d x 16 KiB %.2fs, longest wait for a message %.2fs" % (
        t_settled - t0, count, time.monotonic() - t_settled, stall[0]))
    return good, pub


def case_close(b):
    sampler = RssSampler(b.proc.pid)
    slow = RawWS(b.port, "/room/flood", rcvbuf=4096)
    try:
        sampler.start()

        async def go():
            good, pub = await flood(b, "/room/flood", slow, CLOSE_COUNT)
            await asyncio.gather(*(ws.close() for ws in good + [pub]), return_exceptions=True)
        t0 = time.monotonic()
        run_async(go(), 50)
        flood_s = time.monotonic() - t0
        # Now read at once everything the slow member was sent: a prefix of the flood, then
        # the close frame if the broker got it out before giving up on the connection.
        frames, how = slow.read_until_end(10)
        sampler.stop.set()
        sampler.join()
        seqs = [check_payload(f.payload) for f in frames if f.opcode == OP_BINARY]
        closes = [f.close_code() for f in frames if f.opcode == OP_CLOSE]
        print("   flood %.1fs, slow member got %d of %d messages, close %r, end %s, "
              "RSS %.1f -> %.1f MiB" % (flood_s, len(seqs), CLOSE_COUNT, closes, how,
                                         sampler.base / 2**20, sampler.peak / 2**20))
        assert how in ("eof", "reset"), "slow member still connected after the flood (%s)" % how
        assert len(seqs) < CLOSE_COUNT, "slow member got every message: nothing was enforced"
        assert seqs == list(range(len(seqs))), "slow member's messages are not a prefix " \
            "of the flood: %r..." % seqs[:20]
        if closes:
            assert closes[0] == 1008, "slow member closed with %r, want 1008" % closes[0]
        else:
            print("   (no close frame was readable before the connection ended)")
        assert sampler.growth() < RSS_LIMIT, "broker RSS grew by %.1f MiB" % (
            sampler.growth() / 2**20)
    finally:
        sampler.stop.set()
        slow.rst()


def case_close_others_unaffected(b):
    """After a slow member was closed, the room still works for everyone else."""
    async def go():
        a = await ws_connect(b.url + "/room/flood")
        c = await ws_connect(b.url + "/room/flood")
        for _ in range(100):
            await a.send("still here")
            try:
                if await asyncio.wait_for(c.recv(), 0.1) == "still here":
                    break
            except asyncio.TimeoutError:
                continue
        else:
            raise AssertionError("room no longer delivers after the slow member was closed")
        await a.close()
        await c.close()
    run_async(go(), 20)


def case_drop(b):
    sampler = RssSampler(b.proc.pid)
    slow = RawWS(b.port, "/room/dropflood", rcvbuf=4096)
    try:
        sampler.start()
        state = {}

        async def go():
            good, pub = await flood(b, "/room/dropflood", slow, COUNT)
            state["pub"], state["good"] = pub, good

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(asyncio.wait_for(go(), 50))
            time.sleep(0.3)
            sampler.stop.set()
            sampler.join()
            # The slow member starts reading: what it gets must be whole messages in order.
            seqs, end_seen = [], False
            deadline = time.monotonic() + 20
            sent_end = False
            while time.monotonic() < deadline and not end_seen:
                try:
                    op, data = slow.recv_message(1.0)
                except TimeoutError:  # the backlog is read: publish the end marker
                    if not sent_end:
                        loop.run_until_complete(asyncio.wait_for(state["pub"].send("END"), 5))
                        sent_end = True
                    continue
                if op == OP_TEXT and data in (b"probe", b"END"):
                    end_seen = data == b"END"
                    continue
                seqs.append(check_payload(data))
            print("   slow member got %d of %d messages, RSS %.1f -> %.1f MiB" % (
                len(seqs), COUNT, sampler.base / 2**20, sampler.peak / 2**20))
            assert end_seen, "the slow member never got the message published after the flood"
            bad = [(x, y) for x, y in zip(seqs, seqs[1:]) if y <= x]
            assert not bad, "slow member's messages out of order: %r" % bad[:5]
            assert len(seqs) < COUNT, "slow member got every message: nothing was dropped"
            assert sampler.growth() < RSS_LIMIT, "broker RSS grew by %.1f MiB" % (
                sampler.growth() / 2**20)
            # Still a working connection: it can publish and be heard.
            slow.send_text("slow says hi")
            g = state["good"][0]

            async def hear():
                while True:
                    m = await asyncio.wait_for(g.recv(), 5)
                    if m == "slow says hi":
                        return
            loop.run_until_complete(hear())

            async def close_all():
                await asyncio.gather(*(ws.close() for ws in state["good"] + [state["pub"]]),
                                     return_exceptions=True)
            loop.run_until_complete(close_all())
        finally:
            loop.close()
    finally:
        sampler.stop.set()
        slow.rst()


def main():
    r = Runner()
    with Broker("--shards", "2", "--send-queue", str(SEND_QUEUE),
                "--slow-consumer", "close") as b:
        r.run("close: slow member closed with 1008, others get all, RSS bounded", case_close, b)
        r.run("close: room still delivers afterwards", case_close_others_unaffected, b)
    with Broker("--shards", "2", "--send-queue", str(SEND_QUEUE),
                "--slow-consumer", "drop") as b:
        r.run("drop: slow member stays, gets an ordered subset, RSS bounded", case_drop, b)
    r.finish()


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: MIT
"""Under attack, the other users keep being served.

- Slowloris: request heads trickled a byte at a time are cut at --handshake-timeout, counted
  from the accept and not from the last byte.
- Half-open connections: a TCP connect that sends nothing, a partial request whose sender then
  vanishes without a FIN or a reset (its socket dropped with TCP_REPAIR on, which sends
  nothing; needs CAP_NET_ADMIN, skipped with a note otherwise), and a connect reset at once
  (SO_LINGER 0): the broker holds none of them after the handshake timeout.
- A stalled reader (stops reading, in a room with a steady publisher) is cut by the
  slow-consumer policy with close 1008, while the broker's resident memory grows by about its
  queue limit at most and the room's reading member gets every message in order.
- A client flooding a room is cut by --rate-limit with 1008; a second publisher's messages
  reach the room's other members all, in order, and without delay.

All the while a client on /echo round-trips every 20 ms and its latency is compared with its
latency before the attack, and new clients still connect promptly.

Each case asserts something a broker without the protection would fail: a deadline that
restarts with every byte, a timer that never fires for a silent socket, a queue without bound,
a rate limit that is not enforced, or a loop that one attacker can monopolise.
"""
import asyncio
import errno
import json
import os
import select
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker, Runner  # noqa: E402
from util import (OP_BINARY, OP_CLOSE, OP_TEXT, RawWS, encode_frame, http_get,  # noqa: E402
                  parse_frame, rss_bytes, rst_close, run_async, rx, settle, tcp_conns, wait_for,
                  ws_connect)

HANDSHAKE_TIMEOUT = 2      # --handshake-timeout for the slowloris and half-open broker
# The broker checks its timers on a clock of whole seconds and arms the deadline one second
# late rather than early, so a connection is cut between HANDSHAKE_TIMEOUT and
# HANDSHAKE_TIMEOUT + 1 seconds after its accept. A silent connect is accepted only after
# about a second (TCP_DEFER_ACCEPT), or at once if the kernel's defer period is shorter.
CUT_EARLIEST = HANDSHAKE_TIMEOUT - 0.1
CUT_LATEST = HANDSHAKE_TIMEOUT + 4.0
NR_SLOWLORIS = 40
NR_SILENT = 40
NR_VANISH = 20
NR_RESET = 20
SEND_QUEUE = 256 * 1024
RATE_LIMIT = 100           # messages/s per connection for the flood case


def stats(b):
    return json.loads(http_get(b.port, "/stats", want_close=False).body)


def pctl(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


class EchoProbe(threading.Thread):
    """A well-behaved client: a round trip on /echo every 20 ms, each timed. Any failure (a
    missing or wrong answer, a closed connection) is kept and re-raised by result()."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.ws = RawWS(port, "/echo")
        self.rtts = []
        self.err = None
        self.halt = threading.Event()
        self.mark = 0

    def run(self):
        i = 0
        try:
            while not self.halt.is_set():
                msg = b"probe %d" % i
                t0 = time.monotonic()
                self.ws.send_text(msg)
                op, data = self.ws.recv_message(5)
                if (op, data) != (OP_TEXT, msg):
                    raise AssertionError("echo answered %r to %r" % (data[:40], msg))
                self.rtts.append(time.monotonic() - t0)
                i += 1
                self.halt.wait(0.02)
        except Exception as e:  # noqa: BLE001 - handed to the test thread
            self.err = e

    def warm(self, n=30):
        """Starts the probe and waits for <n> round trips: the latency before the attack."""
        self.start()
        if not wait_for(lambda: len(self.rtts) >= n or self.err, 10) or self.err:
            raise AssertionError("the echo client did not get going: %r" % self.err)
        return self

    def since(self, mark):
        return self.rtts[mark:]

    def result(self):
        self.halt.set()
        self.join(10)
        self.ws.rst()
        if self.err:
            raise AssertionError("the echo client failed during the attack: %r" % self.err)


def check_latency(probe, base_mark, attack_mark, what):
    """Compares the probe's round trips during the attack with those before it."""
    before = probe.since(base_mark)[:attack_mark - base_mark]
    during = probe.since(attack_mark)
    assert len(before) >= 20, "only %d round trips before the attack" % len(before)
    assert len(during) >= 20, "only %d round trips during the attack (%s): the echo client " \
        "was starved" % (len(during), what)
    b50, d50, d99 = pctl(before, 0.5), pctl(during, 0.5), pctl(during, 0.99)
    print("   echo round trip before: p50 %.2f ms; during %s: p50 %.2f ms, p99 %.2f ms, max "
          "%.2f ms (%d round trips)" % (b50 * 1e3, what, d50 * 1e3, d99 * 1e3,
                                        max(during) * 1e3, len(during)))
    # Loopback round trips take well under a millisecond; a broker that spends its loop on
    # the attackers shows up in the tail first. The bounds leave room for a busy CI machine.
    assert d50 < max(10 * b50, 0.005), "echo p50 went from %.2f ms to %.2f ms" % (
        b50 * 1e3, d50 * 1e3)
    assert d99 < 0.1, "echo p99 of %.1f ms during %s" % (d99 * 1e3, what)


# ---------------------------------------------------------------------------------------------
# Slowloris and half-open connections


class Trickler(threading.Thread):
    """Opens <n> connections that each send the start of an upgrade request and then one more
    byte of it every <gap> seconds, never finishing the head. Records, per connection, how many
    seconds after its connect the broker ended it (None while it is open)."""

    HEAD = b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    DRIP = b"X-Slow: " + b"a" * 4000

    def __init__(self, port, n, gap=0.25):
        super().__init__(daemon=True)
        self.socks, self.t0, self.ended, self.pos = [], [], [], []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            self.t0.append(time.monotonic())
            s.sendall(self.HEAD)
            s.setblocking(False)
            self.socks.append(s)
            self.ended.append(None)
            self.pos.append(0)
        self.gap = gap
        self.halt = threading.Event()
        self.sent_after_head = 0

    def _ended(self, i):
        try:
            data = self.socks[i].recv(4096)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return not data  # EOF (anything the broker wrote first is read and ignored)

    def run(self):
        while not self.halt.is_set() and any(e is None for e in self.ended):
            for i, s in enumerate(self.socks):
                if self.ended[i] is not None:
                    continue
                if self._ended(i):
                    self.ended[i] = time.monotonic() - self.t0[i]
                    continue
                try:
                    s.send(self.DRIP[self.pos[i]:self.pos[i] + 1])
                    self.pos[i] += 1
                    self.sent_after_head += 1
                except OSError:
                    self.ended[i] = time.monotonic() - self.t0[i]
            self.halt.wait(self.gap)

    def close(self):
        self.halt.set()
        self.join(5)
        for s in self.socks:
            rst_close(s)


def watch_silent(socks, t0, deadline):
    """Waits until the broker ends each of <socks> (connected at <t0>, sending nothing) or
    <deadline> passes; returns the seconds each took (None: still open)."""
    ended = [None] * len(socks)
    for s in socks:
        s.setblocking(False)
    while time.monotonic() < deadline and any(e is None for e in ended):
        for i, s in enumerate(socks):
            if ended[i] is not None:
                continue
            try:
                if not s.recv(4096):
                    ended[i] = time.monotonic() - t0[i]
            except BlockingIOError:
                pass
            except OSError:
                ended[i] = time.monotonic() - t0[i]
        time.sleep(0.05)
    return ended


def vanish(s):
    """Drops <s> without telling the peer anything: with TCP_REPAIR on, close() sends neither
    a FIN nor a reset, as when a client's machine loses power. Returns False when the
    process may not do that (CAP_NET_ADMIN)."""
    try:
        s.setsockopt(socket.IPPROTO_TCP, 19, 1)  # TCP_REPAIR (linux/tcp.h)
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EACCES):
            s.close()
            return False
        raise
    s.close()
    return True


def case_slowloris_half_open():
    with Broker("--shards", "2", "--handshake-timeout", str(HANDSHAKE_TIMEOUT)) as b:
        probe = EchoProbe(b.port).warm()
        base_conns = tcp_conns(b.port)
        failed0 = stats(b)["handshakes_failed"]
        attack_mark = len(probe.rtts)

        tr = Trickler(b.port, NR_SLOWLORIS)
        silent, silent_t0 = [], []
        for _ in range(NR_SILENT):
            silent.append(socket.create_connection(("127.0.0.1", b.port), timeout=5))
            silent_t0.append(time.monotonic())
        vanished, can_vanish = 0, True
        for _ in range(NR_VANISH):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
            s.sendall(b"GET /room/lobby HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            time.sleep(0.01)
            if not vanish(s):
                can_vanish = False
                break
            vanished += 1
        for _ in range(NR_RESET):
            rst_close(socket.create_connection(("127.0.0.1", b.port), timeout=5))
        t_attack = time.monotonic()
        tr.start()
        try:
            # While the attack is on, newcomers still get in at once.
            slowest = 0.0
            for i in range(20):
                t0 = time.monotonic()
                w = RawWS(b.port, "/room/newcomers")
                slowest = max(slowest, time.monotonic() - t0)
                w.rst()
                time.sleep(0.05)
            silent_ended = watch_silent(silent, silent_t0, t_attack + CUT_LATEST + 1.5)
            wait_for(lambda: all(e is not None for e in tr.ended),
                     max(0.0, t_attack + CUT_LATEST + 1.5 - time.monotonic()))
        finally:
            tr.close()
            for s in silent:
                rst_close(s)
        # Every attacker is gone from the broker's side too (the vanished ones above all: no
        # client socket tells about them).
        wait_for(lambda: tcp_conns(b.port) <= base_conns, 3)
        held = tcp_conns(b.port)
        check_latency(probe, 0, attack_mark, "the attack")
        probe.result()
        st = stats(b)
        slow_t = [e for e in tr.ended if e is not None]
        sil_t = [e for e in silent_ended if e is not None]
        print("   newcomers' slowest upgrade %.1f ms; slowloris cut after %.2f-%.2f s (%d "
              "bytes trickled in all); silent cut after %.2f-%.2f s; %d vanished%s; broker "
              "sockets %d -> %d; handshakes failed +%d" % (
                  slowest * 1e3, min(slow_t or [0]), max(slow_t or [0]), tr.sent_after_head,
                  min(sil_t or [0]), max(sil_t or [0]), vanished,
                  "" if can_vanish else " (TCP_REPAIR not permitted: vanish skipped)",
                  base_conns, held, st["handshakes_failed"] - failed0))
        assert slowest < 0.5, "a newcomer's upgrade took %.0f ms during the attack" % (
            slowest * 1e3)
        assert len(slow_t) == NR_SLOWLORIS, "%d of %d slowloris connections still open " \
            "%.1fs after connecting" % (NR_SLOWLORIS - len(slow_t), NR_SLOWLORIS, CUT_LATEST)
        assert min(slow_t) >= CUT_EARLIEST, "a slowloris connection was cut after %.2fs, " \
            "before --handshake-timeout %d" % (min(slow_t), HANDSHAKE_TIMEOUT)
        assert max(slow_t) <= CUT_LATEST, "a slowloris connection lived %.2fs" % max(slow_t)
        assert len(sil_t) == NR_SILENT, "%d of %d silent connections still open after %.1fs" % (
            NR_SILENT - len(sil_t), NR_SILENT, CUT_LATEST)
        assert min(sil_t) >= CUT_EARLIEST, "a silent connection was cut after %.2fs" % min(sil_t)
        assert max(sil_t) <= CUT_LATEST + 1.0, "a silent connection lived %.2fs" % max(sil_t)
        assert held <= base_conns, "the broker still holds %d sockets, %d before the attack " \
            "(vanished or reset clients not reaped)" % (held, base_conns)
        # Every slowloris and vanished connection was accepted and then failed its handshake.
        want = NR_SLOWLORIS + vanished
        assert st["handshakes_failed"] - failed0 >= want, "handshakes_failed rose by %d, " \
            "want at least %d" % (st["handshakes_failed"] - failed0, want)
        assert st["connections"] == 0, "/stats says %d connections" % st["connections"]


# ---------------------------------------------------------------------------------------------
# A stalled reader


def sanitized(pid):
    """True when process <pid> runs with AddressSanitizer or ThreadSanitizer."""
    with open("/proc/%d/maps" % pid) as f:
        return any("libasan" in line or "libtsan" in line for line in f)


def case_stalled_reader():
    msg_len = 4096
    with Broker("--shards", "2", "--send-queue", str(SEND_QUEUE)) as b:
        probe = EchoProbe(b.port).warm()
        stalled = RawWS(b.port, "/room/stall", rcvbuf=4096)

        async def go():
            pub = await ws_connect(b.url + "/room/stall")
            good = await ws_connect(b.url + "/room/stall")
            await settle(b.url, "/room/stall", [pub, good], raw=[stalled])
            time.sleep(0.5)
            base = rss_bytes(b.proc.pid)
            closes0 = stats(b)["slow_consumer_close"]
            attack_mark = len(probe.rtts)
            peak, seq, cut_at = base, 0, None
            t0 = time.monotonic()
            # A steady publisher, paced by the good member (at most 8 messages ahead), for
            # 3 s and at least 16 MiB: far more than the queue and the kernel's buffers hold
            # for the stalled member, so a broker without a bound would show it.
            while time.monotonic() - t0 < 3 or seq * msg_len < 16 << 20:
                assert time.monotonic() - t0 < 30, "publishing 16 MiB took over 30 s"
                await pub.send(struct.pack("!I", seq) + bytes(msg_len - 4))
                seq += 1
                if seq % 8 == 0:
                    for want in range(seq - 8, seq):
                        got = await rx(good)
                        assert struct.unpack("!I", got[:4])[0] == want, \
                            "the good member got #%d, want #%d" % (
                                struct.unpack("!I", got[:4])[0], want)
                    peak = max(peak, rss_bytes(b.proc.pid))
                    if cut_at is None and stats(b)["slow_consumer_close"] > closes0:
                        cut_at = time.monotonic() - t0
            await pub.close()
            await good.close()
            return base, peak, seq, cut_at, attack_mark

        base, peak, seq, cut_at, attack_mark = run_async(go(), 60)
        frames, how = stalled.read_until_end(5)
        stalled.rst()
        check_latency(probe, 0, attack_mark, "the stalled reader")
        probe.result()
        seqs = [struct.unpack("!I", f.payload[:4])[0] for f in frames
                if f.opcode == OP_BINARY]
        closes = [f.close_code() for f in frames if f.opcode == OP_CLOSE]
        print("   %d x %d B published (%.1f MiB); stalled member cut after %s s, had %d "
              "messages readable, close %r; broker RSS %.1f -> peak %.1f MiB (+%d KiB)" % (
                  seq, msg_len, seq * msg_len / 2**20,
                  "%.2f" % cut_at if cut_at is not None else "never", len(seqs), closes,
                  base / 2**20, peak / 2**20, (peak - base) >> 10))
        assert cut_at is not None, "the stalled reader was never cut (slow_consumer_close " \
            "did not move)"
        assert closes == [1008], "the stalled reader got close %r, want [1008]" % closes
        assert how in ("eof", "reset"), "the stalled reader is still connected"
        assert seqs == list(range(len(seqs))), "the stalled reader's messages are not a " \
            "prefix of what was published"
        # Its queue (256 KiB), the messages shared with the good member and allocator slack:
        # a few MiB at most, against the 16 MiB published. A sanitizer build holds freed
        # memory in its quarantine and adds shadow memory, so its RSS says nothing of the
        # broker's own: the bound is checked on the plain build (the release preset runs it).
        if sanitized(b.proc.pid):
            print("   RSS bound not checked: a sanitizer build", flush=True)
            return
        assert peak - base < 4 << 20, "broker RSS grew by %.1f MiB with a %d KiB send queue" % (
            (peak - base) / 2**20, SEND_QUEUE >> 10)


# ---------------------------------------------------------------------------------------------
# A flood cut by --rate-limit


class Flooder(threading.Thread):
    """Writes 1 KiB binary messages into a room as fast as the socket takes them and goes on
    writing after the broker's close frame, as an attacker would, until the broker ends the
    connection or <limit> seconds pass. Records when the close frame came (<closed_at>, its
    code in <code>) and when the connection ended (<ended_at>), in seconds from the start."""

    def __init__(self, port, room, limit=15.0):
        super().__init__(daemon=True)
        self.ws = RawWS(port, room)
        self.sent = 0
        self.limit = limit
        self.closed_at = self.ended_at = self.code = None

    def _read_side(self, t0):
        """Reads what the broker sent; returns False once it ended the connection."""
        try:
            chunk = self.ws.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not chunk:
            return False
        self.ws.buf += chunk
        while True:
            f, n = parse_frame(self.ws.buf)
            if f is None:
                return True
            del self.ws.buf[:n]
            if f.opcode == OP_CLOSE and self.closed_at is None:
                self.closed_at, self.code = time.monotonic() - t0, f.close_code()

    def run(self):
        batch = encode_frame(OP_BINARY, b"F" * 1024) * 32
        pending = memoryview(b"")
        sock = self.ws.sock
        sock.setblocking(False)
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.limit:
            r, w, _ = select.select([sock], [sock], [], 0.2)
            if r and not self._read_side(t0):
                self.ended_at = time.monotonic() - t0
                return
            if w:
                if not pending:
                    pending = memoryview(batch)
                    self.sent += 32
                try:
                    pending = pending[sock.send(pending):]
                except BlockingIOError:
                    pass
                except OSError:
                    self._read_side(t0)
                    self.ended_at = time.monotonic() - t0
                    return


def case_rate_limited_flood():
    count, gap = 200, 0.02
    with Broker("--shards", "2", "--rate-limit", str(RATE_LIMIT)) as b:
        probe = EchoProbe(b.port).warm()
        fl = Flooder(b.port, "/room/flood")

        async def go():
            pub = await ws_connect(b.url + "/room/flood")
            members = [await ws_connect(b.url + "/room/flood") for _ in range(3)]
            await settle(b.url, "/room/flood", [pub] + members, raw=[fl.ws])
            attack_mark = len(probe.rtts)
            closes0 = stats(b)["slow_consumer_close"]
            fl.start()
            got = [[] for _ in members]
            lat = []

            async def reader(i, m):
                while len(got[i]) < count:
                    data = await rx(m, 10)
                    if isinstance(data, bytes):
                        continue  # the flood, until the broker cut it
                    n, _, stamp = data.partition(" ")
                    got[i].append(int(n))
                    lat.append(time.monotonic() - float(stamp))

            readers = [asyncio.ensure_future(reader(i, m)) for i, m in enumerate(members)]
            for n in range(count):  # 50/s: under the limit
                await pub.send("%d %.6f" % (n, time.monotonic()))
                await asyncio.sleep(gap)
            await asyncio.wait_for(asyncio.gather(*readers), 15)
            st = stats(b)
            await asyncio.gather(*(m.close() for m in members + [pub]), return_exceptions=True)
            return got, lat, attack_mark, st["slow_consumer_close"] - closes0

        try:
            got, lat, attack_mark, slow_closes = run_async(go(), 60)
        finally:
            fl.join(fl.limit + 1)
            fl.ws.rst()
        check_latency(probe, 0, attack_mark, "the flood")
        probe.result()
        print("   flooder sent %d KiB messages (limit %d/s), got close %r after %s s, "
              "writing on, and the connection ended after %s s; the second publisher's %d "
              "messages: latency p50 %.2f ms, p99 %.2f ms, max %.2f ms" % (
                  fl.sent, RATE_LIMIT, fl.code, fl.closed_at and "%.2f" % fl.closed_at,
                  fl.ended_at and "%.2f" % fl.ended_at, count, pctl(lat, 0.5) * 1e3,
                  pctl(lat, 0.99) * 1e3, max(lat) * 1e3))
        assert fl.code == 1008, "the flooder got close %r, want 1008" % fl.code
        assert fl.closed_at < 2.0, "the flooder's close came after %.2fs" % fl.closed_at
        # After its close frame the broker waits a short while for the answer (2 s, counted in
        # whole seconds) while the flooder keeps writing: then it must let go.
        assert fl.ended_at is not None, "the flooder is still connected after %.0fs of " \
            "writing on after its close frame" % fl.limit
        assert fl.ended_at - fl.closed_at < 5.0, "the broker kept reading the flooder for " \
            "%.1fs after closing it" % (fl.ended_at - fl.closed_at)
        for i, g in enumerate(got):
            assert g == list(range(count)), "member %d got the second publisher's messages " \
                "with gaps or out of order: %r..." % (i, g[:20])
        assert slow_closes == 0, "%d members were closed as slow consumers" % slow_closes
        assert pctl(lat, 0.99) < 0.1, "the second publisher's p99 latency was %.1f ms" % (
            pctl(lat, 0.99) * 1e3)


def main():
    r = Runner()
    r.run("slowloris and half-open connections cut at --handshake-timeout; echo unaffected",
          case_slowloris_half_open)
    r.run("a stalled reader cut with 1008, RSS bounded by its queue; others served",
          case_stalled_reader)
    r.run("a flooder cut by --rate-limit with 1008; the room's other publisher unaffected",
          case_rate_limited_flood)
    r.finish()


if __name__ == "__main__":
    main()

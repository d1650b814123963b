# SPDX-License-Identifier: MIT
"""The soak's load, sampler and verdict (bench/soak.sh starts the broker and calls this).

For --duration seconds, against one broker on 127.0.0.1:
- chat churn with ringcast-bench: back-to-back `chat` runs of at most 15 s each, 180 clients
  in rooms of 10 over ws://, and beside them 20 clients over wss:// (10% TLS, session
  resumption after each run's first handshake); every run connects, chats and disconnects;
- short-lived Python clients, ten a second: connect (one in ten over wss://, verifying the
  certificate), join one of ten rooms, send one to three messages, read, close;
- a firehose room (one publisher, 4 KiB messages, 100 a second, and one reader) that two new
  members join every 15 s and never read from: the slow-consumer policy must cut them;
- every 5 s two clients that vanish without a FIN or a reset (their socket dropped with
  TCP_REPAIR on), one after its upgrade into a room and one in the middle of its request
  (without CAP_NET_ADMIN they stay silent and open until the end instead);
- a sample every --sample seconds of the broker's RSS (/proc/PID/status), its open descriptors
  (/proc/PID/fd: the io_uring direct descriptors holding the sockets are not in there, so this
  one must stay flat), the TCP sockets it holds on its two ports (/proc/net/tcp: what the
  kernel says the broker's descriptor slots hold), and from GET /stats its connections, rooms,
  send-queue bytes, TLS handshakes and counters; one CSV line each.

Then the load stops, and within 30 s every gauge must be back to its value before the load
(connections, sockets, descriptors, rooms, queued bytes, TLS handshakes), the RSS within 5%
of its value at the end of the warm-up (a tenth of the run, at least 60 s), every
ringcast-bench run clean (exit 0: all held, nothing lost or reordered), every short-lived
client served, and each firehose staller cut. Exit status 0 when all of that holds, 1 if not.
"""
import argparse
import asyncio
import json
import os
import random
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import websockets  # noqa: E402
from util import (RawWS, http_get, rss_bytes, rst_close, tcp_conns,  # noqa: E402
                  upgrade_request)

FIELDS = ["t_s", "phase", "rss_kib", "connections", "tcp_sockets", "fds", "rooms",
          "send_queue_bytes", "tls_active", "tls_waiting", "accepted", "handshakes_failed",
          "slow_consumer_close", "messages_delivered"]
GAUGES = ["connections", "tcp_sockets", "fds", "rooms", "send_queue_bytes", "tls_active",
          "tls_waiting"]
CYCLE_S = 15          # longest ringcast-bench run
FIREHOSE_MSG = 4096
FIREHOSE_RATE = 100   # messages/s
STALL_EVERY_S = 15
VANISH_EVERY_S = 5
CHURN_PER_S = 10
QUIESCE_S = 30
# The heap of 4 shard threads keeps growing for the first minute of this load, then levels
# off (1.5 MiB in the first 60 s, 0.3 MiB in the next 50, measured): the RSS to compare with
# is the one after that, or after a tenth of a long run.
WARMUP_MIN_S = 60


def log(msg):
    print("soak: " + msg, flush=True)


class Soak:
    def __init__(self, a):
        self.a = a
        self.t0 = time.monotonic()
        self.end = self.t0 + a.duration
        self.halt = threading.Event()
        self.errors = []        # what went wrong, in words
        self.lock = threading.Lock()
        self.bench_runs = []    # (kind, exit status, summary)
        self.churn = {"ok": 0, "failed": 0, "tls": 0, "first_error": None}
        self.stallers = []      # (RawWS, created at)
        self.vanished = {"upgraded": 0, "mid_request": 0, "silent_fallback": []}
        self.repair_ok = True
        self.rows = []
        self.csv = open(os.path.join(a.out, "soak.csv"), "w")
        self.csv.write(",".join(FIELDS) + "\n")
        open(os.path.join(a.out, "bench.jsonl"), "w").close()  # one line per run, this soak

    def err(self, msg):
        with self.lock:
            self.errors.append(msg)
        log("ERROR: " + msg)

    def left(self):
        return self.end - time.monotonic()

    # -- sampling ----------------------------------------------------------------------------

    def sample(self, phase):
        st = json.loads(http_get(self.a.port, "/stats", want_close=False).body)
        row = {
            "t_s": round(time.monotonic() - self.t0, 1), "phase": phase,
            "rss_kib": rss_bytes(self.a.pid) >> 10,
            "connections": st["connections"],
            "tcp_sockets": tcp_conns(self.a.port) + tcp_conns(self.a.tls_port),
            "fds": len(os.listdir("/proc/%d/fd" % self.a.pid)),
            "rooms": st["rooms"], "send_queue_bytes": st["send_queue_bytes"],
            "tls_active": st["tls_handshakes_active"],
            "tls_waiting": st["tls_handshakes_waiting"],
            "accepted": st["accepted"], "handshakes_failed": st["handshakes_failed"],
            "slow_consumer_close": st["slow_consumer_close"],
            "messages_delivered": st["messages_delivered"],
        }
        with self.lock:  # the sampler thread and the main thread both sample
            self.rows.append(row)
            self.csv.write(",".join(str(row[f]) for f in FIELDS) + "\n")
            self.csv.flush()
        return row

    def sampler(self):
        while not self.halt.wait(self.a.sample):
            try:
                r = self.sample("load")
            except Exception as e:  # noqa: BLE001 - the broker must answer throughout
                self.err("sample at %.0fs failed: %r" % (time.monotonic() - self.t0, e))
                continue
            log("%5.0fs  RSS %6.1f MiB  conns %5d  sockets %5d  rooms %4d  queued %8d B  "
                "slow-closed %d" % (r["t_s"], r["rss_kib"] / 1024, r["connections"],
                                    r["tcp_sockets"], r["rooms"], r["send_queue_bytes"],
                                    r["slow_consumer_close"]))

    # -- ringcast-bench chat churn -----------------------------------------------------------

    def bench_loop(self, kind):
        if kind == "ws":
            url = "ws://127.0.0.1:%d/room/" % self.a.port
            extra = ["--connections", "180", "--room-size", "10", "--rate", "360"]
        else:
            url = "wss://127.0.0.1:%d/room/tls" % self.a.tls_port
            extra = ["--connections", "20", "--room-size", "10", "--rate", "40", "--tls-resume"]
        while not self.halt.is_set() and self.left() > 6:
            d = int(min(CYCLE_S, self.left() - 5))
            cmd = [self.a.bench, "chat", "--url", url, "--duration", str(d), "--drain", "2",
                   "--workers", "1", "--json", "--quiet"] + extra
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=d + 60)
            except subprocess.TimeoutExpired:
                self.err("%s bench run of %ds did not end in %ds" % (kind, d, d + 60))
                continue
            line = next((ln for ln in p.stdout.splitlines() if ln.startswith("{")), "{}")
            with open(os.path.join(self.a.out, "bench.jsonl"), "a") as f:
                f.write(line + "\n")
            rec = json.loads(line)
            msgs = rec.get("messages", {})
            summary = "%s: exit %d, %s/%s delivered, lost %s" % (
                kind, p.returncode, msgs.get("received"), msgs.get("expected"),
                msgs.get("lost"))
            self.bench_runs.append((kind, p.returncode, summary))
            if p.returncode != 0:
                self.err("ringcast-bench %s\n%s" % (summary, p.stderr[-1500:]))

    # -- short-lived Python clients ----------------------------------------------------------

    async def one_client(self, ctx, n):
        tls = n % 10 == 0
        url = ("wss://127.0.0.1:%d" % self.a.tls_port) if tls else \
            ("ws://127.0.0.1:%d" % self.a.port)
        room = "/room/churn-%d" % (n % 10)
        try:
            async with websockets.connect(url + room, ssl=ctx if tls else None,
                                          compression=None, open_timeout=10,
                                          close_timeout=5, ping_interval=None) as ws:
                for i in range(random.randint(1, 3)):
                    await ws.send("churn %d.%d" % (n, i))
                try:  # whatever the room's other members said meanwhile
                    await asyncio.wait_for(ws.recv(), 0.2)
                except asyncio.TimeoutError:
                    pass
            self.churn["ok"] += 1
            self.churn["tls"] += tls
        except Exception as e:  # noqa: BLE001 - counted and reported
            self.churn["failed"] += 1
            if self.churn["first_error"] is None:
                self.churn["first_error"] = "%s client %d: %r" % (
                    "wss" if tls else "ws", n, e)

    async def churn_main(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.a.ca)
        tasks, n = set(), 0
        while not self.halt.is_set() and self.left() > 2:
            t = asyncio.ensure_future(self.one_client(ctx, n))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            n += 1
            await asyncio.sleep(1.0 / CHURN_PER_S)
        if tasks:
            await asyncio.wait(tasks, timeout=20)

    def churn_loop(self):
        asyncio.run(self.churn_main())

    # -- the firehose and its stalled readers ------------------------------------------------

    def firehose(self):
        room = "/room/firehose"
        reader = RawWS(self.a.port, room)
        pub = RawWS(self.a.port, room)
        got = [0]
        done = threading.Event()  # set before we close the reader ourselves

        def read():
            while not (self.halt.is_set() or done.is_set()):
                try:
                    reader.recv_message(1.0)
                    got[0] += 1
                except socket.timeout:
                    continue
                except Exception as e:  # noqa: BLE001
                    if not (self.halt.is_set() or done.is_set()):
                        self.err("the firehose reader failed: %r" % e)
                    return

        rt = threading.Thread(target=read, daemon=True)
        rt.start()
        seq, next_stall = 0, time.monotonic() + 2
        t_start = time.monotonic()
        while not self.halt.is_set() and self.left() > 3:
            now = time.monotonic()
            if now >= next_stall and self.left() > STALL_EVERY_S:
                for _ in range(2):
                    self.stallers.append((RawWS(self.a.port, room, rcvbuf=4096), now))
                next_stall = now + STALL_EVERY_S
            due = t_start + seq / FIREHOSE_RATE
            if due > now:
                time.sleep(due - now)
            try:
                pub.send_binary(struct.pack("!I", seq) + bytes(FIREHOSE_MSG - 4))
            except OSError as e:
                self.err("the firehose publisher failed: %r" % e)
                break
            seq += 1
        self.firehose_sent, self.firehose_got = seq, got
        rt.join(3)
        # Still reading if the load has not halted yet: it must not take our own close (the
        # broker's 1000 answering it) for a failure.
        done.set()
        for w in (pub, reader):
            try:
                w.close(1000)
            except OSError:
                pass
            w.sock.close()

    # -- clients that vanish without a FIN ---------------------------------------------------

    def vanish(self, s):
        """Drops <s> silently: TCP_REPAIR on, then close(), sends neither FIN nor reset."""
        if self.repair_ok:
            try:
                s.setsockopt(socket.IPPROTO_TCP, 19, 1)  # TCP_REPAIR
                s.close()
                return
            except OSError:
                self.repair_ok = False
        self.vanished["silent_fallback"].append(s)  # kept open and silent until the end

    def vanisher(self):
        n = 0
        while not self.halt.wait(VANISH_EVERY_S) and self.left() > 3:
            try:
                w = RawWS(self.a.port, "/room/vanish-%d" % (n % 5))
                w.send_text("about to vanish")
                self.vanish(w.sock)
                self.vanished["upgraded"] += 1
                s = socket.create_connection(("127.0.0.1", self.a.port), timeout=5)
                s.sendall(upgrade_request("/room/vanish")[:30])
                self.vanish(s)
                self.vanished["mid_request"] += 1
            except Exception as e:  # noqa: BLE001
                self.err("a vanishing client could not connect: %r" % e)
            n += 1

    # -- the run -----------------------------------------------------------------------------

    def guard(self, fn, *args):
        """Runs one part of the load; an exception in it is a failure of the soak."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001
            self.err("%s stopped: %r" % (fn.__name__, e))

    def run(self):
        base = self.sample("baseline")
        log("baseline: RSS %.1f MiB, %d descriptors, %d connections, %d rooms" % (
            base["rss_kib"] / 1024, base["fds"], base["connections"], base["rooms"]))
        parts = ((self.sampler, ()), (self.bench_loop, ("ws",)), (self.bench_loop, ("wss",)),
                 (self.churn_loop, ()), (self.firehose, ()), (self.vanisher, ()))
        threads = [threading.Thread(target=self.guard, args=(f,) + args, daemon=True)
                   for f, args in parts]
        for t in threads:
            t.start()
        warmup = max(WARMUP_MIN_S, self.a.duration / 10)
        time.sleep(max(0.0, min(warmup, self.left())))
        warm = self.sample("warm")
        log("after %.0fs of warm-up: RSS %.1f MiB" % (warmup, warm["rss_kib"] / 1024))
        while self.left() > 0:
            time.sleep(min(1.0, max(0.0, self.left())))
        self.halt.set()
        for t in threads:
            t.join(90)
            if t.is_alive():
                self.err("a load thread did not stop within 90 s")
        # What the load left behind, ended the way each kind ends: stallers are still
        # connected unless the broker cut them; silent fallbacks go away with a reset.
        stalls_due = [w for w, at in self.stallers if at < self.end - STALL_EVERY_S]
        for w, _ in self.stallers:
            rst_close(w.sock)
        for s in self.vanished["silent_fallback"]:
            rst_close(s)
        # Quiesce: every gauge back to its baseline.
        deadline = time.monotonic() + QUIESCE_S
        while True:
            final = self.sample("end")
            off = [g for g in GAUGES if final[g] != base[g]]
            if not off or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.csv.close()
        return self.verdict(base, warm, final, off, stalls_due)

    def verdict(self, base, warm, final, off, stalls_due):
        for g in off:
            self.err("%s is %d %.0fs after the load stopped, %d before it" % (
                g, final[g], QUIESCE_S, base[g]))
        limit = warm["rss_kib"] * 1.05
        post = [r["rss_kib"] for r in self.rows if r["phase"] == "load" and
                r["t_s"] >= warm["t_s"]]
        log("RSS: baseline %.1f MiB, after warm-up %.1f MiB, highest after warm-up %.1f MiB, "
            "at the end %.1f MiB (limit %.1f MiB)" % (
                base["rss_kib"] / 1024, warm["rss_kib"] / 1024, max(post or [0]) / 1024,
                final["rss_kib"] / 1024, limit / 1024))
        if final["rss_kib"] > limit:
            self.err("RSS %.1f MiB at the end, more than 5%% over its %.1f MiB after warm-up" %
                     (final["rss_kib"] / 1024, warm["rss_kib"] / 1024))
        runs = len(self.bench_runs)
        bad = [s for _, rc, s in self.bench_runs if rc != 0]
        log("ringcast-bench: %d runs, %d not clean" % (runs, len(bad)))
        if runs == 0:
            self.err("no ringcast-bench run completed")
        c = self.churn
        log("short-lived clients: %d served (%d over wss), %d failed%s" % (
            c["ok"], c["tls"], c["failed"],
            "; first: " + c["first_error"] if c["first_error"] else ""))
        if c["failed"]:
            self.err("%d short-lived clients failed" % c["failed"])
        cut = final["slow_consumer_close"] - base["slow_consumer_close"]
        log("firehose: %d messages published, %d read; %d stalled readers joined, %d cut by "
            "the slow-consumer policy" % (getattr(self, "firehose_sent", 0),
                                         getattr(self, "firehose_got", [0])[0],
                                         len(self.stallers), cut))
        if cut < len(stalls_due):
            self.err("%d stalled readers had %d s or more to be cut, %d were" % (
                len(stalls_due), STALL_EVERY_S, cut))
        v = self.vanished
        log("vanished without a FIN: %d after the upgrade, %d mid-request%s" % (
            v["upgraded"], v["mid_request"],
            "" if self.repair_ok else " (TCP_REPAIR refused: they stayed silent instead)"))
        log("handshakes failed: %d; accepted: %d" % (
            final["handshakes_failed"] - base["handshakes_failed"],
            final["accepted"] - base["accepted"]))
        r = http_get(self.a.port, "/healthz", want_close=False)
        if r.status != 200:
            self.err("/healthz answered %d at the end" % r.status)
        summary = {"duration_s": self.a.duration, "baseline": base, "warm": warm,
                   "final": final, "bench_runs": runs, "bench_not_clean": len(bad),
                   "churn": c, "stallers": len(self.stallers), "stallers_cut": cut,
                   "vanished": {k: v[k] for k in ("upgraded", "mid_request")},
                   "errors": self.errors}
        with open(os.path.join(self.a.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        if self.errors:
            log("FAILED: %d problem(s):\n  %s" % (len(self.errors), "\n  ".join(
                e.splitlines()[0] for e in self.errors)))
            return 1
        log("passed: every gauge back to its baseline, RSS within 5% of its warm value")
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True, help="the broker's ws:// port")
    p.add_argument("--tls-port", type=int, required=True, help="the broker's wss:// port")
    p.add_argument("--pid", type=int, required=True, help="the broker's process id")
    p.add_argument("--ca", required=True, help="the broker's certificate (PEM), to verify")
    p.add_argument("--bench", required=True, help="the ringcast-bench binary")
    p.add_argument("--duration", type=int, default=1800, help="seconds of load (1800)")
    p.add_argument("--sample", type=float, default=10, help="seconds between samples (10)")
    p.add_argument("--out", required=True, help="directory for soak.csv and summary.json")
    a = p.parse_args()
    if a.duration < 30:
        p.error("--duration must be at least 30 s")
    sys.exit(Soak(a).run())


if __name__ == "__main__":
    main()

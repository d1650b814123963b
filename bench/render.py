#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Renders the raw results of bench/run.sh into bench/RESULTS.md and bench/results.png.

    bench/render.py OUT_DIR [--markdown FILE] [--png FILE]

OUT_DIR holds what run.sh wrote: meta.env (machine, versions, the command), and per server and
scenario SERVER.ID.{json,cmd,run,perf,stats0,stats1,stderr}: the one JSON line of
ringcast-bench, the exact commands, the run's whole-machine and server CPU, the perf stat
counts of the server's send syscalls, ringcast's /stats before and after. Only what is there is
shown; a figure that was not measured is "n/a". Standard library only; the chart is drawn by
gnuplot when it is installed.
"""
import argparse
import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys

SERVER_ORDER = ["ringcast", "ringcast-proto", "ringcast-nooffload", "bun", "node-ws", "socketio",
                "py-websockets", "centrifugo"]
SERVER_LABEL = {
    "ringcast": "ringcast (C, io_uring)",
    "ringcast-proto": "ringcast, protocol mode (Centrifugo JSON)",
    "centrifugo": "Centrifugo (Go)",
    "bun": "Bun (uWebSockets pub/sub)",
    "node-ws": "Node.js + ws",
    "socketio": "Socket.IO (Node.js)",
    "py-websockets": "Python websockets",
}
NA = "n/a"
# Writes a peer makes to set up one connection: the upgrade answer; Socket.IO also sends its
# Engine.IO open packet and its answer to the namespace CONNECT, one write each.
SETUP_WRITES = {"socketio": 3}


# ------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------

def read_kv(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    out[k] = v
    except OSError:
        pass
    return out


def read_json(path):
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    return json.loads(line)
    except (OSError, ValueError):
        pass
    return None


def read_perf(path):
    """perf stat -x, output: event -> count (None when not counted)."""
    counts = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip() or line.startswith("#"):
                    continue
                parts = line.rstrip("\n").split(",")
                if len(parts) < 3:
                    continue
                try:
                    counts[parts[2]] = int(parts[0])
                except ValueError:
                    counts[parts[2]] = None
    except OSError:
        return None
    return counts or None


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


class Run:
    def __init__(self, out, server, rid):
        base = os.path.join(out, f"{server}.{rid}")
        self.server, self.id = server, rid
        self.j = read_json(base + ".json")
        self.run = read_kv(base + ".run")
        self.perf = read_perf(base + ".perf")
        self.stats0 = read_json(base + ".stats0")
        self.stats1 = read_json(base + ".stats1")
        self.cmd = read_kv_lines(base + ".cmd")
        self.stderr = read_text(base + ".stderr")

    def get(self, *path, default=None):
        v = self.j
        for p in path:
            if not isinstance(v, dict) or p not in v:
                return default
            v = v[p]
        if isinstance(v, float) and math.isnan(v):
            return default
        return v

    @property
    def ok(self):
        return self.j is not None

    def deliveries(self):
        return self.get("messages", "received")

    def frames_per_send(self):
        """(value, how): from ringcast's /stats, or from the perf stat syscall counts."""
        if self.stats0 and self.stats1:
            d = self.stats1.get("messages_delivered", 0) - self.stats0.get("messages_delivered", 0)
            s = self.stats1.get("sends", 0) - self.stats0.get("sends", 0)
            return (d / s, "stats") if s > 0 else (None, None)
        if self.perf and self.deliveries():
            sends = sum(self.perf.get(e) or 0 for e in
                        ("syscalls:sys_enter_sendto", "syscalls:sys_enter_sendmsg",
                         "syscalls:sys_enter_write", "syscalls:sys_enter_writev"))
            # The writes that set each connection up; what is left is (almost all) message
            # sends.
            sends -= (SETUP_WRITES.get(self.server, 1)
                      * self.get("connections", "established", default=0))
            if sends > 0:
                return (self.deliveries() / sends, "syscalls")
        return (None, None)

    def perf_hits_per_delivery(self):
        if not self.perf or not self.deliveries():
            return None
        return sum(v or 0 for v in self.perf.values()) / self.deliveries()

    def other_load(self):
        """CPU used on the machine by anything but the server and the load tool during the
        run, in cores (whole-machine jiffies minus the server's minus the tool's)."""
        try:
            tck = float(self.run["clk_tck"])
            wall = float(self.run["wall_s"])
            busy = int(self.run["machine_busy_jiffies"]) / tck
            srv = int(self.run["server_jiffies"]) / tck
        except (KeyError, ValueError):
            return None
        if "tool_jiffies" in self.run:
            cli = int(self.run["tool_jiffies"]) / tck
        else:
            cli = self.get("client", "cpu_s", default=0.0)
        kth = int(self.run.get("kthread_jiffies", "0")) / tck
        if wall <= 0:
            return None
        return max(0.0, (busy - srv - cli - kth) / wall)

    def tool_share(self):
        return self.get("client", "busiest_worker_core_share")


def read_kv_lines(path):
    out = {}
    for line in read_text(path).splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            out[k] = v
    return out


def load(out):
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "*.cmd"))):
        name = os.path.basename(path)[:-4]
        server, rid = name.split(".", 1)
        runs[(server, rid)] = Run(out, server, rid)
    return runs


# ------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------

def num(v, digits=0):
    if v is None:
        return NA
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ms(us):
    if us is None:
        return NA
    if us < 1000:
        return f"{us / 1000:.2f}"
    if us < 100000:
        return f"{us / 1000:.1f}"
    return f"{us / 1000:,.0f}"


def kib(b):
    return NA if b is None else f"{b / 1024:.2f}"


def pct(v):
    return NA if v is None else f"{v * 100:.0f}%"


def fps(run):
    v, how = run.frames_per_send()
    if v is None:
        return NA
    return f"{v:.2f}" if how == "stats" else f"≈{v:.2f}"


def loss_cell(run):
    exp, rcv = run.get("messages", "expected"), run.get("messages", "received")
    return f"{(1 - rcv / exp) * 100:.2f}%" if exp and rcv is not None else NA


def tool_cell(run):
    share = run.tool_share()
    if share is None:
        return NA
    mark = " ⚠" if share > 0.9 else ""
    return f"{share * 100:.0f}%{mark}"


def other_cell(run):
    o = run.other_load()
    if o is None:
        return NA
    mark = " ⚠" if o > 0.2 else ""
    return f"{o * 100:.0f}%{mark}"


def status_note(run):
    if not run.ok:
        return "no result (see the .stderr file)"
    notes = []
    if run.get("interrupted"):
        notes.append("interrupted")
    err = run.get("error")
    if err:
        notes.append(err)
    rc = run.run.get("rc")
    if rc == "3":
        notes.append("completed with losses or dropped connections (exit status 3)")
    elif rc not in (None, "0"):
        notes.append(f"ringcast-bench exit status {rc}")
    return "; ".join(notes)


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def order(servers):
    known = [s for s in SERVER_ORDER if s in servers]
    return known + sorted(s for s in servers if s not in SERVER_ORDER)


def commands(runs, rid):
    lines = []
    for server in order({s for (s, r) in runs if r == rid}):
        c = runs[(server, rid)].cmd
        lines.append(f"    # {server}")
        if "server" in c:
            lines.append(f"    {c['server']}")
        if "load" in c:
            lines.append(f"    {c['load']}")
    return "\n".join(lines)


def ceiling_deliveries(rs):
    """How close the load tool came to its own limit in these runs."""
    shares = [(r.tool_share(), r) for r in rs if r.tool_share()]
    if not shares:
        return None
    lo, hi = min(v for v, _ in shares), max(v for v, _ in shares)
    text = (f"its busiest worker used {lo * 100:.0f}% to {hi * 100:.0f}% of its "
            f"core in these runs")
    hot = [r for v, r in shares if v > 0.9]
    if hot:
        names = ", ".join(SERVER_LABEL.get(r.server, r.server) for r in hot)
        text += (f"; over 90% for {names}: there the tool, not the server, may have set the "
                 f"figure")
    return text + " (its measured ceiling: see the top of this file)"


def ceiling_handshakes(rs):
    """The tool's own handshake figures are not separable from its connect window and its
    closing work, so the only ceiling stated for HOLD is the one in tools/bench/README.md."""
    return None


# ------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------

def section_hold(runs, meta):
    rs = [runs[(s, "hold")] for s in order({s for (s, r) in runs if r == "hold"})]
    if not rs:
        return None
    n = rs[0].get("params", "connections")
    rows = []
    for r in rs:
        rows.append([
            SERVER_LABEL.get(r.server, r.server),
            num(r.get("connections", "held")),
            num(r.get("connections", "handshake_rate")),
            ms(r.get("connections", "handshake_latency_us", "p50")),
            ms(r.get("connections", "handshake_latency_us", "p99")),
            num(r.get("server", "cpu_us_per_handshake"), 1),
            kib(r.get("server", "rss_per_conn_bytes")),
            kib(r.get("server", "rss_per_conn_held_bytes")),
            num((r.get("server", "rss_peak_kb") or 0) / 1024, 1) if r.ok else NA,
            "—",
            other_cell(r),
            status_note(r),
        ])
    head = ["server", "held", "handshakes/s", "handshake p50 ms", "handshake p99 ms",
            "server CPU µs/handshake", "RSS/conn KiB", "RSS/conn KiB after the hold",
            "peak RSS MiB", "frames/send",
            "other load", "notes"]
    ceil = ceiling_handshakes(rs)
    return (f"## HOLD-{kilo(n)}: idle connections\n\n"
            f"{n:,} connections in rooms of {rs[0].get('params', 'room_size')}, opened as fast "
            f"as the tool's connect window allows, then held for "
            f"{rs[0].get('params', 'duration')} s. RSS/conn is the server's RSS growth from "
            f"before the first connect to all connected, divided by the connections (user "
            f"space only: the kernel's ≈4.5 KB per socket is not in any process's RSS); "
            f"after the hold, the same growth measured at the end of the hold. "
            f"No messages flow, so frames/send does not apply. Handshakes/s is bounded by the "
            f"load tool too (its connect window and its one core): compare the server's CPU "
            f"per handshake and the handshake p99 rather than the rate.\n\n"
            + table(head, rows) + "\n\n"
            + (f"Load tool: {ceil}.\n\n" if ceil else "")
            + "Commands:\n\n" + commands(runs, "hold") + "\n")


def kilo(n):
    if n is None:
        return "?"
    return f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def chat_ids(runs):
    ids = {r for (s, r) in runs if r.startswith("chat-")}
    return sorted(ids, key=lambda i: int(i.split("-", 1)[1]))


def poll_note(r):
    """One sentence on how the load tool waits, the same for every server."""
    p = r.get("params", "poll_us")
    if p is None:
        return ""
    if p == 0:
        return " The load tool blocks as soon as it has nothing to receive (`--poll-us 0`)."
    return (f" After a loop turn that completed something, the load tool polls for {p} µs "
            f"before it blocks (`--poll-us`, tools/bench/README.md), the same for every server.")


def section_chat(runs, meta):
    ids = chat_ids(runs)
    if not ids:
        return None
    first = next(runs[k] for k in runs if k[1] == ids[0])
    n = first.get("params", "connections")
    m = first.get("params", "room_size")
    parts = [f"## CHAT-{kilo(n)}: rooms of {m}, publishers in random order\n\n"
             f"{n:,} clients in rooms of {m}; each publish comes from a member picked at "
             f"random among all clients (as independent users would publish, never in "
             f"connection order) and goes to the {m - 1 if m else '?'} other members. Latency "
             f"is end to end, from the timestamp in the payload to its receipt, after "
             f"{first.get('params', 'warmup')} s of warmup; deliveries/s is over the whole "
             f"publishing time. Server CPU per delivery is the server's CPU time while "
             f"publishing divided by the deliveries."
             + poll_note(first) + "\n"]
    for rid in ids:
        rate = int(rid.split("-", 1)[1])
        rs = [runs[(s, rid)] for s in order({s for (s, r) in runs if r == rid})]
        rows = []
        for r in rs:
            rows.append([
                SERVER_LABEL.get(r.server, r.server),
                num(r.get("messages", "deliveries_per_s")),
                loss_cell(r),
                ms(r.get("messages", "latency_us", "p50")),
                ms(r.get("messages", "latency_us", "p99")),
                num(r.get("server", "cpu_us_per_delivery"), 2),
                fps(r),
                tool_cell(r),
                other_cell(r),
                status_note(r),
            ])
        head = ["server", "deliveries/s", "loss", "p50 ms", "p99 ms", "server CPU µs/delivery",
                "frames/send", "tool core", "other load", "notes"]
        ceil = ceiling_deliveries(rs)
        parts.append(f"### CHAT-{kilo(n)} at {rate:,} publishes/s "
                     f"(offered: {rate * (m - 1):,} deliveries/s)\n\n"
                     + table(head, rows) + "\n\n"
                     + (f"Load tool: {ceil}.\n\n" if ceil else "")
                     + "Commands:\n\n" + commands(runs, rid) + "\n")
    return "\n".join(parts)


def section_fanout(runs, meta):
    rs = [runs[(s, "fanout")] for s in order({s for (s, r) in runs if r == "fanout"})]
    if not rs:
        return None
    n = rs[0].get("params", "connections")
    k = rs[0].get("params", "inflight")
    rows = []
    for r in rs:
        rows.append([
            SERVER_LABEL.get(r.server, r.server),
            num(r.get("messages", "deliveries_per_s")),
            num(r.get("messages", "publish_rate")),
            ms(r.get("messages", "latency_us", "p50")),
            ms(r.get("messages", "latency_us", "p99")),
            num(r.get("server", "cpu_us_per_delivery"), 2),
            fps(r),
            tool_cell(r),
            other_cell(r),
            status_note(r),
        ])
    head = ["server", "deliveries/s", "publishes/s", "p50 ms", "p99 ms",
            "server CPU µs/delivery", "frames/send", "tool core", "other load", "notes"]
    ceil = ceiling_deliveries(rs)
    return (f"## FANOUT-{kilo(n)}: one room of {n:,}\n\n"
            f"One publisher in one room of {n:,}, {k} messages in flight (the next publish "
            f"leaves when one has reached every member), for {rs[0].get('params', 'duration')} s. "
            f"This is the case where a broadcast server can batch: many frames wait for each "
            f"member at once.\n\n"
            + table(head, rows) + "\n\n"
            + (f"Load tool: {ceil}.\n\n" if ceil else "")
            + "Commands:\n\n" + commands(runs, "fanout") + "\n")


def section_maxconn(runs, meta):
    rs = [runs[(s, "maxconn")] for s in order({s for (s, r) in runs if r == "maxconn"})]
    if not rs:
        return None
    target = rs[0].get("params", "connections")
    rows = []
    for r in rs:
        held = r.get("limit", "connections")
        if held is None:
            held = r.get("connections", "limit", "connections")
        rows.append([
            SERVER_LABEL.get(r.server, r.server),
            num(held),
            num(r.get("connections", "established")),
            r.get("connections", "limit", "reason") or r.get("limit", "reason") or NA,
            num((r.get("server", "rss_peak_kb") or 0) / 1024, 0) if r.ok else NA,
            num(r.get("server", "cpu_us_per_handshake"), 1),
            "—",
            other_cell(r),
            status_note(r),
        ])
    head = ["server", "held at the limit", "established", "stopped because", "peak RSS MiB",
            "server CPU µs/handshake", "frames/send", "other load", "notes"]
    nofile = meta.get("nofile", "?")
    return (f"## MAX-CONN: the most connections one process held\n\n"
            f"Connections added at {num(rs[0].get('params', 'rate'))}/s in rooms of "
            f"{rs[0].get('params', 'room_size')} until the server refuses or stalls, or the "
            f"target of {num(target)} is reached (a target, not a limit of the server). Every "
            f"server runs with the same open-file limit, {nofile} here (raising it is not "
            f"permitted on this machine); ringcast holds its sockets as io_uring direct descriptors, which do "
            f"not count against that limit, and is started with `--max-conns` equal to the "
            f"target (it then runs as many shard rings as the slots need, all on CPU "
            f"{meta.get('server_cpu', '0')}).\n\n"
            + table(head, rows) + "\n\n"
            + "Commands:\n\n" + commands(runs, "maxconn") + "\n")


# ------------------------------------------------------------------------------------------
# Chart
# ------------------------------------------------------------------------------------------

TLS_ORDER = ["ringcast", "ringcast-nooffload", "bun"]
TLS_LABEL = {
    "ringcast": "ringcast, record offload on (default)",
    "ringcast-nooffload": "ringcast, `--tls-offload off` (mbedtls records)",
    "bun": "Bun (BoringSSL, uWebSockets)",
}


def tls_runs(runs, rid):
    servers = {s for (s, r) in runs if r == rid}
    known = [s for s in TLS_ORDER if s in servers]
    return [runs[(s, rid)] for s in known + sorted(servers - set(known))]


def tls_label(run):
    return TLS_LABEL.get(run.server, run.server)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def section_wss(runs, meta):
    hold, full, chat = tls_runs(runs, "wss-hold"), tls_runs(runs, "wss-full"), \
        tls_runs(runs, "wss-chat")
    if not (hold or full or chat):
        return None
    any_run = next(r for r in hold + full + chat)
    suites = sorted({r.get("tls", "suite") for r in hold + full + chat if r.get("tls", "suite")})
    parts = ["## WSS: TLS (wss://) on one server core\n\n"
             f"Every server serves the same certificate and key (ECDSA P-256, made by "
             f"`tools/gen-certs.sh` for the run), pinned to CPU {meta.get('server_cpu', '?')} "
             f"like every other run. ringcast-bench's client is mbedtls 2.28, which speaks TLS "
             f"1.2 only, so every server ran TLS 1.2 here; the suites agreed: "
             f"{', '.join('`' + s + '`' for s in suites) or NA}. ringcast runs twice: with its "
             f"own record layer after the handshake (the default) and with `--tls-offload off`, "
             f"mbedtls's record layer for the whole connection; both with their default of 256 "
             f"handshakes under way at once (`--tls-max-handshakes`: later connections wait, "
             f"unread, for a turn).\n"]
    if hold:
        n = hold[0].get("params", "connections")
        rows = []
        for r in hold:
            rows.append([
                tls_label(r),
                num(r.get("connections", "held")),
                kib(r.get("server", "rss_per_conn_held_bytes")),
                kib(r.get("server", "rss_per_conn_bytes")),
                num((r.get("server", "rss_peak_kb") or 0) / 1024, 1) if r.ok else NA,
                num(r.get("tls", "resumed")),
                num(r.get("tls", "resumed_rate")),
                num(r.get("server", "cpu_us_per_handshake"), 1),
                ms(r.get("tls", "resumed_latency_us", "p99")),
                other_cell(r),
                status_note(r),
            ])
        head = ["server", "held", "RSS/conn KiB after the hold", "RSS/conn KiB when all connected",
                "peak RSS MiB", "resumed handshakes", "resumed/s", "server CPU µs/connection",
                "TLS handshake p99 ms", "other load", "notes"]
        parts.append(
            f"### WSS-HOLD-{kilo(n)}: idle wss connections, resumed handshakes\n\n"
            f"{n:,} wss connections in rooms of {hold[0].get('params', 'room_size')}, held for "
            f"{hold[0].get('params', 'duration')} s. Each load-tool worker makes one full "
            f"handshake and resumes that session (ticket) in every later one (`--tls-resume`): "
            f"a full handshake costs the tool more CPU than any of these servers, so without "
            f"resumption the tool's core would set the pace. **RSS/conn after the hold** is "
            f"the server's RSS growth from before the first connect to the end of the hold, "
            f"per connection held: what an idle wss connection costs once the connection storm "
            f"is over. The figure when all had just connected is beside it; the difference is "
            f"memory of handshakes in flight (up to the tool's connect window, "
            f"{meta.get('wss_hold_window', '?')} at once) not yet returned. "
            f"Server CPU per connection covers TCP, the TLS handshake and the upgrade.\n\n"
            + table(head, rows) + "\n\nCommands:\n\n" + commands(runs, "wss-hold") + "\n")
    if full or hold:
        rows = []
        for kind, rs in (("full", full), ("resumed", hold)):
            for r in rs:
                cpu = r.get("server", "cpu_us_per_handshake")
                rows.append([
                    tls_label(r), kind,
                    num(r.get("tls", kind)),
                    num(r.get("tls", f"{kind}_rate")),
                    num(cpu, 1),
                    num(1e6 / cpu) if cpu else NA,
                    ms(r.get("tls", f"{kind}_latency_us", "p50")),
                    ms(r.get("tls", f"{kind}_latency_us", "p99")),
                    num(r.get("client", "cpu_us_per_handshake"), 1),
                    other_cell(r),
                    status_note(r),
                ])
        head = ["server", "handshake", "count", "measured/s", "server CPU µs/connection",
                "→ connections/s per server core", "TLS p50 ms", "TLS p99 ms",
                "tool CPU µs/connection", "other load", "notes"]
        nf = full[0].get("params", "connections") if full else None
        parts.append(
            "### WSS handshakes: full and resumed\n\n"
            + (f"Full: {nf:,} connections, each a full handshake (ECDHE X25519, ECDSA P-256 "
               f"signature), {meta.get('wss_full_window', '?')} in flight at once. "
               if full else "")
            + "Resumed: the WSS-HOLD run above. The measured rate is bounded by the load tool "
              "(its own full handshake costs it more CPU than the servers', on one core): "
              "compare the **server CPU per connection**, and the rate one server core could "
              "sustain at that cost (1,000,000 / CPU µs), rather than the measured rate.\n\n"
            + table(head, rows) + "\n\n"
            + ("Commands:\n\n" + commands(runs, "wss-full") + "\n" if full else ""))
    if chat:
        c0 = chat[0]
        n, m, rate = (c0.get("params", "connections"), c0.get("params", "room_size"),
                      c0.get("params", "rate"))
        rows = []
        for r in chat:
            rows.append([
                tls_label(r),
                num(r.get("messages", "deliveries_per_s")),
                loss_cell(r),
                ms(r.get("messages", "latency_us", "p50")),
                ms(r.get("messages", "latency_us", "p99")),
                num(r.get("server", "cpu_us_per_delivery"), 2),
                kib(r.get("server", "rss_per_conn_bytes")),
                tool_cell(r),
                other_cell(r),
                status_note(r),
            ])
        head = ["server", "deliveries/s", "loss", "p50 ms", "p99 ms", "server CPU µs/delivery",
                "RSS/conn KiB", "tool core", "other load", "notes"]
        parts.append(
            f"### WSS-CHAT-{kilo(n)} at {rate:,.0f} publishes/s (offered: "
            f"{rate * (m - 1):,.0f} deliveries/s)\n\n"
            f"The CHAT scenario over wss: {n:,} clients in rooms of {m}, random publishers, "
            f"{c0.get('params', 'duration')} s after {c0.get('params', 'warmup')} s of warmup, "
            f"connections made with `--tls-resume`. Every delivery is a TLS record the server "
            f"seals for one recipient.\n\n"
            + table(head, rows) + "\n\nCommands:\n\n" + commands(runs, "wss-chat") + "\n")
    parts.append(wss_verdict(hold, full, chat))
    return "\n".join(p for p in parts if p)


def wss_verdict(hold, full, chat):
    """Where mbedtls (ringcast) is slower than Bun's BoringSSL, from the figures above."""
    def pick(rs, server):
        return next((r for r in rs if r.server == server and r.ok), None)

    lines = ["### Where mbedtls is slower than Bun's TLS\n"]
    rows = []
    for name, rs, path in (("full handshake, server CPU µs", full,
                            ("server", "cpu_us_per_handshake")),
                           ("resumed handshake, server CPU µs", hold,
                            ("server", "cpu_us_per_handshake")),
                           ("wss delivery, server CPU µs", chat, ("server", "cpu_us_per_delivery")),
                           ("idle wss connection, RSS B after the hold", hold,
                            ("server", "rss_per_conn_held_bytes"))):
        rc, bun = pick(rs, "ringcast"), pick(rs, "bun")
        a = rc.get(*path) if rc else None
        b = bun.get(*path) if bun else None
        q = ratio(a, b)
        rows.append([name, num(a, 1), num(b, 1),
                     NA if q is None else f"{q:.2f}×",
                     NA if q is None else ("ringcast slower" if q > 1.05 else
                                           "ringcast cheaper" if q < 0.95 else "even")])
    lines.append(table(["cost", "ringcast", "Bun", "ringcast / Bun", ""], rows))
    lines.append("")
    lines.append("Why, from a profile of ringcast during full handshakes (tools/bench/README.md, "
                 "\"Where a full handshake's CPU goes\"): 42% of the samples in mbedtls's "
                 "portable bignum and elliptic-curve code (X25519 and the ECDSA P-256 "
                 "signature) and 13% in the allocations that code makes; BoringSSL has "
                 "assembly for both curves. Once a connection is established the record layer "
                 "is ringcast's own (the offload), on mbedtls's AES-GCM.")
    return "\n".join(lines) + "\n"


def chart_title(runs, meta):
    title = "ringcast and peers, same load, server on one core"
    if meta.get("mode") == "quick":
        title += " (--quick sizes)"
    busy = sum(1 for r in runs.values() if (r.other_load() or 0) > 0.2)
    if busy:
        title += (f"; {busy} of {len(runs)} runs on a busy machine (other load ⚠ in "
                  f"bench/RESULTS.md)")
    else:
        title += "; see bench/RESULTS.md"
    return title


def chart(runs, png, workdir, meta=None):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        return "gnuplot is not installed: no chart"
    servers = order({s for (s, _) in runs})
    ids = chat_ids(runs)
    has_fanout = any(r == "fanout" for (_, r) in runs)

    def cell(server, rid, f):
        r = runs.get((server, rid))
        v = f(r) if r is not None and r.ok else None
        return "NaN" if v is None else f"{v:.6g}"

    def block(name, rows, f):
        lines = [f"${name} << EOD", "x " + " ".join(f'"{s}"' for s in servers)]
        for label, rid in rows:
            lines.append(f'"{label}" ' + " ".join(cell(s, rid, f) for s in servers))
        lines.append("EOD")
        return "\n".join(lines)

    chat_rows = [(f"CHAT {int(i.split('-')[1]) // 1000}k/s" if int(i.split('-')[1]) >= 1000
                  else f"CHAT {i.split('-')[1]}/s", i) for i in ids]
    msg_rows = chat_rows + ([("FANOUT", "fanout")] if has_fanout else [])
    blocks = [
        block("P99", msg_rows, lambda r: (r.get("messages", "latency_us", "p99") or 0) / 1000
              or None),
        block("DPS", msg_rows, lambda r: (r.get("messages", "deliveries_per_s") or 0) / 1e6
              or None),
        block("CPU", msg_rows, lambda r: r.get("server", "cpu_us_per_delivery")),
        block("FPS", msg_rows, lambda r: r.frames_per_send()[0]),
        block("RSS", [("HOLD", "hold")], lambda r: (r.get("server", "rss_per_conn_bytes")
                                                   or 0) / 1024 or None),
        block("MAX", [("MAX-CONN", "maxconn")],
              lambda r: (r.get("limit", "connections")
                         or r.get("connections", "limit", "connections") or 0) / 1000 or None),
    ]
    ncols = len(servers)
    # Clustered bars drawn as boxes: bar i of n for row r sits at r + (i - (n-1)/2) * w.
    w = 1.0 / (ncols + 1)

    def plot_cmd(name):
        bars, labels = [], []
        for i in range(ncols):
            x = f"($0 + {(i - (ncols - 1) / 2) * w:.4f})"
            bars.append(f"${name} using {x}:{i + 2}" + (":xtic(1)" if i == 0 else "")
                        + f" with boxes lc {i + 1} title columnhead({i + 2})")
            labels.append(f"${name} using {x}:{i + 2}:(fmt(column({i + 2}))) with labels "
                          f"offset 0,0.7 font ',8' notitle")
        return "plot " + ", ".join(bars + labels)

    panels = [
        ("P99", "p99 latency, ms (log scale; lower is better)", True),
        ("DPS", "deliveries/s, millions (higher is better)", False),
        ("CPU", "server CPU per delivery, µs (lower is better)", False),
        ("FPS", "frames per send (≈ for peers: from syscall counts)", False),
        ("RSS", "server RSS per idle connection, KiB (lower is better)", False),
        ("MAX", "most connections held, thousands (higher is better)", False),
    ]
    def has_data(b):
        return any(v != "NaN" for line in b.splitlines()[2:-1] for v in line.split()[-ncols:])

    panels = [(n, t, lg) for (n, t, lg), b in zip(panels, blocks) if has_data(b)]
    if not panels:
        return "no figures to draw"
    cols = min(3, len(panels))
    rows_n = (len(panels) + cols - 1) // cols
    script = [f"set terminal pngcairo size {500 * cols},{80 + 420 * rows_n} font 'Sans,10'",
              f"set output '{png}'",
              *blocks,
              "set style fill solid 0.85 border -1",
              f"set boxwidth {w:.4f} absolute",
              "set xtics scale 0",
              "set offsets 0.5, 0.5, graph 0.12, 0",
              "set key autotitle columnhead",
              "set grid ytics",
              "set key outside bottom center horizontal font ',9'",
              "set datafile missing 'NaN'",
              "fmt(v) = v >= 100 ? sprintf('%.0f', v) : v >= 10 ? sprintf('%.1f', v) : "
              "sprintf('%.2f', v)",
              "set xtics font ',9'",
              f"set multiplot layout {rows_n},{cols} title '{chart_title(runs, meta or {})}'"]
    for name, title, log in panels:
        script.append(f"set title '{title}'")
        script.append("set logscale y" if log else "unset logscale y")
        script.append("set yrange [*:*]" if log else "set yrange [0:*]")
        script.append(plot_cmd(name))
    script.append("unset multiplot")
    gp = os.path.join(workdir, "results.gp")
    with open(gp, "w") as f:
        f.write("\n".join(script) + "\n")
    res = subprocess.run([gnuplot, gp], capture_output=True, text=True)
    if res.returncode != 0:
        return f"gnuplot failed: {res.stderr.strip()[:300]}"
    return None


# ------------------------------------------------------------------------------------------
# Document
# ------------------------------------------------------------------------------------------

def tool_readme_ceiling(root):
    """The table of the "Ceiling" section of tools/bench/README.md, as it stands."""
    text = read_text(os.path.join(root, "tools", "bench", "README.md"))
    m = re.search(r"^## Ceiling.*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not m:
        return None
    rows = [ln.strip() for ln in m.group(1).splitlines() if ln.strip().startswith("|")]
    return rows or None


def render(out, md_path, png_path):
    meta = read_kv(os.path.join(out, "meta.env"))
    runs = load(out)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    png_rel = os.path.relpath(png_path, os.path.dirname(os.path.abspath(md_path))) \
        if png_path else None
    chart_err = chart(runs, os.path.abspath(png_path), out, meta) if png_path else "no chart asked"

    quick = meta.get("mode") == "quick"
    doc = ["# Benchmark results: ringcast and its peers", ""]
    rel_out = os.path.relpath(os.path.abspath(out), root)
    doc.append(f"Written by the suite, not by hand: `{meta.get('command', 'bench/run.sh')}` "
               f"on {meta.get('date', '?')}, rendered by `bench/render.py {rel_out}`. Raw "
               f"results: `{rel_out}/` (bench/out/ is not in git). How to run it and read "
               f"it: [README.md](README.md). What the profiles showed and what changed "
               f"because of them: [PROFILE.md](PROFILE.md).")
    doc.append("")
    if quick:
        doc.append("**This is a `--quick` run**: the standard scenarios' shapes at smoke-test "
                   "sizes and durations (the headings give the sizes used). Run `bench/run.sh` "
                   "without `--quick` for the standard figures.")
        doc.append("")
    doc += ["## Setup", "",
            table(["what", "value"], [
                ["machine", f"{meta.get('cpu_model', '?')}, {meta.get('cpus', '?')} CPUs, "
                            f"{meta.get('memory', '?')} RAM, {meta.get('os', '?')}, kernel "
                            f"{meta.get('kernel', '?')}"],
                ["pinning", f"server on CPU {meta.get('server_cpu', '?')}, ringcast-bench on "
                            f"CPU {meta.get('load_cpu', '?')} (`taskset`); one fresh server "
                            f"process per run"],
                ["open-file limit", meta.get("nofile", "?")],
                ["ringcast", f"{meta.get('ringcast', '?')}, commit "
                             f"{meta.get('ringcast_commit', '?')}, `--shards 1`"],
                ["load tool", meta.get("bench", "?")],
                ["Bun", meta.get("bun") or "not installed"],
                ["Node.js / ws", f"{meta.get('node') or '?'} / {meta.get('ws') or '?'}"],
                ["Socket.IO", f"{meta.get('socketio') or 'not installed'} (WebSocket "
                              f"transport only; ringcast-bench `--protocol socketio`)"],
                ["Python websockets", f"{meta.get('py_websockets') or '?'} (Python "
                                      f"{meta.get('python', '?')})"],
                ["TLS (wss rows)", f"ringcast: mbedtls {meta.get('mbedtls') or '?'} (Debian); "
                                   f"Bun: its built-in BoringSSL; load tool: mbedtls, TLS 1.2"],
                ["syscall counting", ("perf stat on the server's send syscalls during every "
                                      "run (" + meta.get("perf", "?") + ")")
                 if meta.get("syscalls") == "1" else "off"],
            ]), ""]
    doc += ["Columns: **frames/send** is deliveries per send. For ringcast it comes from its "
            "own `/stats` (`messages_delivered` and `sends`, before and after the run); for "
            "the peers (marked ≈) it is the load tool's received count divided by the "
            "server's `sendto`+`sendmsg`+`write`+`writev` syscalls counted by `perf stat` "
            "during the run, less the writes that set each connection up (the upgrade "
            "answer; for Socket.IO also its open and connect packets). **tool core** "
            "is the busiest load-tool worker's share of its core while publishing (⚠ over "
            "90%: the figure may be the tool's limit, not the server's). **other load** is "
            "the CPU that anything besides the server and the tool used during the run, in "
            "share of one core, from whole-machine counters (⚠ over 20%: the machine was not "
            "quiet and the row is not a fair comparison; kernel threads such as ksoftirqd are left "
            "out, since they carry part of the loopback traffic). Latencies are in "
            "milliseconds.", ""]
    ceil_rows = tool_readme_ceiling(root)
    doc += ["**The load tool's ceiling.** ringcast-bench receives on one core (CPU "
            f"{meta.get('load_cpu', '1')}). What that core can take in depends on how many "
            "frames each receive carries, that is on how the server batches; measured against "
            "a trivial sending server (tools/bench/README.md, section \"Ceiling\"):", ""]
    if ceil_rows:
        doc += ceil_rows + [""]
    else:
        doc += ["(tools/bench/README.md has no ceiling table yet.)", ""]
    doc += ["Beside every messaging table, the **tool core** column says how close each run "
            "came to it.", ""]
    if any(server == "socketio" for (server, _) in runs):
        doc += ["**Socket.IO** rows: the same load in Socket.IO's protocol (`ringcast-bench "
                "--protocol socketio`, URL path `/socket.io/`, the room in the query). Every "
                "publish is an event `42[\"m\",{…}]` of the same size, which the server parses "
                "and serialises again before it broadcasts it; Socket.IO has no limit on a "
                "connection's unsent bytes (bench/peers/socketio-server.js).", ""]
    if png_path and chart_err is None:
        doc += [f"![results chart]({png_rel})", ""]
    elif png_path:
        doc += [f"(No chart: {chart_err}.)", ""]

    for section in (section_hold, section_chat, section_fanout, section_maxconn, section_wss):
        s = section(runs, meta)
        if s:
            doc += [s, ""]

    doc += ["## Not covered yet", "",
            "- **Multi-core**: this machine has two CPUs, one for the server and one for the "
            "load; a shard per core cannot show here.", ""]
    text = "\n".join(doc)
    if md_path:
        text += kept_tail(md_path)
        with open(md_path, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if chart_err and png_path:
        print(f"render.py: {chart_err}", file=sys.stderr)


# Sections measured by other scripts (bench/ops_cost.sh) follow this line in RESULTS.md and are
# carried over when the suite's part is rendered again.
KEEP_MARK = "<!-- render.py keeps what follows: sections measured by other scripts -->"


def kept_tail(md_path):
    """The part of the existing <md_path> from KEEP_MARK on, or ""."""
    try:
        with open(md_path) as f:
            old = f.read()
    except OSError:
        return ""
    i = old.find(KEEP_MARK)
    return "\n" + old[i:] if i >= 0 else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the folder bench/run.sh wrote")
    ap.add_argument("--markdown", help="write the report here (default: stdout)")
    ap.add_argument("--png", help="draw the chart here with gnuplot")
    a = ap.parse_args()
    if not os.path.isfile(os.path.join(a.out, "meta.env")):
        sys.exit(f"render.py: {a.out} has no meta.env: not a bench/run.sh result folder")
    render(a.out, a.markdown, a.png)


if __name__ == "__main__":
    main()

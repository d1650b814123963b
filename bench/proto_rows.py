#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The protocol-mode rows of a bench/proto.sh run (raw results as bench/run.sh writes them),
as one Markdown table: per scenario and server, the load, deliveries/s, loss, latency, the
server's RSS per connection and its CPU.

    bench/proto_rows.py OUT_DIR [--markdown FILE]

Reads OUT_DIR/SERVER.ID.json (ringcast-bench's JSON line) and SERVER.ID.run (the server's CPU
jiffies over the run, from /proc). A figure that was not measured is "n/a". Standard library
only.
"""
import argparse
import glob
import json
import os

SERVERS = ["ringcast", "ringcast-proto", "bun", "centrifugo"]
LABEL = {
    "ringcast": "ringcast raw",
    "ringcast-proto": "ringcast protocol",
    "bun": "Bun (raw)",
    "centrifugo": "Centrifugo",
}
SCENARIOS = [
    ("hold", "HOLD-15k: idle, 1 subscription each"),
    ("chat-2000", "CHAT-10k at 2,000 publishes/s"),
    ("chat-10000", "CHAT-10k at 10,000 publishes/s"),
    ("million", "MILLION/10: 2 subscriptions each, groups of 10"),
]
NA = "n/a"


def get(d, *path):
    for k in path:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def read_kv(path):
    kv = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                kv[k] = v
    except OSError:
        pass
    return kv


def fmt(v, digits=0, unit=""):
    if v is None:
        return NA
    return f"{v:,.{digits}f}{unit}"


def ms(us):
    return NA if us is None else f"{us / 1000:.1f} ms"


def row(out, server, rid, title):
    base = os.path.join(out, f"{server}.{rid}")
    try:
        with open(base + ".json") as f:
            lines = [l for l in f if l.startswith("{")]
        r = json.loads(lines[-1])
    except (OSError, ValueError, IndexError):
        return None
    run = read_kv(base + ".run")
    conns = get(r, "connections", "held")
    hold = rid == "hold"
    rss = get(r, "server", "rss_per_conn_held_bytes" if hold else "rss_per_conn_bytes")
    jiffies, tck, wall = run.get("server_jiffies"), run.get("clk_tck"), run.get("wall_s")
    core = None
    if jiffies and tck and wall and float(wall) > 0:
        core = 100 * int(jiffies) / int(tck) / float(wall)
    lost = get(r, "messages", "lost")
    return "| " + " | ".join([
        title,
        LABEL.get(server, server),
        fmt(conns),
        NA if hold else fmt(get(r, "messages", "publish_rate")),
        NA if hold else fmt(get(r, "messages", "deliveries_per_s")),
        NA if hold else (NA if lost is None else f"{lost:,}"),
        NA if hold else ms(get(r, "messages", "latency_us", "p50")),
        NA if hold else ms(get(r, "messages", "latency_us", "p99")),
        fmt(rss, 0, " B"),
        fmt(get(r, "server", "cpu_us_per_handshake"), 1, " µs"),
        NA if hold else fmt(get(r, "server", "cpu_us_per_delivery"), 2, " µs"),
        fmt(core, 0, "%"),
        "yes" if r.get("ok") else "**no**",
    ]) + " |"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--markdown")
    a = ap.parse_args()
    found = {os.path.basename(p).split(".")[0] for p in glob.glob(os.path.join(a.out, "*.json"))}
    servers = [s for s in SERVERS if s in found] + sorted(found - set(SERVERS))
    lines = [
        "| scenario | server | connections held | publishes/s | deliveries/s | lost | p50 | p99 "
        "| server RSS per connection | server CPU per handshake | server CPU per delivery "
        "| server CPU (of one core, whole run) | ok |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for rid, title in SCENARIOS:
        for s in servers:
            line = row(a.out, s, rid, title)
            if line:
                lines.append(line)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

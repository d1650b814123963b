# SPDX-License-Identifier: MIT
"""ringcast-bench against the real broker: short runs of every scenario whose counts must be
exact (every connection held, every delivery received, nothing lost, duplicated or reordered),
plus the command-line contract (--help, bad options, loopback only).

Run by ctest as integration.bench with RINGCAST_BIN and RINGCAST_BENCH_BIN set; by hand:
  RINGCAST_BIN=build/ringcast RINGCAST_BENCH_BIN=build/ringcast-bench \\
      /usr/bin/python3 tools/bench/test_bench_integration.py
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("RINGCAST_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from harness import Broker, Runner  # noqa: E402

BENCH = os.environ.get("RINGCAST_BENCH_BIN", os.path.join(SRC, "build", "ringcast-bench"))


def bench(*args, timeout=120):
    """Runs ringcast-bench with --json and returns the parsed record (stderr on failure)."""
    cmd = [BENCH] + [str(a) for a in args] + ["--json", "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or len(lines) != 1:
        raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s" %
                             (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    rec = json.loads(lines[0])
    rec["_summary"] = p.stderr
    return rec


def expect(rec, path, want):
    v = rec
    for k in path.split("."):
        v = v[k]
    assert v == want, "%s is %r, want %r\n%s" % (path, v, want, rec["_summary"])


def case_hold(b):
    r = bench("hold", "--url", b.url + "/room/lobby", "--connections", 2000, "--duration", 2,
              "--pid", b.proc.pid)
    expect(r, "connections.established", 2000)
    expect(r, "connections.held", 2000)
    expect(r, "connections.failed", 0)
    expect(r, "connections.close_clean", 2000)
    expect(r, "connections.closed_by_server", 0)
    expect(r, "connections.handshake_latency_us.count", 2000)
    expect(r, "ok", True)
    assert r["server"]["rss_connected_kb"] > 0, r["_summary"]


def case_chat(b):
    # 200 clients in 20 rooms of 10, 200 publishes/s for 3 s: 600 publishes, each delivered to
    # the 9 other members of its room.
    r = bench("chat", "--url", b.url + "/room/", "--connections", 200, "--room-size", 10,
              "--rate", 200, "--duration", 3)
    expect(r, "connections.held", 200)
    expect(r, "messages.published", 600)
    expect(r, "messages.expected", 600 * 9)
    expect(r, "messages.received", 600 * 9)
    expect(r, "messages.lost", 0)
    expect(r, "messages.reordered", 0)
    expect(r, "messages.duplicates", 0)
    expect(r, "messages.malformed", 0)
    expect(r, "messages.unexpected", 0)
    expect(r, "messages.seq_tracked", True)
    expect(r, "messages.latency_us.count", 600 * 9)
    expect(r, "ok", True)


def case_chat_uneven_rooms_two_workers(b):
    # 250 clients in rooms of 40 (six of 40, one of 10) over two worker processes; binary frames.
    r = bench("chat", "--url", b.url + "/room/uneven-", "--connections", 250, "--room-size", 40,
              "--rate", 300, "--duration", 2, "--workers", 2, "--binary", "--payload", 300)
    expect(r, "params.workers", 2)
    expect(r, "messages.published", 600)
    exp = r["messages"]["expected"]
    # A publisher in a room of 40 reaches 39, in the room of 10 reaches 9; picks are random.
    assert 600 * 9 <= exp <= 600 * 39, r["_summary"]
    expect(r, "messages.received", exp)
    expect(r, "messages.lost", 0)
    expect(r, "ok", True)


def case_fanout(b):
    r = bench("fanout", "--url", b.url + "/room/", "--connections", 100, "--rate", 200,
              "--duration", 1)
    expect(r, "messages.published", 200)
    expect(r, "messages.received", 200 * 99)
    expect(r, "messages.lost", 0)
    r = bench("fanout", "--url", b.url + "/room/", "--connections", 50, "--inflight", 4,
              "--duration", 1)
    assert r["messages"]["published"] > 0, r["_summary"]
    expect(r, "messages.received", r["messages"]["published"] * 49)


def case_echo(b):
    r = bench("echo", "--url", b.url + "/echo", "--connections", 20, "--inflight", 2,
              "--duration", 1)
    assert r["messages"]["published"] >= 40, r["_summary"]
    expect(r, "messages.received", r["messages"]["published"])
    expect(r, "messages.lost", 0)


def case_ramp_finds_the_limit():
    with Broker("--max-conns", "300") as b:
        r = bench("ramp", "--url", b.url + "/room/ramp", "--connections", 1000, "--rate", 2000,
                  "--duration", 20)
        lim = r["limit"]
        assert 0 < lim["connections"] <= 300, r["_summary"]
        assert "503" in lim["reason"], r["_summary"]
        expect(r, "connections.first_status", 503)


def case_command_line():
    p = subprocess.run([BENCH, "--help"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and "scenarios" in p.stdout, p
    for args in (["chat"], ["storm", "--url", "ws://127.0.0.1:1/"],
                 ["hold", "--url", "ws://10.0.0.1:80/room/x"],
                 ["hold", "--url", "ws://127.0.0.1:1/", "--connections", "0"]):
        p = subprocess.run([BENCH] + args, capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert p.stderr.count("\n") == 1 and p.stderr.startswith("ringcast-bench: "), p.stderr


def main():
    runner = Runner()
    runner.run("command line", case_command_line)
    with Broker() as b:
        runner.run("hold 2000", case_hold, b)
        runner.run("chat 200 in rooms of 10", case_chat, b)
        runner.run("chat, uneven rooms, 2 workers", case_chat_uneven_rooms_two_workers, b)
        runner.run("fanout", case_fanout, b)
        runner.run("echo", case_echo, b)
    runner.run("ramp finds --max-conns", case_ramp_finds_the_limit)
    runner.finish()


if __name__ == "__main__":
    main()

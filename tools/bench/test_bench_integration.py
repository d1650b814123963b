# SPDX-License-Identifier: MIT
"""ringcast-bench against the real broker: short runs of every scenario whose counts must be
exact (every connection held, every delivery received, nothing lost, duplicated or reordered),
over ws:// and over the broker's TLS listener (wss://, with a certificate made at test time by
tools/gen-certs.sh: full and resumed handshakes, verification), plus the command-line contract
(--help, bad options, loopback only).

Run by ctest as integration.bench with RINGCAST_BIN and RINGCAST_BENCH_BIN set; by hand:
  RINGCAST_BIN=build/ringcast RINGCAST_BENCH_BIN=build/ringcast-bench \\
      /usr/bin/python3 tools/bench/test_bench_integration.py
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("RINGCAST_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from harness import Broker, Runner  # noqa: E402

BENCH = os.environ.get("RINGCAST_BENCH_BIN", os.path.join(SRC, "build", "ringcast-bench"))


def bench(*args, timeout=120, rc=0):
    """Runs ringcast-bench with --json and returns the parsed record (stderr on failure)."""
    cmd = [BENCH] + [str(a) for a in args] + ["--json", "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != rc or len(lines) != 1:
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


def expect_exact(rec, held, published, deliveries):
    """Every connection held, every delivery received once and in order, nothing malformed."""
    expect(rec, "connections.held", held)
    expect(rec, "messages.published", published)
    expect(rec, "messages.expected", deliveries)
    expect(rec, "messages.received", deliveries)
    for field in ("lost", "reordered", "duplicates", "malformed", "unexpected"):
        expect(rec, "messages." + field, 0)
    expect(rec, "ok", True)


def expect_refused(*command_lines):
    """Each bad command line exits 2 with one line on stderr."""
    for args in command_lines:
        p = subprocess.run([BENCH] + list(args), capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert p.stderr.count("\n") == 1 and p.stderr.startswith("ringcast-bench: "), p.stderr


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
    expect_exact(r, held=200, published=600, deliveries=600 * 9)
    expect(r, "messages.seq_tracked", True)
    expect(r, "messages.latency_us.count", 600 * 9)
    expect(r, "params.poll_us", 30)  # the default: a short poll before each wait
    assert r["client"]["waits_per_delivery"] >= 0, r["_summary"]


def case_chat_uneven_rooms_two_workers(b):
    # 250 clients in rooms of 40 (six of 40, one of 10) over two worker processes; binary frames.
    r = bench("chat", "--url", b.url + "/room/uneven-", "--connections", 250, "--room-size", 40,
              "--rate", 300, "--duration", 2, "--workers", 2, "--binary", "--payload", 300,
              "--poll-us", 0)
    expect(r, "params.workers", 2)
    # Without the poll a worker waits whenever its queue is empty: at 300 publishes/s, often.
    expect(r, "params.poll_us", 0)
    assert r["client"]["waits_per_delivery"] > 0, r["_summary"]
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


# ---- wss:// -------------------------------------------------------------------------------

def wss_url(b):
    return "wss://127.0.0.1:%d" % b.tls_port


def case_wss_hold(b):
    # 500 full handshakes, a window of 64 so that none waits long behind the others for the
    # broker's CPU (its handshake timeout is 5 s; sanitizer builds are slow).
    r = bench("hold", "--url", wss_url(b) + "/room/lobby", "--connections", 500, "--duration", 1,
              "--connect-window", 64, "--pid", b.proc.pid)
    expect(r, "params.tls", True)
    expect(r, "connections.established", 500)
    expect(r, "connections.held", 500)
    expect(r, "connections.failed", 0)
    expect(r, "connections.tls_errors", 0)
    expect(r, "connections.close_clean", 500)
    expect(r, "connections.closed_by_server", 0)
    expect(r, "tls.full", 500)
    expect(r, "tls.resumed", 0)
    expect(r, "tls.offered", 0)
    expect(r, "tls.full_latency_us.count", 500)
    expect(r, "tls.suite", "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256")
    expect(r, "ok", True)
    assert r["tls"]["full_rate"] > 0, r["_summary"]
    assert r["client"]["cpu_us_per_handshake"] > 0, r["_summary"]


def case_wss_chat(b):
    # 100 clients in 10 rooms of 10, 100 publishes/s for 3 s: 300 publishes, 9 deliveries each.
    r = bench("chat", "--url", wss_url(b) + "/room/", "--connections", 100, "--room-size", 10,
              "--rate", 100, "--duration", 3, "--connect-window", 64)
    expect_exact(r, held=100, published=300, deliveries=300 * 9)
    expect(r, "tls.full", 100)


def case_wss_resume(b):
    # One worker: its first handshake is full and every later one offers that ticket.
    r = bench("hold", "--url", wss_url(b) + "/room/resume", "--connections", 300, "--duration", 1,
              "--workers", 1, "--tls-resume")
    expect(r, "params.tls_resume", True)
    expect(r, "connections.held", 300)
    expect(r, "tls.full", 1)
    expect(r, "tls.offered", 299)
    expect(r, "tls.resumed", 299)
    expect(r, "tls.resumed_latency_us.count", 299)
    expect(r, "ok", True)
    assert r["tls"]["resumed_rate"] > 0, r["_summary"]
    # Two workers each resume their own first session; ramp over wss as well.
    r = bench("ramp", "--url", wss_url(b) + "/room/ramp", "--connections", 200, "--rate", 400,
              "--duration", 10, "--workers", 2, "--tls-resume")
    expect(r, "limit.connections", 200)
    expect(r, "tls.full", 2)
    expect(r, "tls.resumed", 198)


def case_wss_fanout_echo(b):
    r = bench("fanout", "--url", wss_url(b) + "/room/", "--connections", 50, "--rate", 100,
              "--duration", 1, "--tls-resume")
    expect(r, "messages.published", 100)
    expect(r, "messages.received", 100 * 49)
    expect(r, "messages.lost", 0)
    # 16 KiB messages: several TLS records per message, split across receives.
    r = bench("echo", "--url", wss_url(b) + "/echo", "--connections", 10, "--inflight", 4,
              "--duration", 1, "--payload", 16384, "--tls-resume")
    assert r["messages"]["published"] >= 40, r["_summary"]
    expect(r, "messages.received", r["messages"]["published"])
    expect(r, "messages.lost", 0)
    expect(r, "messages.malformed", 0)


def case_wss_verify(b, certs):
    r = bench("hold", "--url", wss_url(b) + "/room/v", "--connections", 10, "--duration", 0.5,
              "--tls-verify", os.path.join(certs, "ec.crt"))
    expect(r, "tls.verify", True)
    expect(r, "connections.held", 10)
    # Trusting another certificate: every handshake fails verification, nothing is held.
    r = bench("hold", "--url", wss_url(b) + "/room/v", "--connections", 10, "--duration", 0.5,
              "--tls-verify", os.path.join(certs, "rsa.crt"), rc=3)
    expect(r, "connections.established", 0)
    expect(r, "connections.tls_errors", 10)
    expect(r, "connections.failed", 10)
    assert "verif" in r["tls"]["first_error"].lower(), r["_summary"]


def case_wss_no_offload(certs):
    with Broker(*tls_args(certs), "--tls-offload", "off") as b:
        r = bench("hold", "--url", wss_url(b) + "/room/lobby", "--connections", 100,
                  "--duration", 0.5, "--tls-resume")
        expect(r, "connections.held", 100)
        expect(r, "tls.resumed", 99)
        r = bench("chat", "--url", wss_url(b) + "/room/", "--connections", 20, "--room-size", 10,
                  "--rate", 100, "--duration", 1, "--tls-resume")
        expect(r, "messages.received", 100 * 9)


def tls_args(certs):
    return ["--tls-listen", "127.0.0.1:0", "--tls-cert", os.path.join(certs, "ec.crt"),
            "--tls-key", os.path.join(certs, "ec.key")]


def case_command_line():
    p = subprocess.run([BENCH, "--help"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and "scenarios" in p.stdout, p
    expect_refused(["chat"], ["storm", "--url", "ws://127.0.0.1:1/"],
                   ["hold", "--url", "ws://10.0.0.1:80/room/x"],
                   ["hold", "--url", "ws://127.0.0.1:1/", "--connections", "0"],
                   ["hold", "--url", "ws://127.0.0.1:1/", "--tls-resume"],
                   ["hold", "--url", "wss://127.0.0.1:1/", "--tls-verify", "/nonexistent.pem"],
                   ["hold", "--url", "http://127.0.0.1:1/"])


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
    certs = tempfile.mkdtemp(prefix="ringcast-bench-certs-")
    try:
        subprocess.run(["sh", os.path.join(SRC, "tools", "gen-certs.sh"), certs], check=True,
                       timeout=60)
        with Broker(*tls_args(certs)) as b:
            runner.run("wss hold 500", case_wss_hold, b)
            runner.run("wss chat 100 in rooms of 10", case_wss_chat, b)
            runner.run("wss --tls-resume: hold and ramp", case_wss_resume, b)
            runner.run("wss fanout and echo", case_wss_fanout_echo, b)
            runner.run("wss --tls-verify", case_wss_verify, b, certs)
        runner.run("wss against --tls-offload off", case_wss_no_offload, certs)
    finally:
        shutil.rmtree(certs, ignore_errors=True)
    runner.finish()


if __name__ == "__main__":
    main()

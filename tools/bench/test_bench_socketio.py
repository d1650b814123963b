# SPDX-License-Identifier: MIT
"""ringcast-bench --protocol socketio against the Socket.IO peer of the benchmark suite
(bench/peers/socketio-server.js, Node.js and the socket.io package from bench/peers/node_modules
or tests/integration/node_modules): short hold, chat, fanout and echo runs whose counts must be
exact, the Engine.IO heartbeat answered, room names the server refuses, and the bytes of an
event coming back exactly as they were sent (the adapter relies on that for its fixed-size
payloads).

Run by ctest as integration.bench_socketio with RINGCAST_BENCH_BIN set; by hand:
  RINGCAST_BENCH_BIN=build/ringcast-bench /usr/bin/python3 tools/bench/test_bench_socketio.py
"""
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

from test_bench_integration import SRC, bench, expect, expect_exact, expect_refused  # noqa: E402
from harness import Runner  # noqa: E402

import websockets  # noqa: E402  (Debian's python3-websockets)

PEER = os.path.join(SRC, "bench", "peers", "socketio-server.js")
_LISTEN_RE = re.compile(r"socketio: listening on ws://127\.0\.0\.1:(\d+)")


class Peer:
    """The Socket.IO peer on 127.0.0.1, any port; <env> adds to its environment."""

    def __init__(self, env=None):
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.port = None

    def __enter__(self):
        node = shutil.which("node")
        if not node:
            raise RuntimeError("node is missing (tools/deps.sh test installs it)")
        self.proc = subprocess.Popen([node, PEER, "0", "127.0.0.1"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=self.env, text=True)
        deadline = time.monotonic() + 15
        out = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            out.append(line)
            m = _LISTEN_RE.search(line)
            if m:
                self.port = int(m.group(1))
                return self
        self.__exit__()
        raise RuntimeError("the Socket.IO peer did not start (socket.io is installed by "
                           "`npm ci` in tests/integration or bench/peers):\n" + "".join(out))

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def url(self):
        return "ws://127.0.0.1:%d/socket.io/" % self.port


def sio(*args, **kw):
    return bench(*args, "--protocol", "socketio", **kw)


def case_healthz(p):
    with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % p.port, timeout=5) as r:
        assert r.status == 200 and r.read() == b"ok\n"


def case_hold(p):
    r = sio("hold", "--url", p.url, "--connections", 500, "--room-size", 50, "--duration", 2,
            "--pid", p.proc.pid)
    expect(r, "protocol", "socketio")
    expect(r, "connections.established", 500)
    expect(r, "connections.held", 500)
    expect(r, "connections.failed", 0)
    expect(r, "connections.close_clean", 500)
    expect(r, "connections.closed_by_server", 0)
    expect(r, "ok", True)


def case_chat(p):
    # 200 clients in 20 rooms of 10, 200 publishes/s for 2 s: 400 publishes, 9 deliveries each.
    r = sio("chat", "--url", p.url, "--connections", 200, "--room-size", 10, "--rate", 200,
            "--duration", 2)
    expect_exact(r, held=200, published=400, deliveries=400 * 9)
    expect(r, "messages.skipped", 0)
    expect(r, "messages.latency_us.count", 400 * 9)


def case_chat_sizes(p):
    # The smallest payload and a large one, over two workers.
    for size in (57, 4096):
        r = sio("chat", "--url", p.url, "--connections", 60, "--room-size", 6, "--rate", 100,
                "--duration", 1, "--payload", size, "--workers", 2)
        expect(r, "messages.published", 100)
        expect(r, "messages.received", 100 * 5)
        expect(r, "messages.malformed", 0)
        expect(r, "ok", True)


def case_fanout(p):
    r = sio("fanout", "--url", p.url, "--connections", 100, "--rate", 200, "--duration", 1)
    expect(r, "messages.published", 200)
    expect(r, "messages.publisher_echoes", 200)
    expect(r, "messages.received", 200 * 99)
    expect(r, "messages.lost", 0)
    expect(r, "messages.malformed", 0)
    r = sio("fanout", "--url", p.url, "--connections", 50, "--inflight", 4, "--duration", 1)
    assert r["messages"]["published"] > 0, r["_summary"]
    expect(r, "messages.received", r["messages"]["published"] * 49)


def case_echo(p):
    r = sio("echo", "--url", p.url, "--connections", 20, "--inflight", 2, "--duration", 1)
    assert r["messages"]["published"] >= 40, r["_summary"]
    expect(r, "messages.received", r["messages"]["published"])
    expect(r, "messages.lost", 0)


def case_bad_room_names(p):
    # The URL's query comes after the adapter's, and a repeated key counts as its last value:
    # that is how these names reach the server. Each refusal fails its client.
    # (Longer names do not fit in the tool's --url: those are checked in case_packets.)
    for q in ("room=a%2Fb", "room=a%01b", "room="):
        r = sio("hold", "--url", p.url + "?" + q, "--connections", 5, "--duration", 0.5, rc=3)
        expect(r, "connections.established", 5)
        expect(r, "connections.failed", 5)
        expect(r, "connections.protocol_errors", 5)
        expect(r, "connections.held", 0)
        expect(r, "ok", False)
    r = sio("hold", "--url", p.url + "?room=" + "x" * 250, "--connections", 5, "--duration", 0.5)
    expect(r, "connections.held", 5)


def case_heartbeat():
    # A ping every 200 ms and 300 ms to answer: a client that did not answer would be closed
    # within half a second.
    with Peer({"PING_INTERVAL_MS": "200", "PING_TIMEOUT_MS": "300"}) as p:
        r = sio("hold", "--url", p.url, "--connections", 50, "--duration", 2)
        expect(r, "connections.held", 50)
        expect(r, "connections.closed_by_server", 0)
        assert r["client"]["pings"] >= 50 * 5, r["_summary"]


async def _packets(p):
    """Raw Engine.IO packets: refusals and acceptance as a client sees them, and an event's
    bytes coming back exactly."""
    base = p.url + "?EIO=4&transport=websocket"

    async def join(ws):
        opened = await ws.recv()
        assert opened.startswith('0{"sid":') and '"upgrades":[]' in opened, opened
        await ws.send("40")
        return await asyncio.wait_for(ws.recv(), 5)

    for room, ok in (("a%2Fb", False), ("x" * 256, False), ("%E2%82%AC" * 86, False),
                     ("x" * 255, True), ("%E2%82%AC" * 85, True)):
        async with websockets.connect(base + "&room=" + room, compression=None) as ws:
            answer = await join(ws)
            if ok:
                assert answer.startswith('40{"sid":'), (room, answer)
            else:
                assert answer == '44{"message":"bad room name"}', (room, answer)

    async with websockets.connect(base + "&room=bytes", compression=None) as a, \
            websockets.connect(base + "&room=bytes", compression=None) as b:
        for ws in (a, b):
            answer = await join(ws)
            assert answer.startswith('40{"sid":'), answer
        head = '42["m",{"rcb":"0000000100000002000000000000abcd","p":"'
        sent = head + ("abcdefghijklmnopqrstuvwxyz" * 4)[:100 - len(head) - 3] + '"}]'
        assert len(sent) == 100, sent
        await a.send(sent)
        got = await asyncio.wait_for(b.recv(), 5)
        assert got == sent, (got, sent)


def case_packets(p):
    asyncio.run(_packets(p))


def case_command_line():
    expect_refused(["chat", "--url", "ws://127.0.0.1:1/socket.io/", "--protocol", "socketio",
                    "--binary"],
                   ["chat", "--url", "ws://127.0.0.1:1/socket.io", "--protocol", "socketio"],
                   ["chat", "--url", "ws://127.0.0.1:1/socket.io/", "--protocol", "socketio",
                    "--payload", "56"])


def main():
    runner = Runner()
    runner.run("command line", case_command_line)
    with Peer() as p:
        runner.run("GET /healthz", case_healthz, p)
        runner.run("packets: a refusal and an event byte for byte", case_packets, p)
        runner.run("hold 500 in rooms of 50", case_hold, p)
        runner.run("chat 200 in rooms of 10", case_chat, p)
        runner.run("chat, payloads of 57 and 4096 bytes, 2 workers", case_chat_sizes, p)
        runner.run("fanout", case_fanout, p)
        runner.run("echo", case_echo, p)
        runner.run("bad room names are refused", case_bad_room_names, p)
    runner.run("heartbeat answered", case_heartbeat)
    runner.finish()


if __name__ == "__main__":
    sys.exit(main())

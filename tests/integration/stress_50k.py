# SPDX-License-Identifier: MIT
"""Stress: one broker process holds 50,000 WebSocket connections (more than one io_uring's
descriptor table and more than the process open-file limit of 20,000, so the broker has to
spread them over several rings) and every connection answers a ping, all within a bounded time.

The client side is split over worker processes of at most 12,500 sockets each (under the
open-file limit), each binding its own source address 127.0.0.2, 127.0.0.3, ... with
IP_BIND_ADDRESS_NO_PORT so that ports do not run out. Workers use non-blocking sockets, epoll
and a minimal raw handshake, answer the broker's pings, and close with SO_LINGER {1,0} (RST) at
the end so no TIME_WAIT is left behind.

Run: stress_50k.py [connections] (default 50000, or RINGCAST_STRESS_CONNS). A worker is this
same file run as `stress_50k.py --worker INDEX PORT COUNT SOURCE_IP`; it takes commands (ping,
close) on stdin and reports JSON lines on stdout.
"""
import errno
import json
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PER_WORKER = 12500
ROOMS = 1000                # connections go to /room/s0 .. /room/s999 (rooms of 50)
MAX_INFLIGHT = 400          # connects + handshakes in progress per worker
TOTAL_LIMIT_S = 180.0
KEY = "dGhlIHNhbXBsZSBub25jZQ=="           # RFC 6455 section 1.3 sample key
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="    # and its Sec-WebSocket-Accept
IP_BIND_ADDRESS_NO_PORT = 24


# ---------------------------------------------------------------------------------------------
# Worker


def _mask(payload, key=b"\x01\x02\x03\x04"):
    return bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def _frame(opcode, payload):
    key = b"\x01\x02\x03\x04"
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + key + _mask(payload, key)


def worker(index, port, count, source):
    CONNECTING, HANDSHAKE, OPEN = 0, 1, 2
    out = sys.stdout

    def report(**kw):
        kw["worker"] = index
        out.write(json.dumps(kw) + "\n")
        out.flush()

    ep = select.epoll()
    stdin_fd = sys.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    ep.register(stdin_fd, select.EPOLLIN)
    socks, state, bufs, conn_idx = {}, {}, {}, {}
    tries = {}
    errors = {}
    nxt, inflight, opened, failed, retried = 0, 0, 0, 0, 0
    retry_queue = []
    pinging, pongs, ping_sent = False, 0, set()
    unexpected = 0
    opened_now = [0]            # open right now (opened counts successful upgrades)
    connected_reported = False
    t0 = time.monotonic()
    last_report = t0
    cmd_buf = b""

    def err(kind):
        errors[kind] = errors.get(kind, 0) + 1

    def kill(fd, why, retry):
        nonlocal inflight, failed, retried
        s = socks.pop(fd)
        i = conn_idx.pop(fd)
        st = state.pop(fd)
        bufs.pop(fd, None)
        try:
            ep.unregister(fd)
        except OSError:
            pass
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        s.close()
        if st in (CONNECTING, HANDSHAKE):
            inflight -= 1
        elif st == OPEN:
            opened_now[0] -= 1
        if retry and tries.get(i, 0) < 3:
            retried += 1
            retry_queue.append(i)
        else:
            failed += 1
            err(why)

    def start(i):
        nonlocal inflight
        tries[i] = tries.get(i, 0) + 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((source, 0))
        rc = s.connect_ex(("127.0.0.1", port))
        fd = s.fileno()
        socks[fd], state[fd], conn_idx[fd] = s, CONNECTING, i
        inflight += 1
        if rc not in (0, errno.EINPROGRESS):
            kill(fd, "connect: " + errno.errorcode.get(rc, str(rc)), True)
            return
        ep.register(fd, select.EPOLLOUT)

    def on_frames(fd, buf):
        """Parses whole server frames at the front of <buf>; returns bytes consumed."""
        nonlocal pongs, unexpected
        off = 0
        while len(buf) - off >= 2:
            b0, b1 = buf[off], buf[off + 1]
            n, h = b1 & 0x7F, 2
            if n == 126:
                if len(buf) - off < 4:
                    break
                n, h = struct.unpack_from("!H", buf, off + 2)[0], 4
            elif n == 127:
                if len(buf) - off < 10:
                    break
                n, h = struct.unpack_from("!Q", buf, off + 2)[0], 10
            if len(buf) - off < h + n:
                break
            op = b0 & 0x0F
            payload = bytes(buf[off + h:off + h + n])
            off += h + n
            if op == 0x9:      # the broker's ping: answer it
                try:
                    socks[fd].send(_frame(0xA, payload))
                except OSError as e:
                    err("pong send: %s" % errno.errorcode.get(e.errno, e))
            elif op == 0xA:    # our pong
                i = struct.unpack("!I", payload)[0] if len(payload) == 4 else -1
                if i == conn_idx[fd] and i in ping_sent:
                    ping_sent.discard(i)
                    pongs += 1
                else:
                    unexpected += 1
            elif op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                err("closed by the broker with %r" % code)
                return -1
            else:
                unexpected += 1
        return off

    while True:
        now = time.monotonic()
        while inflight < MAX_INFLIGHT and (retry_queue or nxt < count):
            if retry_queue:
                start(retry_queue.pop())
            else:
                start(nxt)
                nxt += 1
        if not connected_reported and nxt >= count and inflight == 0 and not retry_queue:
            connected_reported = True
            report(ev="connected", opened=opened, open=opened_now[0], failed=failed,
                   retried=retried, errors=errors, took=time.monotonic() - t0)
        if now - last_report >= 1.0:
            last_report = now
            report(ev="progress", opened=opened, open=opened_now[0], failed=failed,
                   retried=retried, pongs=pongs)
        for fd, ev in ep.poll(0.2):
            if fd == stdin_fd:
                data = os.read(stdin_fd, 4096)
                if not data:
                    return
                cmd_buf += data
                while b"\n" in cmd_buf:
                    line, cmd_buf = cmd_buf.split(b"\n", 1)
                    cmd = line.decode().strip()
                    if cmd == "ping":
                        pinging = True
                        t_ping = time.monotonic()
                        for f, s in list(socks.items()):
                            if state.get(f) == OPEN:
                                i = conn_idx[f]
                                ping_sent.add(i)
                                try:
                                    s.send(_frame(0x9, struct.pack("!I", i)))
                                except OSError as e:
                                    err("ping send: %s" % errno.errorcode.get(e.errno, e))
                        report(ev="pings_sent", n=len(ping_sent),
                               took=time.monotonic() - t_ping)
                    elif cmd == "close":
                        for s in socks.values():
                            try:
                                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                             struct.pack("ii", 1, 0))
                            except OSError:
                                pass
                            s.close()
                        report(ev="closed", n=len(socks))
                        return
                continue
            st = state.get(fd)
            if st is None:
                continue
            s = socks[fd]
            if st == CONNECTING:
                e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if e:
                    kill(fd, "connect: " + errno.errorcode.get(e, str(e)), True)
                    continue
                req = ("GET /room/s%d HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n" % (conn_idx[fd] % ROOMS, KEY)).encode()
                try:
                    if s.send(req) != len(req):
                        kill(fd, "short send of the request", True)
                        continue
                except OSError as e:
                    kill(fd, "send: " + errno.errorcode.get(e.errno, str(e)), True)
                    continue
                state[fd] = HANDSHAKE
                bufs[fd] = bytearray()
                ep.modify(fd, select.EPOLLIN)
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                kill(fd, "recv: " + errno.errorcode.get(e.errno, str(e)), st == HANDSHAKE)
                continue
            if not data:
                if st == HANDSHAKE and not bufs[fd]:
                    kill(fd, "EOF before the response", True)
                else:
                    kill(fd, "EOF" if st == OPEN else "EOF inside the response", False)
                continue
            buf = bufs[fd]
            buf += data
            if st == HANDSHAKE:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > 4096:
                        kill(fd, "response head too long", False)
                    continue
                head = bytes(buf[:end])
                del buf[:end + 4]
                if not head.startswith(b"HTTP/1.1 101"):
                    kill(fd, "refused: " + head.split(b"\r\n", 1)[0].decode("latin-1"), False)
                    continue
                if ACCEPT not in head:
                    kill(fd, "bad Sec-WebSocket-Accept", False)
                    continue
                state[fd] = OPEN
                inflight -= 1
                opened += 1
                opened_now[0] += 1
            used = on_frames(fd, buf)
            if used < 0:
                kill(fd, "closed", False)
                continue
            del buf[:used]
            if pinging and not ping_sent and pongs:
                report(ev="pinged", pongs=pongs, unexpected=unexpected, errors=errors)
                pinging = False


# ---------------------------------------------------------------------------------------------
# Parent


def main():
    from harness import Broker, Runner
    from util import OP_TEXT, RawWS, check_refusal, http_request, rss_bytes, tcp_conns, \
        upgrade_request

    total = int(sys.argv[1]) if len(sys.argv) > 1 else \
        int(os.environ.get("RINGCAST_STRESS_CONNS", "50000"))
    nr_workers = (total + PER_WORKER - 1) // PER_WORKER
    r = Runner()
    t_start = time.monotonic()
    deadline = t_start + TOTAL_LIMIT_S
    b = Broker("--shards", "2", "--max-conns", str(total), "--handshake-timeout", "30").start()
    workers = []
    info = {"opened": 0}
    try:
        pid = b.proc.pid
        rss0 = rss_bytes(pid)
        print("broker pid %d, RSS %.1f MiB; %d connections over %d workers" % (
            pid, rss0 / 2**20, total, nr_workers), flush=True)
        for w in range(nr_workers):
            n = min(PER_WORKER, total - w * PER_WORKER)
            src = "127.0.0.%d" % (2 + w)
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", str(w),
                                  str(b.port), str(n), src],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            workers.append(p)
        poller = select.poll()
        by_fd = {}
        for p in workers:
            os.set_blocking(p.stdout.fileno(), False)
            poller.register(p.stdout.fileno(), select.POLLIN)
            by_fd[p.stdout.fileno()] = p
        last = {}
        partial = {}

        def pump(until, want_ev, timeout_s):
            """Reads worker reports until every worker has sent <want_ev> or the time runs
            out; prints progress every 2 s. Returns {worker: report}."""
            done = {}
            end = min(deadline, time.monotonic() + timeout_s)
            next_print = time.monotonic() + 2
            while len(done) < len(workers) and time.monotonic() < end:
                for fd, _ in poller.poll(200):
                    p = by_fd[fd]
                    try:
                        chunk = os.read(fd, 65536).decode()
                    except BlockingIOError:
                        continue
                    if not chunk:
                        poller.unregister(fd)
                        if p not in done:
                            done[p] = {"ev": "died", "rc": p.poll()}
                        continue
                    data = partial.get(fd, "") + chunk
                    lines = data.split("\n")
                    partial[fd] = lines.pop()
                    for line in lines:
                        msg = json.loads(line)
                        last[msg["worker"]] = msg
                        if msg["ev"] == want_ev:
                            done[p] = msg
                if time.monotonic() >= next_print:
                    next_print += 2
                    opened = sum(m.get("opened", 0) for m in last.values())
                    failed = sum(m.get("failed", 0) for m in last.values())
                    pongs = sum(m.get("pongs", 0) for m in last.values())
                    print("   %5.1fs %s: opened %d, failed %d, pongs %d, broker RSS %.1f MiB, "
                          "held %s" % (time.monotonic() - t_start, until, opened, failed, pongs,
                                       rss_bytes(pid) / 2**20,
                                       tcp_conns(b.port) if until != "ping" else "-"),
                          flush=True)
            return done

        def case_hold():
            done = pump("connect", "connected", 120)
            opened = sum(m.get("open", 0) for m in done.values())
            failed = sum(m.get("failed", 0) for m in done.values())
            retried = sum(m.get("retried", 0) for m in done.values())
            errors = {}
            for m in done.values():
                for k, v in m.get("errors", {}).items():
                    errors[k] = errors.get(k, 0) + v
            took = max([m.get("took", 0) for m in done.values()] or [0])
            info["opened"] = opened
            held = tcp_conns(b.port)
            print("   %d open (%d failed, %d retried connects) in %.1fs; broker holds %d; "
                  "RSS %.1f MiB (+%.0f B per connection)" % (
                      opened, failed, retried, took, held, rss_bytes(pid) / 2**20,
                      (rss_bytes(pid) - rss0) / max(1, opened)), flush=True)
            if errors:
                print("   errors: %r" % errors)
            if len(done) < len(workers):
                opened_now = sum(m.get("opened", 0) for m in last.values())
                raise AssertionError("connect phase did not finish in time: %d of %d upgraded"
                                     % (opened_now, total))
            assert b.proc.poll() is None, "broker died: %r" % b.proc.returncode
            assert opened == total, "%d of %d upgrades succeeded; errors %r" % (
                opened, total, errors)
            assert held >= total, "broker side shows %d established connections" % held

        def case_full():
            r_ = http_request(b.port, upgrade_request("/room/one-too-many"), close_wait=0.3)
            check_refusal(r_, 503)

        def case_ping():
            if info["opened"] == 0:
                raise AssertionError("no connection to ping")
            t0 = time.monotonic()
            for p in workers:
                p.stdin.write("ping\n")
                p.stdin.flush()
            done = pump("ping", "pinged", 60)
            pongs = sum(m.get("pongs", 0) for m in last.values())
            took = time.monotonic() - t0
            print("   %d pongs for %d pings in %.1fs" % (pongs, info["opened"], took))
            unexpected = sum(m.get("unexpected", 0) for m in done.values())
            assert len(done) == len(workers), "pongs still missing after %.1fs: %d of %d" % (
                took, pongs, info["opened"])
            assert pongs == total, "%d pongs for %d connections" % (pongs, total)
            assert unexpected == 0, "%d unexpected frames" % unexpected
            assert b.proc.poll() is None, "broker died: %r" % b.proc.returncode

        def case_release():
            for p in workers:
                try:
                    p.stdin.write("close\n")
                    p.stdin.flush()
                except OSError:
                    pass
            pump("close", "closed", 30)
            for p in workers:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
            t0 = time.monotonic()
            while time.monotonic() - t0 < 30 and tcp_conns(b.port) > 0:
                time.sleep(0.5)
            held = tcp_conns(b.port)
            print("   broker holds %d connections %.1fs after the RSTs; RSS %.1f MiB" % (
                held, time.monotonic() - t0, rss_bytes(pid) / 2**20))
            assert held == 0, "broker still holds %d connections" % held
            with RawWS(b.port, "/echo") as c:
                c.send_text("after the storm")
                assert c.recv_message(5) == (OP_TEXT, b"after the storm")

        def case_exit():
            rc = b.stop()
            assert rc == 0, "broker exit %r; stderr tail: %s" % (rc, "".join(
                b.stderr_lines)[-1000:])

        r.run("hold %d connections" % total, case_hold)
        r.run("upgrade %d+1 refused with 503" % total, case_full)
        r.run("every connection answers a ping", case_ping)
        r.run("connections released after RST", case_release)
        r.run("broker exits 0", case_exit)
        print("total %.1fs" % (time.monotonic() - t_start))
    finally:
        for p in workers:
            if p.poll() is None:
                p.kill()
                p.wait()
        b.stop()
    r.finish()


def raise_nofile():
    """Debian's default soft open-file limit is 1024, far below the PER_WORKER sockets a worker
    holds. The hard limit is what a process may raise its own soft limit to: take all of it, in
    the parent and in each worker (this same file)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    raise_nofile()
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        main()

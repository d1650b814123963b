# SPDX-License-Identifier: MIT
"""Shared helpers for the integration tests: start the real broker on 127.0.0.1 with port 0,
read the port back from its listening line, stop it and check how it exited.

Used by every tests/integration/test_*.py. The broker binary comes from RINGCAST_BIN (set by
ctest), or build/ringcast for a manual run.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

SRC = os.environ.get("RINGCAST_SOURCE_DIR",
                     os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("RINGCAST_BIN", os.path.join(SRC, "build", "ringcast"))

_LISTEN_RE = re.compile(r"ringcast: listening on (wss?)://([0-9.]+):(\d+)")


class Broker:
    """A running broker. Use as a context manager, or call start() and stop()."""

    def __init__(self, *args, env=None, timeout=10.0):
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.timeout = timeout
        self.proc = None
        self.port = None
        self.tls_port = None
        self.stderr_lines = []
        self._stderr_thread = None

    def start(self):
        args = [BIN, "--listen", "127.0.0.1:0"] + self.args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=self.env, text=True)
        self._stderr_thread = threading.Thread(target=self._pump_stderr, daemon=True)
        self._stderr_thread.start()
        deadline = time.monotonic() + self.timeout
        want_tls = any(a == "--tls-listen" for a in self.args)
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = _LISTEN_RE.search(line)
            if m:
                if m.group(1) == "ws":
                    self.port = int(m.group(3))
                else:
                    self.tls_port = int(m.group(3))
                if self.port and (self.tls_port or not want_tls):
                    threading.Thread(target=self._drain_stdout, daemon=True).start()
                    return self
        self.stop()
        raise RuntimeError("broker did not print its listening line; stderr:\n" +
                           "".join(self.stderr_lines))

    def _pump_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def _drain_stdout(self):
        for _ in self.proc.stdout:
            pass

    @property
    def url(self):
        return "ws://127.0.0.1:%d" % self.port

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=15.0):
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=15.0):
        """SIGTERM, wait, and return the exit status (kills after <timeout>)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        rc = self.stop()
        if exc[0] is None and rc != 0:
            raise AssertionError("broker exited with %r; stderr:\n%s" %
                                 (rc, "".join(self.stderr_lines)))


class Runner:
    """Collects named test functions and prints 'N passed, N failed' at the end."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn, *args):
        t0 = time.monotonic()
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            self.failed += 1
            print("FAIL %s (%.2fs): %r" % (name, time.monotonic() - t0, e), flush=True)
            import traceback
            traceback.print_exc()
        else:
            self.passed += 1
            print("ok   %s (%.2fs)" % (name, time.monotonic() - t0), flush=True)

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)

// SPDX-License-Identifier: MIT
// Shared helpers for the Node integration tests (test_*.js), the Node counterpart of harness.py:
// start the real broker on 127.0.0.1 with port 0 and read its ports back from the listening
// lines, stop it, open `ws` clients with a message queue, settle a room before publishing, and
// a Runner that prints one ok/FAIL line per case and "N passed, N failed". Plain CommonJS;
// works on Node 18 and 20. Test files load it with require('./node_harness'), so it is found
// next to them whatever the working directory. The broker binary comes from RINGCAST_BIN (set
// by ctest) or build/ringcast; `ws` from node_modules here (`npm ci`).
'use strict';

const { spawn } = require('child_process');
const path = require('path');

let WebSocket;
try {
  WebSocket = require('ws');
} catch (e) {
  console.log('FAIL cannot load the ws package (run `npm ci` in tests/integration): ' +
              e.message);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const SRC = process.env.RINGCAST_SOURCE_DIR || path.join(__dirname, '..', '..');
const BIN = process.env.RINGCAST_BIN || path.join(SRC, 'build', 'ringcast');

// A test case: the broker drains on SIGTERM and exits 0.
async function caseBrokerExit(b) {
  const e = await stopBroker(b);
  assert(e.code === 0, 'broker exit ' + JSON.stringify(e) + '; stderr: ' + b.stderr.slice(-500));
}

// ------------------------------------------------------------------------------------------
// Small things

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(what + ': timed out after ' + ms + ' ms')), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

function sendAsync(ws, data, opts) {
  return new Promise((resolve, reject) => ws.send(data, opts || {}, (err) =>
    err ? reject(err) : resolve()));
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// ------------------------------------------------------------------------------------------
// The broker

// Starts the broker with `--listen 127.0.0.1:0` and <args>; resolves with { proc, port, tlsPort,
// stderr, exited, exitedPromise } once it has printed its ws:// listening line, and its wss://
// one as well when <args> holds --tls-listen. Kills the broker if that takes over 10 s.
function startBroker(args) {
  const wantTls = args.includes('--tls-listen');
  const proc = spawn(BIN, ['--listen', '127.0.0.1:0'].concat(args),
                     { stdio: ['ignore', 'pipe', 'pipe'] });
  const broker = { proc, port: 0, tlsPort: 0, stderr: '', exited: null };
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => { broker.stderr += d; });
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      broker.exited = { code, signal };
      resolve(broker.exited);
    });
  });
  broker.exitedPromise = exited;
  const listening = new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /ringcast: listening on ws:\/\/([0-9.]+):(\d+)/.exec(out);
      const t = wantTls ? /ringcast: listening on wss:\/\/([0-9.]+):(\d+)/.exec(out) : null;
      if (m && (t || !wantTls) && !broker.port) {
        broker.port = Number(m[2]);
        if (t) broker.tlsPort = Number(t[2]);
        resolve(broker);
      }
    });
    proc.on('error', reject);
    exited.then((e) => reject(new Error('broker exited early (' + JSON.stringify(e) +
                                        '): ' + broker.stderr)));
  });
  const what = wantTls ? 'broker listening lines' : 'broker listening line';
  return withTimeout(listening, 10000, what).catch((err) => {
    proc.kill('SIGKILL');
    throw err;
  });
}

// SIGTERM, then resolves with the exit { code, signal }; kills the broker and rejects if it has
// not exited within 15 s.
async function stopBroker(broker) {
  if (broker.exited) return broker.exited;
  broker.proc.kill('SIGTERM');
  try {
    return await withTimeout(broker.exitedPromise, 15000, 'broker exit');
  } catch (e) {
    broker.proc.kill('SIGKILL');
    await broker.exitedPromise;
    throw e;
  }
}

// ------------------------------------------------------------------------------------------
// Clients

// A connected client of broker <b> on path <p>, with a message queue: next() resolves with
// {data, isBinary}. When <b>.ca is set it connects over wss:// to <b>.tlsPort and verifies the
// broker's certificate against <b>.ca (server name "localhost"); otherwise ws:// to <b>.port.
function connect(b, p) {
  const opts = { perMessageDeflate: false };
  let url = 'ws://127.0.0.1:' + b.port + p;
  if (b.ca) {
    url = 'wss://127.0.0.1:' + b.tlsPort + p;
    opts.ca = b.ca;             // the generated self-signed certificate is the trust anchor
    opts.rejectUnauthorized = true;
    opts.servername = 'localhost';
  }
  const ws = new WebSocket(url, opts);
  const queue = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    const m = { data: Buffer.from(data), isBinary };
    if (waiters.length) waiters.shift()(m);
    else queue.push(m);
  });
  ws.next = (ms, what) => {
    if (queue.length) return Promise.resolve(queue.shift());
    let waiter;
    const got = new Promise((resolve) => { waiter = resolve; waiters.push(resolve); });
    return withTimeout(got, ms || 5000, what || 'message on ' + p).catch((e) => {
      // Drop this waiter so a later message is not handed to a timed-out caller.
      const i = waiters.indexOf(waiter);
      if (i >= 0) waiters.splice(i, 1);
      throw e;
    });
  };
  ws.closed = new Promise((resolve) => ws.on('close', (code, reason) =>
    resolve({ code, reason: reason.toString() })));
  const opened = new Promise((resolve, reject) => {
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
    ws.on('unexpected-response', (req, res) =>
      reject(new Error('upgrade of ' + p + ' refused: ' + res.statusCode)));
  });
  ws.on('error', () => {});  // reported through `opened` or `closed`
  return withTimeout(opened, 5000, (b.ca ? 'connect wss ' : 'connect ') + p);
}

async function closeAll(list) {
  await Promise.all(list.map((ws) => {
    if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    ws.close(1000);
    return withTimeout(ws.closed, 5000, 'close').catch(() => ws.terminate());
  }));
}

// ------------------------------------------------------------------------------------------
// Rooms

const PROBE = '__settle__';

// A member's join reaches the room's home shard through a cross-shard queue; before a case
// publishes, a probe connection (made like the members, see connect()) publishes probes until
// every member has received one.
async function settle(b, room, members) {
  const p = await connect(b, room);
  let done = false;
  const pump = (async () => {
    while (!done) {
      await sendAsync(p, PROBE);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    await withTimeout(Promise.all(members.map(async (m) => {
      const got = await m.next(10000, 'probe');
      assert(!got.isBinary && got.data.toString() === PROBE,
             'member got ' + got.data.toString().slice(0, 40) + ' before the probe');
    })), 12000, 'settle ' + room);
  } finally {
    done = true;
    await pump;
    p.close();
  }
}

// Next message that is not a probe.
async function nextReal(ws, ms) {
  for (;;) {
    const m = await ws.next(ms);
    if (m.isBinary || m.data.toString() !== PROBE) return m;
  }
}

// ------------------------------------------------------------------------------------------
// Running the cases

// Counts passed and failed cases. If the whole file runs past <totalLimitMs>, prints a FAIL
// line and the summary and exits 1 at once, so a hung case cannot eat the ctest TIMEOUT.
class Runner {
  constructor(totalLimitMs) {
    this.passed = 0;
    this.failed = 0;
    this.guard = setTimeout(() => {
      console.log('FAIL the whole file ran past ' + totalLimitMs + ' ms');
      console.log(this.passed + ' passed, ' + (this.failed + 1) + ' failed');
      process.exit(1);
    }, totalLimitMs);
  }

  // Runs fn(arg), bounded by 60 s, and prints its ok/FAIL line; never rejects.
  async run(name, fn, arg) {
    const t = Date.now();
    try {
      await withTimeout(Promise.resolve().then(() => fn(arg)), 60000, name);
      this.passed++;
      console.log('ok   ' + name + ' (' + ((Date.now() - t) / 1000).toFixed(2) + 's)');
    } catch (e) {
      this.failed++;
      console.log('FAIL ' + name + ' (' + ((Date.now() - t) / 1000).toFixed(2) + 's): ' +
                  (e && e.stack ? e.stack : e));
    }
  }

  // Prints the summary line; the process exits non-zero if any case failed.
  finish() {
    clearTimeout(this.guard);
    console.log(this.passed + ' passed, ' + this.failed + ' failed');
    process.exitCode = this.failed ? 1 : 0;
  }
}

// Runs the async <main>; an error escaping it is one failure.
function runMain(main) {
  main().catch((e) => {
    console.log('FAIL ' + (e && e.stack ? e.stack : e));
    console.log('0 passed, 1 failed');
    process.exit(1);
  });
}

module.exports = {
  SRC, BIN, WebSocket,
  withTimeout, sendAsync, assert,
  startBroker, stopBroker, caseBrokerExit,
  connect, closeAll,
  PROBE, settle, nextReal,
  Runner, runMain,
};

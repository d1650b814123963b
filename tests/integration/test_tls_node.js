// SPDX-License-Identifier: MIT
// Node `ws` clients over wss:// against the real broker: echo (text, 64 KiB, binary, order), a
// room of 10 wss members spread over 4 shards with 4 publishers x 200 messages in order,
// binary frames in a room, clean closes, and SIGTERM (close 1001, exit 0). Every client
// verifies the broker's certificate (`ca` is the generated self-signed one). The whole set runs
// twice: ECDSA certificate with --tls-offload on, RSA with --tls-offload off.
// Certificates come from tools/gen-certs.sh into a temporary directory removed at the end.
// Plain CommonJS, no test framework; works on Node 18 and 20. Prints one ok/FAIL line per case
// and "N passed, N failed"; exits non-zero on failure. The broker, the clients (wss:// because
// each broker here gets a `ca`) and the runner come from node_harness.js next to this file.
'use strict';

const { execFileSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const {
  SRC, withTimeout, sendAsync, assert, startBroker, connect, closeAll, settle, nextReal,
  Runner, runMain,
} = require('./node_harness');

const TOTAL_LIMIT_MS = 90000;

// ------------------------------------------------------------------------------------------
// Cases

async function caseEcho(b) {
  const ws = await connect(b, '/echo');
  const sock = ws._socket;
  assert(sock && typeof sock.getProtocol === 'function', 'not a TLS socket underneath');
  assert(sock.getProtocol() === 'TLSv1.2', 'negotiated ' + sock.getProtocol());
  const fp = sock.getPeerCertificate().fingerprint256;
  assert(fp === b.fingerprint, 'broker presented ' + fp + ', want ' + b.fingerprint);
  for (const s of ['hello', 'héllo wörld ✓ 𝄞', '', 'x'.repeat(65536)]) {
    await sendAsync(ws, s);
    const m = await ws.next();
    assert(!m.isBinary, 'text came back as binary');
    assert(m.data.toString() === s, 'text of ' + s.length + ' chars came back as ' +
           m.data.length + ' bytes');
  }
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  for (const buf of [all, Buffer.alloc(0), crypto.randomBytes(65536)]) {
    await sendAsync(ws, buf, { binary: true });
    const m = await ws.next();
    assert(m.isBinary, 'binary came back as text');
    assert(m.data.equals(buf), 'binary of ' + buf.length + ' bytes came back different (' +
           m.data.length + ' bytes)');
  }
  await closeAll([ws]);
}

async function caseEchoOrder(b) {
  const ws = await connect(b, '/echo');
  const n = 2000;
  for (let i = 0; i < n; i++) ws.send('m' + i);
  for (let i = 0; i < n; i++) {
    const m = await ws.next(10000);
    assert(m.data.toString() === 'm' + i, 'message ' + i + ' came back as ' + m.data);
  }
  await closeAll([ws]);
}

async function caseRoomOrdering(b) {
  const n = 10;
  const pubs = 4;
  const count = 200;
  const room = '/room/node-tls-order-' + b.tag;
  const members = [];
  for (let i = 0; i < n; i++) members.push(await connect(b, room));
  await settle(b, room, members);
  // Members 0..pubs-1 publish; all n check.
  const checks = members.map(async (ws, i) => {
    const next = {};
    for (let p = 0; p < pubs; p++) if (p !== i) next[p] = 0;
    const total = Object.keys(next).length * count;
    for (let k = 0; k < total; k++) {
      const m = await nextReal(ws, 15000).catch(() => {
        throw new Error('member ' + i + ' stalled after ' + k + ' of ' + total +
                        ' messages, next expected ' + JSON.stringify(next));
      });
      const [ps, ns] = m.data.toString().split(':');
      const p = Number(ps);
      const seq = Number(ns);
      assert(p !== i, 'member ' + i + ' got its own message');
      assert(p in next, 'member ' + i + ' got a message from ' + p);
      assert(seq === next[p], 'member ' + i + ': publisher ' + p + ' sent #' + next[p] +
             ' next but #' + seq + ' arrived');
      next[p] = seq + 1;
    }
  });
  const sends = [];
  for (let p = 0; p < pubs; p++) {
    sends.push((async () => {
      for (let s = 0; s < count; s++) {
        await sendAsync(members[p], p + ':' + s);
      }
    })());
  }
  await withTimeout(Promise.all(sends.concat(checks)), 40000, 'room ordering');
  await closeAll(members);
}

async function caseRoomBinary(b) {
  const room = '/room/node-tls-bin-' + b.tag;
  const a = await connect(b, room);
  const c = await connect(b, room);
  const d = await connect(b, room + '?echo=1');
  await settle(b, room, [a, c, d]);
  const buf = crypto.randomBytes(40000);
  await sendAsync(d, buf, { binary: true });
  for (const [name, ws] of [['a', a], ['c', c], ['d (echo=1)', d]]) {
    const m = await nextReal(ws);
    assert(m.isBinary, name + ' got binary as text');
    assert(m.data.equals(buf), name + ' got different bytes');
  }
  await sendAsync(a, 'text stays text');
  for (const ws of [c, d]) {
    const m = await nextReal(ws);
    assert(!m.isBinary && m.data.toString() === 'text stays text', 'text became ' + m.data);
  }
  await closeAll([a, c, d]);
}

async function caseCleanClose(b) {
  const ws = await connect(b, '/echo');
  await sendAsync(ws, 'bye soon');
  await ws.next();
  ws.close(1000, 'bye');
  const c = await withTimeout(ws.closed, 5000, 'close handshake');
  assert(c.code === 1000, 'close 1000 answered with ' + c.code);
  const r = await connect(b, '/room/node-tls-close');
  r.close(4001, 'app');
  const c2 = await withTimeout(r.closed, 5000, 'close handshake');
  assert(c2.code === 4001 || c2.code === 1000, 'close 4001 answered with ' + c2.code);
}

async function caseDrain(b) {
  const ws = await connect(b, '/echo');
  await sendAsync(ws, 'up');
  await ws.next();
  b.proc.kill('SIGTERM');
  const c = await withTimeout(ws.closed, 5000, 'close after SIGTERM');
  assert(c.code === 1001, 'SIGTERM: close code ' + c.code + ', want 1001');
  const e = await withTimeout(b.exitedPromise, 15000, 'broker exit');
  assert(e.code === 0, 'broker exit ' + JSON.stringify(e) + '; stderr: ' + b.stderr.slice(-500));
}

// ------------------------------------------------------------------------------------------

function fingerprint256(pemFile) {
  const pem = fs.readFileSync(pemFile, 'utf8');
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const hex = crypto.createHash('sha256').update(Buffer.from(b64, 'base64'))
    .digest('hex').toUpperCase();
  return hex.match(/../g).join(':');
}

async function main() {
  const t0 = Date.now();
  const r = new Runner(TOTAL_LIMIT_MS);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ringcast-tls-node-'));
  try {
    let certsOk = false;
    await r.run('make test certificates (tools/gen-certs.sh)', () => {
      execFileSync('sh', [path.join(SRC, 'tools', 'gen-certs.sh'), tmp],
                   { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60000 });
      certsOk = true;
    });
    const setups = [
      { tag: 'ec-on', cert: 'ec', offload: 'on', name: 'ECDSA, offload on' },
      { tag: 'rsa-off', cert: 'rsa', offload: 'off', name: 'RSA, offload off' },
    ];
    for (const s of (certsOk ? setups : [])) {
      const crt = path.join(tmp, s.cert + '.crt');
      const key = path.join(tmp, s.cert + '.key');
      let b = null;
      await r.run('[' + s.name + '] start the broker', async () => {
        b = await startBroker(['--shards', '4', '--tls-listen', '127.0.0.1:0',
                               '--tls-cert', crt, '--tls-key', key, '--tls-offload', s.offload]);
      });
      if (!b) continue;
      b.tag = s.tag;
      b.ca = fs.readFileSync(crt);
      b.fingerprint = fingerprint256(crt);
      const pre = '[' + s.name + '] ';
      await r.run(pre + 'echo text, 64 KiB, binary over wss', caseEcho, b);
      await r.run(pre + 'echo 2000 messages in order', caseEchoOrder, b);
      await r.run(pre + 'room of 10 wss on 4 shards, 4 x 200 messages in order',
                  caseRoomOrdering, b);
      await r.run(pre + 'binary and text in a wss room', caseRoomBinary, b);
      await r.run(pre + 'clean close', caseCleanClose, b);
      await r.run(pre + 'SIGTERM: close 1001 over wss, exit 0', caseDrain, b);
      if (!b.exited) {
        b.proc.kill('SIGKILL');
        await withTimeout(b.exitedPromise, 5000, 'broker kill').catch(() => {});
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log('total ' + ((Date.now() - t0) / 1000).toFixed(1) + 's');
  r.finish();
}

runMain(main);

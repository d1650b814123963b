// SPDX-License-Identifier: MIT
// Node `ws` clients against the real broker: echo (text, binary, order), a room of 20 members
// spread over 4 shards with per-publisher ordering, binary frames in a room, pings, and clean
// closes. Plain CommonJS, no test framework; works on Node 18 and 20. Prints one ok/FAIL line
// per case and "N passed, N failed"; exits non-zero on failure. The broker, the clients and the
// runner come from node_harness.js next to this file.
'use strict';

const crypto = require('crypto');
const {
  withTimeout, sendAsync, assert, startBroker, stopBroker, caseBrokerExit, connect, closeAll,
  settle, nextReal,
  Runner, runMain,
} = require('./node_harness');

const TOTAL_LIMIT_MS = 90000;

// ------------------------------------------------------------------------------------------
// Cases

async function caseEchoText(b) {
  const ws = await connect(b, '/echo');
  for (const s of ['hello', 'héllo wörld ✓ 𝄞', '', 'x'.repeat(65536)]) {
    await sendAsync(ws, s);
    const m = await ws.next();
    assert(!m.isBinary, 'text came back as binary');
    assert(m.data.toString() === s, 'text of ' + s.length + ' chars came back as ' +
           m.data.length + ' bytes');
  }
  await closeAll([ws]);
}

async function caseEchoBinary(b) {
  const ws = await connect(b, '/echo');
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  for (const buf of [all, Buffer.alloc(0), crypto.randomBytes(60000)]) {
    await sendAsync(ws, buf, { binary: true });
    const m = await ws.next();
    assert(m.isBinary, 'binary came back as text');
    assert(m.data.equals(buf), 'binary of ' + buf.length + ' bytes came back different');
  }
  await closeAll([ws]);
}

async function caseEchoOrder(b) {
  const ws = await connect(b, '/echo');
  const n = 3000;
  for (let i = 0; i < n; i++) ws.send('m' + i);
  for (let i = 0; i < n; i++) {
    const m = await ws.next(10000);
    assert(m.data.toString() === 'm' + i, 'message ' + i + ' came back as ' + m.data);
  }
  await closeAll([ws]);
}

async function casePing(b) {
  const ws = await connect(b, '/echo');
  const pong = new Promise((resolve) => ws.once('pong', (data) => resolve(data)));
  ws.ping(Buffer.from('node-ping'));
  const data = await withTimeout(pong, 5000, 'pong');
  assert(data.toString() === 'node-ping', 'pong payload ' + data);
  await closeAll([ws]);
}

async function caseRoomOrdering(b) {
  const n = 20;
  const pubs = 4;
  const count = 500;
  const room = '/room/node-order';
  const members = [];
  for (let i = 0; i < n; i++) members.push(await connect(b, room));
  await settle(b, room, members);
  // Members 0..pubs-1 publish; all n check.
  const checks = members.map(async (ws, i) => {
    const expectFrom = [];
    for (let p = 0; p < pubs; p++) if (p !== i) expectFrom.push(p);
    const next = {};
    for (const p of expectFrom) next[p] = 0;
    const total = expectFrom.length * count;
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
  const room = '/room/node-bin';
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
  assert(c.code === 1000, 'close answered with ' + c.code);
  const r = await connect(b, '/room/node-close');
  r.close(4001, 'app');
  const c2 = await withTimeout(r.closed, 5000, 'close handshake');
  assert(c2.code === 4001 || c2.code === 1000, 'close 4001 answered with ' + c2.code);
}

async function caseTooBig(b) {
  const ws = await connect(b, '/echo');
  ws.send(Buffer.alloc(65537), { binary: true });
  const c = await withTimeout(ws.closed, 5000, 'close after an oversized message');
  assert(c.code === 1009, 'close code ' + c.code + ', want 1009');
}

// ------------------------------------------------------------------------------------------

async function main() {
  const r = new Runner(TOTAL_LIMIT_MS);
  let b = null;
  try {
    b = await startBroker(['--shards', '4']);
  } catch (e) {
    console.log('FAIL start the broker: ' + e.message);
    r.failed++;
  }
  if (b) {
    await r.run('echo text', caseEchoText, b);
    await r.run('echo binary', caseEchoBinary, b);
    await r.run('echo 3000 messages in order', caseEchoOrder, b);
    await r.run('ping -> pong', casePing, b);
    await r.run('room of 20 on 4 shards, 4 x 500 messages in order', caseRoomOrdering, b);
    await r.run('binary and text in a room', caseRoomBinary, b);
    await r.run('clean close', caseCleanClose, b);
    await r.run('oversized message -> 1009', caseTooBig, b);
    await r.run('broker exits 0 on SIGTERM', caseBrokerExit, b);
    if (!b.exited) b.proc.kill('SIGKILL');
  }
  r.finish();
}

runMain(main);

// SPDX-License-Identifier: MIT
// The official Centrifugo JavaScript SDK (npm `centrifuge` 5.8.0, on `ws`) against the real
// broker's protocol mode, WS /connection/websocket: two SDK clients connect anonymously,
// subscribe to one channel, publish, and each receives the other's publications and its own, in
// order per publisher; a raw /room/<name> member of the same room receives the SDK's data as
// JSON text and the SDK clients receive the raw member's JSON; disconnect() closes cleanly; the
// SDK answers the application-level ping and stays connected.
// Plain CommonJS; works on Node 18 and 20. Prints one ok/FAIL line per case and
// "N passed, N failed".
'use strict';

const {
  WebSocket, withTimeout, sendAsync, assert, startBroker, stopBroker, caseBrokerExit, connect,
  closeAll, Runner,
  runMain,
} = require('./node_harness');

let Centrifuge;
try {
  ({ Centrifuge } = require('centrifuge'));
} catch (e) {
  console.log('FAIL cannot load the centrifuge package (run `npm ci` in tests/integration): ' +
              e.message);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const TOTAL_LIMIT_MS = 90000;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// An SDK client connected to broker <b>, subscribed to <channel>, with every publication it
// receives kept in order in `.pubs` (data only).
async function sdkClient(b, channel) {
  const url = 'ws://127.0.0.1:' + b.port + '/connection/websocket';
  const client = new Centrifuge(url, { websocket: WebSocket, timeout: 5000 });
  const connected = new Promise((resolve, reject) => {
    client.on('connected', resolve);
    client.on('disconnected', (ctx) => reject(new Error('disconnected: ' + JSON.stringify(ctx))));
  });
  client.errors = [];
  client.on('error', (ctx) => client.errors.push(ctx));
  const sub = client.newSubscription(channel);
  client.pubs = [];
  sub.on('publication', (ctx) => client.pubs.push(ctx.data));
  const subscribed = new Promise((resolve, reject) => {
    sub.on('subscribed', resolve);
    sub.on('unsubscribed', (ctx) =>
      reject(new Error('unsubscribed: ' + JSON.stringify(ctx))));
  });
  sub.subscribe();
  client.connect();
  client.connectCtx = await withTimeout(connected, 5000, 'SDK connect');
  await withTimeout(subscribed, 5000, 'SDK subscribe');
  client.sub = sub;
  return client;
}

async function until(pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(what + ': timed out after ' + ms + ' ms');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function isProbe(d) {
  return d !== null && typeof d === 'object' && 'probe' in d;
}

// Subscriptions reach the room's home shard through cross-shard queues: publish probes until
// every SDK client and the raw member have one, then forget them.
async function settle(a, clients, raw) {
  let rawGot = !raw;
  const onRaw = (data) => {
    try {
      if (isProbe(JSON.parse(data.toString()))) rawGot = true;
    } catch (e) { /* not a probe */ }
  };
  if (raw) raw.on('message', onRaw);
  let k = 0;
  await withTimeout((async () => {
    while (!(rawGot && clients.every((c) => c.pubs.some(isProbe)))) {
      await a.sub.publish({ probe: k++ });
      await new Promise((r) => setTimeout(r, 50));
    }
  })(), 10000, 'settle');
  await new Promise((r) => setTimeout(r, 200));
  if (raw) {
    raw.off('message', onRaw);
    // Drop what the raw member queued meanwhile (probes only).
    for (;;) {
      const m = await raw.next(100).catch(() => null);
      if (!m) break;
      assert(isProbe(JSON.parse(m.data.toString())), 'raw member got ' + m.data.toString());
    }
  }
  for (const c of clients) c.pubs = [];
}

async function casePublishSubscribe(b) {
  const ch = 'sdk-chat';
  const alice = await sdkClient(b, ch);
  const bob = await sdkClient(b, ch);
  assert(UUID_RE.test(alice.connectCtx.client), 'client id ' + alice.connectCtx.client);
  assert(alice.connectCtx.client !== bob.connectCtx.client, 'two clients, one id');
  const raw = await connect(b, '/room/' + ch);
  await settle(alice, [alice, bob], raw);

  const N = 25;
  const sends = [];
  for (let i = 0; i < N; i++) {
    sends.push(alice.sub.publish({ from: 'alice', n: i }));
    sends.push(bob.sub.publish({ from: 'bob', n: i, text: 'héllo ✓' }));
  }
  await withTimeout(Promise.all(sends), 5000, 'publish replies');
  for (const c of [alice, bob]) {
    await until(() => c.pubs.length >= 2 * N, 5000, 'publications');
    for (const who of ['alice', 'bob']) {
      const seq = c.pubs.filter((d) => d.from === who).map((d) => d.n);
      assert(JSON.stringify(seq) === JSON.stringify([...Array(N).keys()]),
             who + "'s publications arrived as " + JSON.stringify(seq));
    }
    assert(c.pubs.length === 2 * N, c.pubs.length + ' publications, want ' + 2 * N);
  }

  // The raw member gets the SDK's data as JSON text frames.
  const rawGot = [];
  while (rawGot.length < 2 * N) {
    const m = await raw.next(5000, 'raw member');
    assert(!m.isBinary, 'binary frame to the raw member');
    rawGot.push(JSON.parse(m.data.toString()));
  }
  const aliceSeq = rawGot.filter((d) => d.from === 'alice').map((d) => d.n);
  assert(aliceSeq.length === N && aliceSeq.every((n, i) => n === i), 'raw saw ' +
         JSON.stringify(aliceSeq));
  assert(rawGot.some((d) => d.text === 'héllo ✓'), 'UTF-8 text lost on the way to raw');

  // And the SDK gets the raw member's JSON as JSON, and its plain text as a string.
  await sendAsync(raw, '{"from":"raw","list":[1,2,3]}');
  await sendAsync(raw, 'just text');
  for (const c of [alice, bob]) {
    await until(() => c.pubs.length >= 2 * N + 2, 5000, 'raw publications');
    const [j, t] = c.pubs.slice(2 * N);
    assert(JSON.stringify(j) === '{"from":"raw","list":[1,2,3]}', 'got ' + JSON.stringify(j));
    assert(t === 'just text', 'got ' + JSON.stringify(t));
  }

  // disconnect(): a clean close, and the other clients carry on.
  const gone = new Promise((resolve) => alice.on('disconnected', resolve));
  alice.disconnect();
  const ctx = await withTimeout(gone, 5000, 'disconnected event');
  assert(ctx.code === 0, 'disconnect code ' + JSON.stringify(ctx));
  await bob.sub.publish({ from: 'bob', n: 'last' });
  await until(() => bob.pubs.length === 2 * N + 3, 5000, 'publication after the disconnect');
  const m = await raw.next(5000, 'raw after the disconnect');
  assert(JSON.parse(m.data.toString()).n === 'last', 'raw got ' + m.data.toString());
  assert(alice.pubs.length === 2 * N + 2, 'alice heard after disconnect');
  assert(alice.errors.length === 0 && bob.errors.length === 0,
         'SDK errors: ' + JSON.stringify(alice.errors.concat(bob.errors)));
  bob.disconnect();
  await closeAll([raw]);
}

// --ping-interval 1 and --idle-timeout 2: the SDK learns the interval from the connect reply,
// answers each `{}` with `{}`, and so outlives the idle timeout several times over without a
// reconnect; a publication still gets through afterwards.
async function casePingPong(b) {
  const c = await sdkClient(b, 'sdk-ping');
  let reconnects = 0;
  c.on('connecting', () => reconnects++);
  await new Promise((r) => setTimeout(r, 5000));
  assert(reconnects === 0, reconnects + ' reconnects');
  assert(c.state === 'connected', 'state ' + c.state);
  await c.sub.publish({ still: 'here' });
  await until(() => c.pubs.some((d) => d.still === 'here'), 5000, 'publication after pings');
  c.disconnect();
}

async function main() {
  const r = new Runner(TOTAL_LIMIT_MS);
  let b = null;
  try {
    b = await startBroker(['--shards', '2']);
  } catch (e) {
    console.log('FAIL start the broker: ' + e.message);
    r.failed++;
  }
  if (b) {
    await r.run('SDK: two clients and a raw member on one channel', casePublishSubscribe, b);
    await r.run('broker exits 0 on SIGTERM', caseBrokerExit, b);
    if (!b.exited) b.proc.kill('SIGKILL');
  }
  let p = null;
  try {
    p = await startBroker(['--shards', '1', '--ping-interval', '1', '--idle-timeout', '2']);
  } catch (e) {
    console.log('FAIL start the broker: ' + e.message);
    r.failed++;
  }
  if (p) {
    await r.run('SDK answers the {} ping and stays connected', casePingPong, p);
    await r.run('broker exits 0 on SIGTERM (pings)', caseBrokerExit, p);
    if (!p.exited) p.proc.kill('SIGKILL');
  }
  r.finish();
}

runMain(main);

// SPDX-License-Identifier: MIT
// The official Centrifugo JavaScript SDK (npm `centrifuge` 5.8.0, on `ws`) against the real
// broker's protocol mode, WS /connection/websocket, with two shards and enough clients that both
// are used:
// - publish/subscribe: two anonymous SDK clients and a raw /room/<name> member of one channel
//   hear each other, in order per publisher; disconnect() closes cleanly;
// - ping/pong: the SDK answers the application-level ping and outlives the idle timeout;
// - HS256 connection tokens (`token` option): with `getToken`, the SDK sends `refresh` at `ttl`
//   and stays on the same connection well past the first token's expiry; without `getToken` it
//   reports a configuration error and disconnects itself (code 1 "unauthorized") at `ttl`, and a
//   token already expired is answered 109 and ends the same way; a bad signature is close 3500,
//   final for the SDK; a refresh left unanswered gets the broker's close 3005, after which the
//   SDK reconnects with a new token; a `$` subscription's getToken keeps it past its token's exp
//   through `sub_refresh`;
// - presence and presence_stats from the SDK, and `joinLeave` subscriptions getting join and
//   leave events whose ClientInfo has the token's `sub` as user and its `info` as connInfo; a
//   socket cut under the SDK is a leave, its reconnect a join with the new client id;
// - history with limit, since and reverse: offsets, epoch, publications with and without info;
// - recovery: a `recoverable`, `positioned` subscription whose socket is cut under the SDK
//   (no disconnect() call) while another client publishes; the SDK reconnects by itself and
//   gets `wasRecovering` and `recovered`, the missed publications once each, in order; with
//   --history-size 2 and more missed, `recovered: false` and no partial replay; unsubscribe and
//   subscribe cycles under a running publisher lose and double nothing (a gap only where the
//   SDK was told `recovered: false`);
// - private `$` channels (subscription token from `getToken`, with its `info` as chanInfo;
//   none: unsubscribed 103) and user-limited `dialog#alice,bob` channels;
// - server-side subscriptions from the token's `channels` claim: the client's own
//   `subscribed` and `publication` events;
// - the server HTTP API (--api-key): publish reaches the SDK without info, send is the client's
//   `message` event, presence and history list it, unsubscribe is `unsubscribed` 2000,
//   disconnect 4501 is a terminal `disconnected` with that code and reason;
// - both shards served some of the SDK clients (GET /stats).
// Every SDK socket goes through a `ws` subclass that logs the frames both ways; a failed case
// prints the last of them, and RINGCAST_SDK_TRACE=1 prints them all. Plain CommonJS; works on
// Node 18 and 20. Prints one ok/FAIL line per case and "N passed, N failed".
'use strict';

const crypto = require('crypto');
const http = require('http');
const net = require('net');

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

const TOTAL_LIMIT_MS = 120000;
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

// ------------------------------------------------------------------------------------------
// Tokens, traced SDK clients

const SECRET = 'sdk-test-secret';

function nowS() {
  return Math.floor(Date.now() / 1000);
}

// An HS256 JWT of <claims> signed with <secret> (PROTOCOL-CENTRIFUGO.md §9).
function jwt(claims, secret) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const signed = enc({ alg: 'HS256', typ: 'JWT' }) + '.' + enc(claims);
  return signed + '.' +
         crypto.createHmac('sha256', secret || SECRET).update(signed).digest('base64url');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A loopback port whose listener drops every connection at once: while a case blocks a client,
// the SDK's reconnects go there and fail fast (set by main()).
let refuserPort = 0;

// Keeps every event of <names> that <emitter> emits, in order, in <emitter>.ev[name], each as
// a copy of its context with `at` (Date.now()) added.
function record(emitter, names) {
  emitter.ev = {};
  for (const n of names) {
    emitter.ev[n] = [];
    emitter.on(n, (ctx) => emitter.ev[n].push(Object.assign({ at: Date.now() }, ctx)));
  }
  return emitter;
}

const CLIENT_EVENTS = ['connecting', 'connected', 'disconnected', 'error', 'subscribed',
                       'subscribing', 'unsubscribed', 'publication', 'join', 'leave', 'message'];
const SUB_EVENTS = ['subscribing', 'subscribed', 'unsubscribed', 'publication', 'join', 'leave',
                    'error'];

// One case's SDK clients on broker <b>. Each client's WebSocket is a `ws` subclass that logs
// every frame ('>' sent, '<' received, '#' open and close) so a failure can show the wire, keeps
// its open sockets so the case can cut one (cut(): a TCP reset, no close frame, as when the
// network goes), and while the client is blocked sends new sockets to the refuser. done()
// disconnects every client.
class Kit {
  constructor(b) {
    this.b = b;
    this.url = 'ws://127.0.0.1:' + b.port + '/connection/websocket';
    this.lines = [];
    this.clients = [];
    this.t0 = Date.now();
  }

  log(name, dir, text) {
    this.lines.push({ at: Date.now() - this.t0, name, dir, text: String(text) });
  }

  // A new SDK client called <name> (in the log), not connected yet; <opts> go to Centrifuge.
  client(name, opts) {
    const kit = this;
    const gate = { blocked: false, sockets: new Set() };
    class Traced extends WebSocket {
      constructor(url, protocols) {
        const blocked = gate.blocked;
        super(blocked ? 'ws://127.0.0.1:' + refuserPort + '/connection/websocket' : url,
              protocols);
        kit.log(name, '#', blocked ? 'socket to the refuser' : 'socket');
        gate.sockets.add(this);
        this.addEventListener('message', (e) => kit.log(name, '<', e.data));
        this.addEventListener('close', (e) => {
          gate.sockets.delete(this);
          kit.log(name, '#', 'close ' + e.code + ' ' + e.reason);
        });
      }

      send(data, ...rest) {
        kit.log(name, '>', data);
        return super.send(data, ...rest);
      }
    }
    const c = new Centrifuge(this.url, Object.assign({
      websocket: Traced, timeout: 5000, minReconnectDelay: 100, maxReconnectDelay: 400,
    }, opts || {}));
    record(c, CLIENT_EVENTS);
    c.name = name;
    c.gate = gate;
    c.cut = () => {
      for (const ws of gate.sockets) ws.terminate();
    };
    this.clients.push(c);
    return c;
  }

  // A new subscription of client <c> to <channel>, its events recorded.
  sub(c, channel, opts) {
    return record(c.newSubscription(channel, opts || {}), SUB_EVENTS);
  }

  // Connects <c> and resolves with its `connected` context.
  async connected(c) {
    c.connect();
    await until(() => c.ev.connected.length > 0 || c.ev.disconnected.length > 0, 5000,
                c.name + ' connected');
    assert(c.ev.connected.length > 0, c.name + ' disconnected: ' +
           JSON.stringify(c.ev.disconnected));
    return c.ev.connected[0];
  }

  // Subscribes <sub> and resolves with its `subscribed` context.
  async subscribed(sub) {
    const n = sub.ev.subscribed.length;
    const u = sub.ev.unsubscribed.length;
    sub.subscribe();
    await until(() => sub.ev.subscribed.length > n || sub.ev.unsubscribed.length > u, 5000,
                'subscribed to ' + sub.channel);
    assert(sub.ev.subscribed.length > n, sub.channel + ' unsubscribed: ' +
           JSON.stringify(sub.ev.unsubscribed.slice(u)));
    return sub.ev.subscribed[n];
  }

  // Every JSON message client <name> received (dir '<') or sent ('>'), in order.
  messages(name, dir) {
    const out = [];
    for (const l of this.lines) {
      if (l.name !== name || l.dir !== dir) continue;
      for (const part of l.text.split('\n')) {
        if (part !== '') out.push(JSON.parse(part));
      }
    }
    return out;
  }

  // The last <n> frames, for a failure message.
  tail(n) {
    return this.lines.slice(-n).map((l) => '    ' + (l.at / 1000).toFixed(3) + ' ' + l.name +
      ' ' + l.dir + ' ' +
      (l.text.length > 400 ? l.text.slice(0, 400) + '…' : l.text)).join('\n');
  }

  done() {
    for (const c of this.clients) c.disconnect();
  }
}

// A case <fn>(b, kit) whose failure message ends with the last frames of its clients.
function traced(fn) {
  return async (b) => {
    const kit = new Kit(b);
    try {
      await fn(b, kit);
    } catch (e) {
      const err = new Error((e && e.message) + '\n  last frames:\n' + kit.tail(40));
      err.stack = err.message + '\n' + String(e && e.stack).split('\n').slice(1).join('\n');
      throw err;
    } finally {
      kit.done();
      if (process.env.RINGCAST_SDK_TRACE) console.log(kit.tail(kit.lines.length));
    }
  };
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// ------------------------------------------------------------------------------------------
// Connection tokens and their expiry

// A token that expires 3 s from now, and a getToken giving a new such token each time: the
// connect reply says `expires` and `ttl`, the SDK sends `refresh` every `ttl` s and the
// connection lives on well past the first token's exp and the broker's grace after it.
async function caseTokenRefresh(b, kit) {
  const info = { name: 'Rita' };
  let calls = 0;
  const c = kit.client('rita', {
    token: jwt({ sub: 'rita', exp: nowS() + 3, info }),
    getToken: async () => {
      calls++;
      return jwt({ sub: 'rita', exp: nowS() + 3, info });
    },
  });
  const t0 = Date.now();
  const ctx = await kit.connected(c);
  assert(UUID_RE.test(ctx.client), 'client id ' + ctx.client);
  const reply = kit.messages('rita', '<').find((m) => m.connect);
  assert(reply.connect.expires === true && reply.connect.ttl >= 1 && reply.connect.ttl <= 3,
         'connect reply ' + JSON.stringify(reply));
  await sleep(9500 - (Date.now() - t0));
  assert(c.state === 'connected', 'state ' + c.state);
  assert(c.ev.connecting.length === 1 && c.ev.connected.length === 1,
         'reconnected: ' + JSON.stringify(c.ev.connecting));
  assert(calls >= 2, calls + ' getToken calls in 9.5 s');
  const sent = kit.messages('rita', '>').filter((m) => m.refresh);
  assert(sent.length === calls, sent.length + ' refresh commands, ' + calls + ' getToken calls');
  await until(() => kit.messages('rita', '<').filter((m) => m.refresh).length === sent.length,
              5000, 'refresh replies');
  const got = kit.messages('rita', '<').filter((m) => m.refresh);
  for (const r of got) {
    assert(r.refresh.expires === true && r.refresh.ttl >= 1 && r.refresh.ttl <= 3,
           'refresh reply ' + JSON.stringify(r));
  }
  // Still the same connection, and it works.
  const s = kit.sub(c, 'rita-after');
  await kit.subscribed(s);
  const st = await s.presenceStats();
  assert(st.numClients === 1 && st.numUsers === 1, 'presence_stats ' + JSON.stringify(st));
  const pr = await s.presence();
  assert(same(Object.keys(pr.clients), [ctx.client]), 'presence ' + JSON.stringify(pr));
  assert(c.ev.error.length === 0, 'errors ' +
         JSON.stringify(c.ev.error));
}

// Without getToken, the SDK cannot refresh: at `ttl` it reports a configuration error and
// disconnects itself ("unauthorized", code 1), before the broker's 3005 would come; it does not
// reconnect. A token already expired is answered 109 and ends the same way.
async function caseTokenNoGetToken(b, kit) {
  const c = kit.client('nora', { token: jwt({ sub: 'nora', exp: nowS() + 3 }) });
  await kit.connected(c);
  const ttl = kit.messages('nora', '<').find((m) => m.connect).connect.ttl;
  await until(() => c.ev.disconnected.length > 0, (ttl + 3) * 1000, 'disconnected at ttl');
  const d = c.ev.disconnected[0];
  assert(d.code === 1 && d.reason === 'unauthorized', 'disconnected ' + JSON.stringify(d));
  const late = d.at - c.ev.connected[0].at;
  assert(late >= ttl * 1000 - 200 && late <= ttl * 1000 + 1500, 'disconnected after ' + late +
         ' ms, ttl ' + ttl);
  assert(c.ev.error.some((e) => e.type === 'configuration' && e.error.code === 12),
         'errors ' + JSON.stringify(c.ev.error));
  assert(kit.messages('nora', '>').every((m) => !m.refresh), 'a refresh was sent');

  const x = kit.client('xena', { token: jwt({ sub: 'xena', exp: nowS() - 10 }) });
  x.connect();
  await until(() => x.ev.disconnected.length > 0, 5000, 'expired token: disconnected');
  assert(x.ev.connected.length === 0, 'connected with an expired token');
  const dx = x.ev.disconnected[0];
  assert(dx.code === 1 && dx.reason === 'unauthorized', 'disconnected ' + JSON.stringify(dx));
  const r = kit.messages('xena', '<').filter((m) => m.id);
  assert(r.length === 1 && same(r[0].error, { code: 109, message: 'token expired' }),
         'replies ' + JSON.stringify(r));
  await sleep(1000);
  assert(c.state === 'disconnected' && x.state === 'disconnected' &&
         c.ev.connecting.length === 1, 'reconnected after the disconnect');
}

// A token signed with another secret: close 3500 "invalid token", which the SDK takes as final
// (disconnected 3500, no reconnect, getToken never asked).
async function caseTokenInvalid(b, kit) {
  let calls = 0;
  const c = kit.client('ivan', {
    token: jwt({ sub: 'ivan' }, 'not-the-secret'),
    getToken: async () => {
      calls++;
      return jwt({ sub: 'ivan' });
    },
  });
  c.connect();
  await until(() => c.ev.disconnected.length > 0, 5000, 'disconnected');
  const d = c.ev.disconnected[0];
  assert(d.code === 3500 && d.reason === 'invalid token', 'disconnected ' + JSON.stringify(d));
  await sleep(700);
  assert(c.ev.connected.length === 0 && c.ev.connecting.length === 1 && calls === 0 &&
         c.state === 'disconnected', 'after 3500: ' + JSON.stringify(c.ev) + ', ' + calls +
         ' getToken calls');
  assert(kit.lines.some((l) => l.dir === '#' && l.text === 'close 3500 invalid token'),
         'no close 3500 frame');
}

// A getToken that does not answer the first time: no refresh reaches the broker, which closes
// 3005 "connection expired" a few seconds after exp; the SDK takes it as a reconnect, its old
// token is answered 109, and the next getToken's token connects it again.
async function caseTokenExpiredClose(b, kit) {
  let calls = 0;
  const c = kit.client('eric', {
    token: jwt({ sub: 'eric', exp: nowS() + 3 }),
    getToken: () => {
      calls++;
      if (calls === 1) return new Promise(() => {});
      return Promise.resolve(jwt({ sub: 'eric', exp: nowS() + 600 }));
    },
  });
  const first = await kit.connected(c);
  await until(() => c.ev.connected.length === 2, 15000, 'connected again');
  assert(calls === 2, calls + ' getToken calls');
  const why = c.ev.connecting.slice(1).map((e) => [e.code, e.reason]);
  assert(same(why[0], [3005, 'connection expired']), 'connecting ' + JSON.stringify(why));
  const late = c.ev.connecting[1].at - first.at;
  assert(late >= 3000 && late <= 10000, '3005 after ' + late + ' ms');
  assert(kit.lines.some((l) => l.dir === '#' && l.text === 'close 3005 connection expired'),
         'no close 3005 frame');
  const errs = kit.messages('eric', '<').filter((m) => m.error);
  assert(errs.length === 1 && errs[0].error.code === 109, 'errors ' + JSON.stringify(errs));
  assert(c.ev.connected[1].client !== first.client, 'same client id after a reconnect');
  assert(c.ev.disconnected.length === 0, 'disconnected ' + JSON.stringify(c.ev.disconnected));
}

// A `$` channel's subscription token expires 3 s from now and the subscription's getToken gives
// a new such token each time: the SDK sends `sub_refresh` every `ttl` s and the subscription
// lives on past the broker's grace (no unsubscribe push 2501, no resubscribe).
async function caseSubTokenRefresh(b, kit) {
  const c = kit.client('stan', { token: jwt({ sub: 'stan' }) });
  await kit.connected(c);
  let calls = 0;
  const s = kit.sub(c, '$sdk-subref', {
    getToken: async (ctx) => {
      calls++;
      return jwt({ sub: 'stan', channel: ctx.channel, exp: nowS() + 3 });
    },
  });
  const t0 = Date.now();
  await kit.subscribed(s);
  const reply = kit.messages('stan', '<').find((m) => m.subscribe);
  assert(reply.subscribe.expires === true && reply.subscribe.ttl >= 1 &&
         reply.subscribe.ttl <= 3, 'subscribe reply ' + JSON.stringify(reply));
  await sleep(9500 - (Date.now() - t0));
  assert(calls >= 3, calls + ' getToken calls in 9.5 s');
  const sent = kit.messages('stan', '>').filter((m) => m.sub_refresh);
  assert(sent.length === calls - 1, sent.length + ' sub_refresh, ' + calls + ' getToken calls');
  await until(() => kit.messages('stan', '<').filter((m) => m.sub_refresh).length ===
                    sent.length, 5000, 'sub_refresh replies');
  for (const r of kit.messages('stan', '<').filter((m) => m.sub_refresh)) {
    assert(r.sub_refresh.expires === true && r.sub_refresh.ttl >= 1 && r.sub_refresh.ttl <= 3,
           'sub_refresh reply ' + JSON.stringify(r));
  }
  assert(kit.messages('stan', '<').every((m) => !(m.push && m.push.unsubscribe)),
         'an unsubscribe push came');
  assert(s.state === 'subscribed' && s.ev.subscribed.length === 1 &&
         s.ev.subscribing.length === 1 && s.ev.error.length === 0,
         'subscription ' + s.state + ' ' + JSON.stringify(s.ev));
  await s.publish({ still: 'here' });
  await until(() => s.ev.publication.length === 1, 5000, 'publication after the refreshes');
}

// ------------------------------------------------------------------------------------------
// Presence, join and leave

// A `joinLeave` watcher and five more subscribers, all with tokens: the watcher's join events
// (its own first) carry each one's user and connInfo; presence lists them all, presence_stats
// counts clients and distinct users; an unsubscribe and a disconnect are two leave events.
async function casePresenceJoinLeave(b, kit) {
  const ch = 'sdk-pres';
  const w = kit.client('wanda', { token: jwt({ sub: 'wanda', info: { name: 'Wanda' } }) });
  const wid = (await kit.connected(w)).client;
  const ws = kit.sub(w, ch, { joinLeave: true });
  await kit.subscribed(ws);
  await until(() => ws.ev.join.length === 1, 5000, 'own join');
  assert(same(ws.ev.join[0].info, { client: wid, user: 'wanda', connInfo: { name: 'Wanda' } }),
         'own join ' + JSON.stringify(ws.ev.join[0]));

  const users = ['amy', 'amy', 'ben', 'cid', 'dan'];
  const others = [];
  for (let i = 0; i < users.length; i++) {
    const info = { name: users[i], i };
    const c = kit.client('o' + i, { token: jwt({ sub: users[i], info }) });
    c.id = (await kit.connected(c)).client;
    c.info = info;
    c.s = kit.sub(c, ch, i === 4 ? { joinLeave: true } : {});
    await kit.subscribed(c.s);
    others.push(c);
  }
  await until(() => ws.ev.join.length === 6, 5000, 'joins');
  for (const c of others) {
    const j = ws.ev.join.filter((e) => e.info.client === c.id);
    assert(j.length === 1 && j[0].channel === ch &&
           same(j[0].info, { client: c.id, user: users[others.indexOf(c)], connInfo: c.info }),
           'join of ' + c.name + ': ' + JSON.stringify(j));
  }
  // Who did not ask gets none; the last one (joinLeave) gets its own.
  assert(others[0].s.ev.join.length === 0, 'joins without joinLeave');
  assert(others[4].s.ev.join.length >= 1 && others[4].s.ev.join[0].info.client === others[4].id,
         'o4 joins ' + JSON.stringify(others[4].s.ev.join));

  const pr = await ws.presence();
  const want = [wid].concat(others.map((c) => c.id)).sort();
  assert(same(Object.keys(pr.clients).sort(), want), 'presence ' + JSON.stringify(pr));
  assert(pr.clients[wid].user === 'wanda' && same(pr.clients[wid].connInfo, { name: 'Wanda' }),
         'presence of wanda ' + JSON.stringify(pr.clients[wid]));
  for (const c of others) {
    const e = pr.clients[c.id];
    assert(e.client === c.id && e.user === c.info.name && same(e.connInfo, c.info),
           'presence of ' + c.name + ': ' + JSON.stringify(e));
  }
  let st = await others[2].s.presenceStats();
  assert(st.numClients === 6 && st.numUsers === 5, 'presence_stats ' + JSON.stringify(st));

  // amy's first connection unsubscribes, ben's disconnects: two leaves.
  others[0].s.unsubscribe();
  others[2].disconnect();
  await until(() => ws.ev.leave.length === 2, 5000, 'leaves');
  for (const c of [others[0], others[2]]) {
    const l = ws.ev.leave.filter((e) => e.info.client === c.id);
    assert(l.length === 1 && same(l[0].info, { client: c.id, user: c.info.name,
                                                connInfo: c.info }),
           'leave of ' + c.name + ': ' + JSON.stringify(ws.ev.leave));
  }
  st = await ws.presenceStats();
  assert(st.numClients === 4 && st.numUsers === 4, 'presence_stats after ' + JSON.stringify(st));
  await sleep(200);
  assert(ws.ev.join.length === 6 && ws.ev.leave.length === 2, 'more join/leave events');
}

// A `joinLeave` subscriber's socket is cut under the SDK: the watcher gets its leave (the
// broker saw the connection go without a close frame), then, once the SDK is back by itself,
// its join with the new client id and the same user and connInfo.
async function caseCutLeaveJoin(b, kit) {
  const ch = 'sdk-cut';
  const w = kit.client('walt', { token: jwt({ sub: 'walt' }) });
  await kit.connected(w);
  const ws = kit.sub(w, ch, { joinLeave: true });
  await kit.subscribed(ws);
  const info = { name: 'Olga' };
  const o = kit.client('olga', { token: jwt({ sub: 'olga', info }) });
  const oid = (await kit.connected(o)).client;
  const os = kit.sub(o, ch, { joinLeave: true });
  await kit.subscribed(os);
  await until(() => ws.ev.join.length === 2, 5000, 'olga joins');
  o.gate.blocked = true;
  o.cut();
  await until(() => ws.ev.leave.length === 1, 5000, 'leave after the cut');
  assert(same(ws.ev.leave[0].info, { client: oid, user: 'olga', connInfo: info }),
         'leave ' + JSON.stringify(ws.ev.leave));
  o.gate.blocked = false;
  await until(() => ws.ev.join.length === 3, 5000, 'join after the reconnect');
  const nid = o.ev.connected[1].client;
  assert(nid !== oid && same(ws.ev.join[2].info, { client: nid, user: 'olga', connInfo: info }),
         'join ' + JSON.stringify(ws.ev.join[2]) + ', new client id ' + nid);
  const st = await ws.presenceStats();
  assert(st.numClients === 2 && st.numUsers === 2, 'presence_stats ' + JSON.stringify(st));
}

// ------------------------------------------------------------------------------------------
// History

// Five SDK publications and a raw member's sixth: history without a limit is the position only;
// limit with reverse, since, and -1 (all); another epoch is refused with 112.
async function caseHistory(b, kit) {
  const ch = 'sdk-hist';
  const h = kit.client('hank', { token: jwt({ sub: 'hank', info: { role: 'writer' } }) });
  const hid = (await kit.connected(h)).client;
  const s = kit.sub(h, ch);
  await kit.subscribed(s);
  let pos = await s.history();
  assert(pos.publications.length === 0 && pos.offset === 0 && pos.epoch !== '',
         'empty history ' + JSON.stringify(pos));
  for (let i = 1; i <= 5; i++) await s.publish({ n: i });
  const raw = await connect(b, '/room/' + ch);
  await sendAsync(raw, 'from raw');
  await until(() => s.ev.publication.length === 6, 5000, 'six publications');
  pos = await s.history();
  assert(same(pos.publications, []) && pos.offset === 6, 'position ' + JSON.stringify(pos));
  const epoch = pos.epoch;

  let r = await s.history({ limit: 2, reverse: true });
  assert(same(r.publications.map((p) => p.offset), [6, 5]) && r.offset === 6 &&
         r.epoch === epoch, 'reverse ' + JSON.stringify(r));
  assert(r.publications[0].data === 'from raw' && !('info' in r.publications[0]),
         'raw publication ' + JSON.stringify(r.publications[0]));
  assert(same(r.publications[1].data, { n: 5 }) &&
         same(r.publications[1].info, { client: hid, user: 'hank', connInfo: { role: 'writer' } }),
         'SDK publication ' + JSON.stringify(r.publications[1]));

  r = await s.history({ limit: 10, since: { offset: 2, epoch } });
  assert(same(r.publications.map((p) => p.offset), [3, 4, 5, 6]) &&
         same(r.publications.map((p) => p.data), [{ n: 3 }, { n: 4 }, { n: 5 }, 'from raw']),
         'since 2 ' + JSON.stringify(r));
  r = await s.history({ limit: 2, since: { offset: 5, epoch }, reverse: true });
  assert(same(r.publications.map((p) => p.offset), [4, 3]), 'since 5 reverse ' +
         JSON.stringify(r));
  r = await s.history({ limit: -1 });
  assert(same(r.publications.map((p) => p.offset), [1, 2, 3, 4, 5, 6]), 'all ' +
         JSON.stringify(r));
  // The pushes the subscriber got carried the same offsets.
  assert(same(s.ev.publication.map((p) => p.offset), [1, 2, 3, 4, 5, 6]),
         'push offsets ' + JSON.stringify(s.ev.publication.map((p) => p.offset)));
  let err = null;
  await s.history({ limit: 9, since: { offset: 1, epoch: 'not-the-epoch' } })
    .catch((e) => { err = e; });
  assert(err && err.code === 112, 'another epoch: ' + JSON.stringify(err));
  await closeAll([raw]);
}

// ------------------------------------------------------------------------------------------
// Recovery

// A `recoverable`, `positioned` subscriber gets two publications; its socket is then cut under
// the SDK and its reconnects are refused while another client publishes <missed> more; let
// through, the SDK reconnects and resubscribes with recover, offset and epoch by itself. With
// <recovered>, `subscribed` says wasRecovering and recovered and the missed publications follow
// once each, in order; without, it says recovered: false and none of them is replayed. A
// publication after that arrives live, once.
async function recoveryCase(b, kit, missed, recovered) {
  const ch = 'sdk-rec';
  const r = kit.client('rob', { token: jwt({ sub: 'rob' }) });
  const p = kit.client('pat', { token: jwt({ sub: 'pat' }) });
  await kit.connected(r);
  await kit.connected(p);
  const rs = kit.sub(r, ch, { recoverable: true, positioned: true });
  const first = await kit.subscribed(rs);
  assert(first.recoverable && first.positioned && !first.wasRecovering && first.streamPosition &&
         first.streamPosition.offset === 0 && first.streamPosition.epoch !== '',
         'first subscribed ' + JSON.stringify(first));
  const epoch = first.streamPosition.epoch;
  await p.publish(ch, { n: 1 });
  await p.publish(ch, { n: 2 });
  await until(() => rs.ev.publication.length === 2, 5000, 'two publications');

  r.gate.blocked = true;
  r.cut();
  await until(() => r.ev.connecting.length === 2, 5000, 'connecting after the cut');
  assert(r.ev.connecting[1].code === 1, 'connecting ' + JSON.stringify(r.ev.connecting[1]));
  for (let i = 0; i < missed; i++) await p.publish(ch, { missed: i });
  // The home has them all before the subscriber may come back.
  const top = 2 + missed;
  const end = Date.now() + 5000;
  while ((await p.history(ch)).offset !== top) {
    assert(Date.now() < end, 'history never reached offset ' + top);
    await sleep(20);
  }
  await sleep(300);  // a refused reconnect or two
  r.gate.blocked = false;
  await until(() => rs.ev.subscribed.length === 2, 5000, 'subscribed again');
  const again = rs.ev.subscribed[1];
  await sleep(200);
  await p.publish(ch, { live: true });
  await until(() => rs.ev.publication.some((x) => x.data.live), 5000, 'live publication');
  await sleep(200);

  const cmd = kit.messages('rob', '>').filter((m) => m.subscribe);
  assert(cmd.length === 2 && cmd[1].subscribe.recover === true &&
         cmd[1].subscribe.offset === 2 && cmd[1].subscribe.epoch === epoch,
         'resubscribe ' + JSON.stringify(cmd));
  assert(again.wasRecovering === true && again.streamPosition.epoch === epoch,
         'subscribed again ' + JSON.stringify(again));
  const got = rs.ev.publication.map((x) => [x.offset, x.data]);
  if (recovered) {
    assert(again.recovered === true && again.hasRecoveredPublications === true,
           'subscribed again ' + JSON.stringify(again));
    const want = [[1, { n: 1 }], [2, { n: 2 }]];
    for (let i = 0; i < missed; i++) want.push([3 + i, { missed: i }]);
    want.push([top + 1, { live: true }]);
    assert(same(got, want), 'publications ' + JSON.stringify(got));
  } else {
    assert(again.recovered === false && again.hasRecoveredPublications === false &&
           again.streamPosition.offset === top, 'subscribed again ' + JSON.stringify(again));
    assert(same(got, [[1, { n: 1 }], [2, { n: 2 }], [top + 1, { live: true }]]),
           'publications ' + JSON.stringify(got));
  }
  assert(rs.ev.unsubscribed.length === 0 && r.ev.disconnected.length === 0,
         'unsubscribed or disconnected');
}

// A `recoverable` subscription unsubscribed and subscribed again and again while another client
// keeps publishing: the SDK resubscribes with recover each time, and every publication reaches
// it once, in order, whatever the moment of the resubscribe; where the broker could not recover
// (recovered: false) the gap must be one the app was told of.
async function caseResubscribeUnderLoad(b, kit) {
  const ch = 'sdk-cycle';
  const c = kit.client('cy', {});
  const p = kit.client('pub', {});
  await kit.connected(c);
  await kit.connected(p);
  const s = kit.sub(c, ch, { recoverable: true, positioned: true });
  const MAX = 1000;
  let n = 0;
  let stop = false;
  // Paced so that it runs through every cycle.
  const pump = (async () => {
    while (!stop && n < MAX) {
      await p.publish(ch, { n: n++ });
      if (n % 4 === 0) await sleep(1);
    }
  })();
  for (let i = 0; i < 15; i++) {
    s.subscribe();
    await sleep(30);
    s.unsubscribe();
    await sleep(5);
  }
  await kit.subscribed(s);
  stop = true;
  await pump;
  await until(() => s.ev.publication.length > 0 &&
              s.ev.publication[s.ev.publication.length - 1].offset === n, 5000, 'the last one');
  assert(s.ev.error.length === 0, 'errors ' + JSON.stringify(s.ev.error));
  const offs = s.ev.publication.map((x) => x.offset);
  assert(same(s.ev.publication.map((x) => x.data.n + 1), offs), 'data and offsets differ');
  const told = s.ev.subscribed.filter((x) => x.wasRecovering && !x.recovered).length;
  if (process.env.RINGCAST_SDK_TRACE) {
    console.log('    ' + n + ' published, ' + told + ' resubscribes not recovered');
  }
  // The first subscribe starts from the top of the moment: what came before is not missed.
  const from = s.ev.subscribed[0].streamPosition.offset;
  if (told === 0) {
    const want = [...Array(n - from).keys()].map((i) => from + i + 1);
    assert(same(offs, want), 'from ' + from + ' to ' + n + ', got ' + offs.length + ': ' +
           JSON.stringify(offs.filter((o, i) => o !== want[i]).slice(0, 10)));
  } else {
    for (let i = 1; i < offs.length; i++) {
      assert(offs[i] > offs[i - 1], 'offset ' + offs[i] + ' after ' + offs[i - 1]);
    }
  }
  assert(s.ev.subscribed.slice(1).every((x) => x.wasRecovering),
         'resubscribed without recover ' + JSON.stringify(s.ev.subscribed));
}

async function caseRecovery(b, kit) {
  await recoveryCase(b, kit, 3, true);
}

async function caseRecoveryGap(b, kit) {
  await recoveryCase(b, kit, 4, false);
}

// ------------------------------------------------------------------------------------------
// Channel permissions, server-side subscriptions

// `$` channels: a subscription token from getToken is accepted (its `info` is the chanInfo
// presence shows), none is refused with 103 and no retry; `dialog#alice,bob` lets alice and
// bob in and carol not, and alice and bob hear each other there.
async function casePrivateChannels(b, kit) {
  const alice = kit.client('alice', { token: jwt({ sub: 'alice' }) });
  const aid = (await kit.connected(alice)).client;
  const asked = [];
  const priv = kit.sub(alice, '$sdk-priv', {
    joinLeave: true,
    getToken: async (ctx) => {
      asked.push(ctx.channel);
      return jwt({ sub: 'alice', channel: ctx.channel, exp: nowS() + 60,
                   info: { seat: 7 } });
    },
  });
  await kit.subscribed(priv);
  assert(same(asked, ['$sdk-priv']), 'getToken asked for ' + JSON.stringify(asked));
  const sc = kit.messages('alice', '>').find((m) => m.subscribe);
  assert(sc.subscribe.token, 'no token in ' + JSON.stringify(sc));
  // The subscription token's info is the chanInfo of alice's ClientInfo on this channel: in
  // presence, in her join, in her publications.
  const mine = { client: aid, user: 'alice', chanInfo: { seat: 7 } };
  const pr = await priv.presence();
  assert(same(Object.keys(pr.clients), [aid]) &&
         same({ client: pr.clients[aid].client, user: pr.clients[aid].user,
                chanInfo: pr.clients[aid].chanInfo }, mine), 'presence ' + JSON.stringify(pr));
  await priv.publish({ secret: 1 });
  await until(() => priv.ev.join.length === 1 && priv.ev.publication.length === 1, 5000,
              'own join and publication');
  assert(same(priv.ev.join[0].info, mine), 'join ' + JSON.stringify(priv.ev.join));
  assert(same(priv.ev.publication[0].info, mine), 'publication ' +
         JSON.stringify(priv.ev.publication));

  const bare = kit.sub(alice, '$sdk-priv-2');
  bare.subscribe();
  await until(() => bare.ev.unsubscribed.length > 0, 5000, 'unsubscribed without a token');
  const u = bare.ev.unsubscribed[0];
  assert(u.code === 103 && u.reason === 'permission denied', 'unsubscribed ' + JSON.stringify(u));
  await sleep(500);
  assert(bare.state === 'unsubscribed' && bare.ev.subscribed.length === 0 &&
         kit.messages('alice', '>').filter((m) => m.subscribe &&
                                          m.subscribe.channel === '$sdk-priv-2').length === 1,
         'retried the subscribe');

  const dialog = 'dialog#alice,bob';
  const ad = kit.sub(alice, dialog, { positioned: true });
  await kit.subscribed(ad);
  const bob = kit.client('bob', { token: jwt({ sub: 'bob' }) });
  await kit.connected(bob);
  const bd = kit.sub(bob, dialog, { positioned: true });
  await kit.subscribed(bd);
  await ad.publish({ from: 'alice' });
  await until(() => bd.ev.publication.length === 1, 5000, 'bob hears alice');
  assert(bd.ev.publication[0].info.user === 'alice', 'info ' +
         JSON.stringify(bd.ev.publication[0]));
  const carol = kit.client('carol', { token: jwt({ sub: 'carol' }) });
  await kit.connected(carol);
  const cd = kit.sub(carol, dialog);
  cd.subscribe();
  await until(() => cd.ev.unsubscribed.length > 0, 5000, 'carol refused');
  assert(cd.ev.unsubscribed[0].code === 103 && cd.ev.subscribed.length === 0,
         'carol ' + JSON.stringify(cd.ev.unsubscribed));
  assert(carol.state === 'connected', 'carol ' + carol.state);
}

// A token with `channels`: the connect reply subscribes the client, which emits its own
// `subscribed` per channel, then `publication` events for what another client publishes there,
// in order, with the publisher's ClientInfo.
async function caseServerSideSubs(b, kit) {
  const s = kit.client('sam', { token: jwt({ sub: 'sam', channels: ['sdk-news', 'sdk-alerts'] }) });
  await kit.connected(s);
  await until(() => s.ev.subscribed.length === 2, 5000, 'server-side subscribed');
  assert(same(s.ev.subscribed.map((e) => e.channel).sort(), ['sdk-alerts', 'sdk-news']),
         'subscribed ' + JSON.stringify(s.ev.subscribed));
  const e = kit.client('ed', { token: jwt({ sub: 'editor', info: { desk: 'A' } }) });
  const eid = (await kit.connected(e)).client;
  // The server-side memberships reach the channels' homes through queues: probe until heard.
  await withTimeout((async () => {
    let k = 0;
    while (!['sdk-news', 'sdk-alerts'].every((ch) =>
      s.ev.publication.some((p) => p.channel === ch && isProbe(p.data)))) {
      await e.publish('sdk-news', { probe: k });
      await e.publish('sdk-alerts', { probe: k++ });
      await sleep(50);
    }
  })(), 10000, 'server-side probes');
  await sleep(200);
  s.ev.publication = [];
  for (let i = 0; i < 10; i++) {
    await e.publish(i % 2 ? 'sdk-alerts' : 'sdk-news', { i });
  }
  await until(() => s.ev.publication.length === 10, 5000, 'ten publications');
  const got = s.ev.publication.map((p) => [p.channel, p.data.i]);
  const want = [...Array(10).keys()].map((i) => [i % 2 ? 'sdk-alerts' : 'sdk-news', i]);
  assert(same(got.filter((g) => g[0] === 'sdk-news'), want.filter((w) => w[0] === 'sdk-news')) &&
         same(got.filter((g) => g[0] === 'sdk-alerts'),
              want.filter((w) => w[0] === 'sdk-alerts')), 'publications ' + JSON.stringify(got));
  const p = s.ev.publication[0];
  assert(same(p.info, { client: eid, user: 'editor', connInfo: { desk: 'A' } }),
         'info ' + JSON.stringify(p));
  assert(s.ev.unsubscribed.length === 0, 'unsubscribed ' + JSON.stringify(s.ev.unsubscribed));
}

const API_KEY = 'sdk-api-key';

// POST /api/<method> with the API key; resolves with the parsed JSON answer.
function api(b, method, body) {
  return withTimeout(new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request({
      host: '127.0.0.1', port: b.port, path: '/api/' + method, method: 'POST',
      headers: { 'X-API-Key': API_KEY, 'Content-Type': 'application/json',
                 'Content-Length': Buffer.byteLength(data) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode, body: JSON.parse(text) });
        } catch (e) {
          reject(new Error('API ' + method + ': ' + res.statusCode + ' ' + text));
        }
      });
    });
    req.on('error', reject);
    req.end(data);
  }), 5000, 'API ' + method);
}

// The server HTTP API reaches SDK clients: publish (a publication without info), send (the
// client's `message` event), presence and history of the channel, unsubscribe (the
// subscription's `unsubscribed` with 2000), disconnect (the client's `disconnected` with the
// code given, terminal in 4500-4999).
async function caseServerApi(b, kit) {
  const ann = kit.client('ann', { token: jwt({ sub: 'ann' }) });
  const annId = (await kit.connected(ann)).client;
  const sub = kit.sub(ann, 'sdk-api');
  await kit.subscribed(sub);
  // The membership reaches the home through a queue: publish until heard.
  await withTimeout((async () => {
    for (let k = 0; !sub.ev.publication.some((p) => isProbe(p.data)); k++) {
      const r = await api(b, 'publish', { channel: 'sdk-api', data: { probe: k } });
      assert(r.status === 200 && r.body.result !== undefined, 'publish ' + JSON.stringify(r));
      await sleep(50);
    }
  })(), 10000, 'API probes');
  await sleep(200);
  sub.ev.publication = [];
  await api(b, 'publish', { channel: 'sdk-api', data: { from: 'api' } });
  await until(() => sub.ev.publication.length === 1, 5000, 'API publication');
  const pub = sub.ev.publication[0];
  assert(same(pub.data, { from: 'api' }) && pub.info === undefined, 'got ' + JSON.stringify(pub));

  let r = await api(b, 'send', { user: 'ann', data: { hi: 1 } });
  assert(r.status === 200 && r.body.result !== undefined, 'send ' + JSON.stringify(r));
  await until(() => ann.ev.message.length === 1, 5000, 'message event');
  assert(same(ann.ev.message[0].data, { hi: 1 }), 'message ' + JSON.stringify(ann.ev.message));

  r = await api(b, 'presence', { channel: 'sdk-api' });
  const pres = r.body.result.presence;
  assert(pres[annId] && pres[annId].user === 'ann', 'presence ' + JSON.stringify(r.body));
  r = await api(b, 'history', { channel: 'sdk-api', limit: 1, reverse: true });
  const h = r.body.result;
  assert(h.publications.length === 1 && same(h.publications[0].data, { from: 'api' }) &&
         h.publications[0].offset === pub.offset, 'history ' + JSON.stringify(r.body));

  r = await api(b, 'unsubscribe', { user: 'ann', channel: 'sdk-api' });
  assert(r.status === 200, 'unsubscribe ' + JSON.stringify(r));
  await until(() => sub.ev.unsubscribed.length === 1, 5000, 'unsubscribed event');
  assert(sub.ev.unsubscribed[0].code === 2000, 'unsubscribed ' +
         JSON.stringify(sub.ev.unsubscribed));

  r = await api(b, 'disconnect', { user: 'ann', disconnect: { code: 4501, reason: 'bye' } });
  assert(r.status === 200, 'disconnect ' + JSON.stringify(r));
  await until(() => ann.ev.disconnected.length === 1, 5000, 'disconnected event');
  const d = ann.ev.disconnected[0];
  assert(d.code === 4501 && d.reason === 'bye', 'disconnected ' + JSON.stringify(d));
  await sleep(300);
  assert(ann.state === 'disconnected', 'state ' + ann.state);
}

// Every case above ran its clients on broker <b> with --shards 2: the upgrades per shard
// (GET /stats) show that both shards served some of them.
async function caseBothShards(b) {
  const body = await withTimeout(new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: b.port, path: '/stats' }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve(text));
    }).on('error', reject);
  }), 5000, 'GET /stats');
  const per = JSON.parse(body).per_shard.map((x) => x.upgrades);
  assert(per.length === 2 && per.every((n) => n > 0), 'upgrades per shard ' + JSON.stringify(per));
}

// Starts a broker with <args>; null (and one failure counted) when it does not start.
async function brokerOr(r, args) {
  try {
    return await startBroker(args);
  } catch (e) {
    console.log('FAIL start the broker ' + args.join(' ') + ': ' + e.message);
    r.failed++;
    return null;
  }
}

async function main() {
  const r = new Runner(TOTAL_LIMIT_MS);
  const refuser = net.createServer((sock) => sock.destroy());
  await new Promise((resolve) => refuser.listen(0, '127.0.0.1', resolve));
  refuserPort = refuser.address().port;

  const b = await brokerOr(r, ['--shards', '2', '--jwt-secret', SECRET, '--allow-anonymous',
                               '--api-key', API_KEY]);
  if (b) {
    await r.run('SDK: two clients and a raw member on one channel', casePublishSubscribe, b);
    // The expiry cases wait for timers of several seconds: they run side by side.
    await r.run('SDK: a token with a bad signature: 3500, no reconnect', traced(caseTokenInvalid),
                b);
    await Promise.all([
      r.run('SDK: getToken refreshes the connection past its exp', traced(caseTokenRefresh), b),
      r.run('SDK: without getToken, an expiring or expired token disconnects',
            traced(caseTokenNoGetToken), b),
      r.run('SDK: no refresh -> broker closes 3005, SDK reconnects with a new token',
            traced(caseTokenExpiredClose), b),
      r.run('SDK: getToken refreshes a $ subscription past its exp',
            traced(caseSubTokenRefresh), b),
    ]);
    await r.run('SDK: presence, presence_stats, join and leave with ClientInfo',
                traced(casePresenceJoinLeave), b);
    await r.run('SDK: a cut socket is a leave, the reconnect a join', traced(caseCutLeaveJoin),
                b);
    await r.run('SDK: history with limit, since, reverse', traced(caseHistory), b);
    await r.run('SDK: recovery after the socket is cut', traced(caseRecovery), b);
    await r.run('SDK: unsubscribe/subscribe cycles under a publisher, each publication once',
                traced(caseResubscribeUnderLoad), b);
    await r.run('SDK: $ channels with getToken, dialog#alice,bob', traced(casePrivateChannels), b);
    await r.run('SDK: server-side subscriptions from the token', traced(caseServerSideSubs), b);
    await r.run('SDK: the server HTTP API publishes, sends, unsubscribes, disconnects',
                traced(caseServerApi), b);
    await r.run('both shards served SDK clients', caseBothShards, b);
    await r.run('broker exits 0 on SIGTERM', caseBrokerExit, b);
    if (!b.exited) b.proc.kill('SIGKILL');
  }
  const g = await brokerOr(r, ['--shards', '2', '--jwt-secret', SECRET, '--history-size', '2']);
  if (g) {
    await r.run('SDK: recovery with more missed than --history-size 2: recovered false',
                traced(caseRecoveryGap), g);
    await r.run('broker exits 0 on SIGTERM (history size 2)', caseBrokerExit, g);
    if (!g.exited) g.proc.kill('SIGKILL');
  }
  const p = await brokerOr(r, ['--shards', '1', '--ping-interval', '1', '--idle-timeout', '2']);
  if (p) {
    await r.run('SDK answers the {} ping and stays connected', casePingPong, p);
    await r.run('broker exits 0 on SIGTERM (pings)', caseBrokerExit, p);
    if (!p.exited) p.proc.kill('SIGKILL');
  }
  refuser.close();
  r.finish();
}

runMain(main);

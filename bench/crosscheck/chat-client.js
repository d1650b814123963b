#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// chat-client.js: an independent chat load client, written apart from ringcast-bench (Node.js,
// the `ws` package, epoll through libuv instead of io_uring, its own payload and statistics),
// to cross-check ringcast-bench's `chat` figures against the same server. See README.md.
//
//   node chat-client.js --url ws://127.0.0.1:PORT/room/ --connections 1000 --room-size 10 \
//        --rate 500 --duration 5 --warmup 1 --workers 2 --json
//
// Geometry is ringcast-bench's: client g is in room floor(g / M); a URL path ending in "/"
// gets "chat-<room>" appended ("chat" alone when there is one room), any other path gets
// "-<room>" when there is more than one room. The rooms are split into contiguous blocks, one
// per worker process (child_process.fork), so every member of a room lives in one process:
// that process sees every delivery of its rooms and counts its own loss exactly.
//
// Load: open loop. Worker w publishes at R * (its clients / N) per second (R/W when the
// blocks are equal), event k due at t0 + (k + w/W) / rate; each event picks one of the worker's
// clients uniformly at random (so over all workers every client is equally likely, as in
// ringcast-bench). An event that comes due late is sent at once, never skipped or delayed
// further, so the offered rate holds.
//
// Payload (text, padded to --payload bytes):
//   {"w":W,"c":CLIENT,"s":SEQ,"t":"SEND_NS","l":LAG_NS,"m":0|1,"z":"abc..."}
// t is process.hrtime.bigint() taken right before ws.send(): CLOCK_MONOTONIC on Linux, the
// clock of every process on the machine (and of ringcast-bench). l is how late the send was
// against its schedule; m = 0 for messages scheduled during --warmup (counted, but left out of
// the latency figures). A receiver takes hrtime.bigint() first thing in its 'message' handler:
// latency = receive - t. The publishes are paced by libuv's timers, which have millisecond
// resolution, so the latency from the schedule (receive - (t - l), latency_sched_us; what
// ringcast-bench reports, with its sub-millisecond pacing) mostly measures this client's own
// timer lag: it is reported but is not the figure to compare.
//
// Percentiles are exact: every measured sample is kept and the parent sorts them all;
// pQ = the ceil(Q * n)-th smallest value.
//
// Bounded: at most 100,000 connections, 64 workers, 3600 s; the parent kills its workers and
// reports failure after connect + warmup + duration + drain + 30 s.
"use strict";

const path = require("path");
const { fork } = require("child_process");

function loadWs() {
  const tries = [
    "ws",
    path.join(__dirname, "..", "peers", "node_modules", "ws"),
    path.join(__dirname, "..", "..", "tests", "integration", "node_modules", "ws"),
  ];
  for (const t of tries) {
    try {
      return require(t);
    } catch (e) {
      if (e.code !== "MODULE_NOT_FOUND") throw e;
    }
  }
  throw new Error("the `ws` package is missing: run `npm ci` in bench/peers");
}

const NS = 1000000000n;

// ------------------------------------------------------------------------------------------
// Options and geometry (shared by parent and workers)
// ------------------------------------------------------------------------------------------

const USAGE = `usage: node chat-client.js --url ws://HOST:PORT/PATH [options]
  --connections N        clients (1000)
  --room-size M          clients per room, >= 2 (50)
  --rate R               publishes per second, all workers together (1000)
  --duration S           measured publishing time (10)
  --warmup S             publishing before that, counted but not in the latency (0)
  --drain S              after publishing, wait up to S s for outstanding deliveries;
                         ends early when all arrived or after 1 s without any (5)
  --payload BYTES        message size (100)
  --workers W            worker processes (2)
  --connect-window K     handshakes in progress at once, all workers (256)
  --handshake-timeout S  per connection (10)
  --seed N               random seed for the publisher picks (from the clock)
  --ranks                also report the latency by arrival order within a publish: of
                         the first, the middle and the last member to receive it
  --json                 one JSON line on stdout (otherwise a summary)
  --quiet                no progress on stderr`;

function parseArgs(argv) {
  const o = {
    url: null,
    connections: 1000,
    roomSize: 50,
    rate: 1000,
    duration: 10,
    warmup: 0,
    drain: 5,
    payload: 100,
    workers: 2,
    connectWindow: 256,
    handshakeTimeout: 10,
    seed: Number(process.hrtime.bigint() % 4294967296n),
    json: false,
    quiet: false,
    ranks: false,
  };
  const num = (name, v, lo, hi, int) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < lo || x > hi || (int && !Number.isInteger(x)))
      throw new Error(`${name} must be ${int ? "an integer " : ""}from ${lo} to ${hi}`);
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case "--url": o.url = v(); break;
      case "--connections": o.connections = num(a, v(), 1, 100000, true); break;
      case "--room-size": o.roomSize = num(a, v(), 2, 100000, true); break;
      case "--rate": o.rate = num(a, v(), 0.001, 1000000, false); break;
      case "--duration": o.duration = num(a, v(), 0.1, 3600, false); break;
      case "--warmup": o.warmup = num(a, v(), 0, 3600, false); break;
      case "--drain": o.drain = num(a, v(), 0, 600, false); break;
      case "--payload": o.payload = num(a, v(), 16, 65536, true); break;
      case "--workers": o.workers = num(a, v(), 1, 64, true); break;
      case "--connect-window": o.connectWindow = num(a, v(), 1, 100000, true); break;
      case "--handshake-timeout": o.handshakeTimeout = num(a, v(), 0.1, 600, false); break;
      case "--seed": o.seed = num(a, v(), 0, 4294967295, true); break;
      case "--json": o.json = true; break;
      case "--quiet": o.quiet = true; break;
      case "--ranks": o.ranks = true; break;
      case "-h": case "--help": console.log(USAGE); process.exit(0); break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
  if (!o.url) throw new Error("--url is required");
  const u = new URL(o.url);
  if (u.protocol !== "ws:") throw new Error("only ws:// URLs");
  if (!/^127\./.test(u.hostname) && u.hostname !== "localhost")
    throw new Error("loopback targets only (127.0.0.0/8, localhost)");
  return o;
}

function nrRooms(o) {
  return Math.ceil(o.connections / o.roomSize);
}

function roomMembers(o, r) {
  const first = r * o.roomSize;
  return Math.max(0, Math.min(o.roomSize, o.connections - first));
}

// The URL of client g: ringcast-bench's room naming (see the header).
function clientUrl(o, g) {
  const u = new URL(o.url);
  const dir = u.pathname.endsWith("/");
  const many = nrRooms(o) > 1;
  const r = Math.floor(g / o.roomSize);
  if (dir) u.pathname += many ? `chat-${r}` : "chat";
  else if (many) u.pathname += `-${r}`;
  return u.toString();
}

// mulberry32: a small seeded PRNG, so a run's picks can be repeated.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ------------------------------------------------------------------------------------------
// Worker: holds the clients of rooms [roomLo, roomHi)
// ------------------------------------------------------------------------------------------

function worker() {
  const WebSocket = loadWs();
  let o, w, W, roomLo, roomHi, lo, hi, n, rate;
  let clients = []; // index i = global client lo + i
  const st = {
    established: 0, failed: 0, closedEarly: 0, firstError: null,
    published: 0, skipped: 0, expected: 0, received: 0, receivedMeasured: 0,
    reordered: 0, duplicates: 0, unexpected: 0, malformed: 0,
    maxLagNs: 0, late: 0,
  };
  let samples = new Float64Array(1 << 16), nSamples = 0; // latency from the send stamp, ns
  let sched = new Float64Array(1 << 16); // latency from the schedule, ns
  let lastRx = 0n;
  let running = false;
  // --ranks: arrivals so far per message (publisher, seq), and latencies by arrival rank
  const arrivals = new Map();
  const byRank = { first: [], middle: [], last: [] };
  let rankSum = null, rankCount = null;

  function push(lat, latSched) {
    if (nSamples === samples.length) {
      const a = new Float64Array(samples.length * 2); a.set(samples); samples = a;
      const b = new Float64Array(sched.length * 2); b.set(sched); sched = b;
    }
    samples[nSamples] = lat;
    sched[nSamples++] = latSched;
  }

  function onMessage(c, data) {
    const now = process.hrtime.bigint();
    let m;
    try {
      m = JSON.parse(data.toString());
    } catch {
      st.malformed++;
      return;
    }
    if (typeof m.c !== "number" || typeof m.s !== "number" || typeof m.t !== "string") {
      st.malformed++;
      return;
    }
    const first = c.room * o.roomSize;
    const idx = m.c - first;
    if (idx < 0 || idx >= o.roomSize || m.c === c.g) {
      st.unexpected++;
      return;
    }
    const last = c.lastSeq[idx];
    if (m.s === last) {
      st.duplicates++;
      return;
    }
    if (m.s < last) st.reordered++;
    else c.lastSeq[idx] = m.s;
    st.received++;
    lastRx = now;
    if (m.m === 1) {
      st.receivedMeasured++;
      const lat = Number(now - BigInt(m.t));
      push(lat, lat + m.l);
      if (o.ranks) rank(m, lat, roomMembersOf(c) - 1);
    }
  }

  function roomMembersOf(c) {
    return roomMembers(o, c.room);
  }

  function rank(m, lat, receivers) {
    const key = m.c * 16777216 + m.s;
    const k = arrivals.get(key) || 0;
    if (k + 1 >= receivers) arrivals.delete(key);
    else arrivals.set(key, k + 1);
    if (!rankSum) {
      rankSum = new Float64Array(o.roomSize);
      rankCount = new Float64Array(o.roomSize);
    }
    rankSum[k] += lat;
    rankCount[k]++;
    if (k === 0) byRank.first.push(lat);
    if (k === Math.floor((receivers - 1) / 2)) byRank.middle.push(lat);
    if (k === receivers - 1) byRank.last.push(lat);
  }

  function connectAll(window, timeoutS) {
    return new Promise((resolve) => {
      let next = 0, settled = 0;
      const one = () => {
        if (next >= n) return;
        const i = next++, g = lo + i;
        const c = { g, room: Math.floor(g / o.roomSize), ws: null, open: false, lastSeq: null };
        c.lastSeq = new Uint32Array(o.roomSize);
        clients[i] = c;
        let done = false;
        const settle = (ok, err) => {
          if (done) return;
          done = true;
          if (ok) st.established++;
          else {
            st.failed++;
            if (!st.firstError) st.firstError = String(err);
          }
          settled++;
          if (settled === n) resolve();
          else one();
        };
        const ws = new WebSocket(clientUrl(o, g), {
          perMessageDeflate: false,
          handshakeTimeout: timeoutS * 1000,
        });
        c.ws = ws;
        ws.on("open", () => {
          c.open = true;
          settle(true);
        });
        ws.on("message", (data) => onMessage(c, data));
        ws.on("unexpected-response", (req, res) => {
          settle(false, `HTTP ${res.statusCode}`);
          req.destroy();
        });
        ws.on("error", (e) => settle(false, e.message));
        ws.on("close", () => {
          if (c.open && running) st.closedEarly++;
          c.open = false;
          settle(false, "closed before the upgrade");
        });
      };
      if (n === 0) return resolve();
      for (let k = 0; k < Math.min(window, n); k++) one();
    });
  }

  // Pad so the whole message is exactly o.payload bytes.
  function payload(g, seq, t, lag, measured) {
    const head = `{"w":${w},"c":${g},"s":${seq},"t":"${t}","l":${lag},"m":${measured},"z":"`;
    const pad = o.payload - head.length - 2;
    return head + (pad > 0 ? PAD.slice(0, pad) : "") + '"}';
  }
  let PAD = "";

  function run(t0) {
    running = true;
    const pick = rng((o.seed + Math.imul(w + 1, 0x9e3779b1)) >>> 0);
    const periodNs = 1e9 / rate;
    const endNs = BigInt(Math.round((o.warmup + o.duration) * 1e9));
    const warmNs = BigInt(Math.round(o.warmup * 1e9));
    const seqs = new Uint32Array(n);
    const lags = [];
    const phase = w / W;
    let k = 0;
    const due = (k) => t0 + BigInt(Math.round((k + phase) * periodNs));
    const cpu0 = process.cpuUsage();
    const { performance } = require("perf_hooks");
    const elu0 = performance.eventLoopUtilization();
    const wall0 = process.hrtime.bigint();
    let tEnd = null;

    const finish = () => {
      running = false;
      const cpu = process.cpuUsage(cpu0);
      const wall = Number(process.hrtime.bigint() - wall0) / 1e9;
      const elu = performance.eventLoopUtilization(elu0);
      let held = 0;
      for (const c of clients) if (c && c.open) held++;
      process.send({
        type: "result",
        w,
        clients: n,
        rate,
        st,
        held,
        cpu_s: (cpu.user + cpu.system) / 1e6,
        cpu_user_s: cpu.user / 1e6,
        wall_s: wall,
        elu: elu.utilization,
        samples: samples.subarray(0, nSamples),
        ranks: o.ranks ? { first: Float64Array.from(byRank.first), middle: Float64Array.from(byRank.middle),
          last: Float64Array.from(byRank.last), sum: rankSum, count: rankCount } : null,
        sched: sched.subarray(0, nSamples),
        lags: Float64Array.from(lags),
      });
    };

    const drain = () => {
      const dl = process.hrtime.bigint() + BigInt(Math.round(o.drain * 1e9));
      const check = () => {
        const now = process.hrtime.bigint();
        if (st.received >= st.expected || now >= dl || now - lastRx >= NS) return finish();
        setTimeout(check, 20);
      };
      if (lastRx < tEnd) lastRx = tEnd; // "1 s without any" counts from the end of publishing
      check();
    };

    const tick = () => {
      const now = process.hrtime.bigint();
      let d;
      while ((d = due(k)) <= now && d - t0 < endNs) {
        const i = Math.floor(pick() * n);
        const c = clients[i];
        const measured = d - t0 >= warmNs ? 1 : 0;
        k++;
        if (!c.open) {
          st.skipped++;
          continue;
        }
        const seq = ++seqs[i];
        const t = process.hrtime.bigint();
        const lag = Number(t - d);
        if (lag > st.maxLagNs) st.maxLagNs = lag;
        if (lag > 1e6) st.late++;
        lags.push(lag);
        c.ws.send(payload(c.g, seq, t, lag, measured));
        st.published++;
        st.expected += roomMembers(o, c.room) - 1;
      }
      if (d - t0 >= endNs) {
        tEnd = process.hrtime.bigint();
        return drain();
      }
      // libuv's timers have millisecond resolution: the send is stamped when it happens, and
      // how late it was goes into the payload (l) and schedule_lag_us
      const waitMs = Number(d - process.hrtime.bigint()) / 1e6;
      setTimeout(tick, Math.max(1, Math.floor(waitMs)));
    };
    const wait0 = Number(t0 - process.hrtime.bigint()) / 1e6;
    setTimeout(tick, Math.max(0, Math.floor(wait0)));
  }

  function closeAll() {
    let left = 0;
    const done = () => process.exit(0);
    for (const c of clients) {
      if (!c || !c.ws) continue;
      if (c.ws.readyState === WebSocket.OPEN || c.ws.readyState === WebSocket.CONNECTING) {
        left++;
        c.ws.once("close", () => {
          if (--left === 0) done();
        });
        try {
          c.ws.close(1000);
        } catch {
          c.ws.terminate();
        }
      }
    }
    if (left === 0) done();
    setTimeout(() => {
      for (const c of clients) if (c && c.ws) c.ws.terminate();
      setTimeout(done, 100);
    }, 3000).unref();
  }

  process.on("message", async (msg) => {
    if (msg.type === "init") {
      ({ o, w, W, roomLo, roomHi } = msg);
      lo = roomLo * o.roomSize;
      hi = Math.min(o.connections, roomHi * o.roomSize);
      n = hi - lo;
      rate = (o.rate * n) / o.connections;
      for (let i = 0; PAD.length < o.payload; i++) PAD += String.fromCharCode(97 + (i % 26));
      const probe = payload(o.connections, 4294967295, 99999999999999999999n, 9999999999, 1);
      if (probe.length > o.payload) {
        process.send({ type: "error", error: `--payload must be at least ${probe.length}` });
        return;
      }
      await connectAll(msg.window, o.handshakeTimeout);
      process.send({ type: "connected", w, established: st.established, failed: st.failed,
        firstError: st.firstError });
    } else if (msg.type === "start") {
      run(BigInt(msg.t0));
    } else if (msg.type === "close") {
      closeAll();
    }
  });
  process.on("disconnect", () => process.exit(1));
}

// ------------------------------------------------------------------------------------------
// Parent: splits the rooms, steers the workers, merges their results
// ------------------------------------------------------------------------------------------

function hist(a) {
  // a: Float64Array of ns; returns microseconds
  const n = a.length;
  if (n === 0) return { count: 0, p50: null, p90: null, p99: null, "p99.9": null, max: null, mean: null };
  a.sort();
  const q = (p) => a[Math.min(n, Math.max(1, Math.ceil(p * n))) - 1] / 1000;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i];
  const r = (x) => Math.round(x * 1000) / 1000;
  return { count: n, p50: r(q(0.5)), p90: r(q(0.9)), p99: r(q(0.99)), "p99.9": r(q(0.999)),
    max: r(a[n - 1] / 1000), mean: r(sum / n / 1000) };
}

function parent() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`chat-client.js: ${e.message}\n${USAGE}`);
    process.exit(2);
  }
  const rooms = nrRooms(o);
  const W = Math.min(o.workers, rooms);
  const log = (s) => { if (!o.quiet) process.stderr.write(s + "\n"); };
  const t00 = process.hrtime.bigint();
  const connectBound = o.handshakeTimeout + o.connections / 1000 + 10;
  const limitS = connectBound + o.warmup + o.duration + o.drain + 30;
  const kids = [];
  let failed = false;

  const out = (res, code) => {
    if (o.json) process.stdout.write(JSON.stringify(res) + "\n");
    else summary(res);
    process.exitCode = code;
  };

  const bound = setTimeout(() => {
    failed = true;
    for (const k of kids) k.kill("SIGKILL");
    out({ tool: "chat-client.js", error: `time bound of ${limitS.toFixed(0)} s hit`, ok: false }, 1);
    setTimeout(() => process.exit(1), 100);
  }, limitS * 1000);

  const connected = [], results = [];
  let tStart = null, tConnected = null;
  for (let w = 0; w < W; w++) {
    const roomLo = Math.floor((w * rooms) / W), roomHi = Math.floor(((w + 1) * rooms) / W);
    const k = fork(__filename, ["--worker"], { serialization: "advanced", stdio: "inherit" });
    kids.push(k);
    k.on("message", (msg) => {
      if (failed) return;
      if (msg.type === "error") {
        failed = true;
        for (const kk of kids) kk.kill("SIGKILL");
        clearTimeout(bound);
        out({ tool: "chat-client.js", error: msg.error, ok: false }, 1);
      } else if (msg.type === "connected") {
        connected.push(msg);
        if (connected.length === W) {
          tConnected = process.hrtime.bigint();
          const est = connected.reduce((s, m) => s + m.established, 0);
          log(`connected ${est}/${o.connections} in ${(Number(tConnected - t00) / 1e9).toFixed(2)} s; publishing`);
          tStart = process.hrtime.bigint() + 200000000n; // all workers start on one clock
          for (const kk of kids) kk.send({ type: "start", t0: tStart.toString() });
        }
      } else if (msg.type === "result") {
        results.push(msg);
        if (results.length === W) report();
      }
    });
    k.on("exit", (code, sig) => {
      if (!failed && results.length < W) {
        failed = true;
        clearTimeout(bound);
        for (const kk of kids) kk.kill("SIGKILL");
        out({ tool: "chat-client.js", error: `worker ${w} exited (${code ?? sig}) early`, ok: false }, 1);
      }
    });
    k.send({ type: "init", o, w, W, roomLo, roomHi, window: Math.max(1, Math.ceil(o.connectWindow / W)) });
  }

  function report() {
    const tEnd = process.hrtime.bigint();
    const sum = (f) => results.reduce((s, r) => s + f(r), 0);
    const st = (k) => sum((r) => r.st[k]);
    let nS = sum((r) => r.samples.length);
    const all = new Float64Array(nS), allS = new Float64Array(nS);
    let at = 0;
    for (const r of results) {
      all.set(r.samples, at);
      allS.set(r.sched, at);
      at += r.samples.length;
    }
    const runS = o.warmup + o.duration;
    const received = st("received"), expected = st("expected");
    const established = connected.reduce((s, m) => s + m.established, 0);
    const held = sum((r) => r.held);
    const cpuRun = sum((r) => r.cpu_s);
    const wallRun = Math.max(...results.map((r) => r.wall_s));
    const res = {
      tool: "chat-client.js",
      scenario: "chat",
      url: o.url,
      params: { connections: o.connections, room_size: o.roomSize, rate: o.rate,
        duration: o.duration, warmup: o.warmup, drain: o.drain, payload: o.payload,
        workers: W, seed: o.seed },
      wall_s: Number(tEnd - t00) / 1e9,
      run_s: runS,
      connections: { target: o.connections, established, failed: connected.reduce((s, m) => s + m.failed, 0),
        first_error: connected.map((m) => m.firstError).find((e) => e) || null,
        held, closed_early: st("closedEarly"), connect_s: Number(tConnected - t00) / 1e9 },
      messages: {
        published: st("published"), skipped: st("skipped"), expected, received,
        lost: expected - received, reordered: st("reordered"), duplicates: st("duplicates"),
        unexpected: st("unexpected"), malformed: st("malformed"),
        publish_rate: st("published") / runS,
        deliveries_per_s: received / runS,
        latency_us: hist(all),
        latency_sched_us: hist(allS),
      },
      client: {
        cpu_s_run: cpuRun,
        cpu_user_s_run: sum((r) => r.cpu_user_s),
        core_share_run: cpuRun / wallRun,
        busiest_worker_core_share: Math.max(...results.map((r) => r.cpu_s / r.wall_s)),
        busiest_worker_loop_utilization: Math.max(...results.map((r) => r.elu)),
        cpu_us_per_delivery: received ? (cpuRun * 1e6) / received : null,
        max_schedule_lag_us: Math.max(...results.map((r) => r.st.maxLagNs)) / 1000,
        schedule_lag_us: (() => {
          const a = new Float64Array(results.reduce((s, r) => s + r.lags.length, 0));
          let i = 0;
          for (const r of results) { a.set(r.lags, i); i += r.lags.length; }
          return hist(a);
        })(),
        late_publishes: st("late"),
      },
    };
    if (o.ranks) {
      const cat = (k) => {
        const parts = results.map((r) => r.ranks[k]);
        const a = new Float64Array(parts.reduce((s, x) => s + x.length, 0));
        let i = 0;
        for (const x of parts) { a.set(x, i); i += x.length; }
        return hist(a);
      };
      // mean latency of the k-th arrival, for every k (microseconds)
      const mean = [];
      for (let k = 0; k < o.roomSize - 1; k++) {
        let s = 0, c = 0;
        for (const r of results) if (r.ranks.sum) { s += r.ranks.sum[k]; c += r.ranks.count[k]; }
        mean.push(c ? Math.round(s / c / 100) / 10 : null);
      }
      res.messages.latency_by_rank_us = { first: cat("first"), middle: cat("middle"), last: cat("last"),
        mean_by_rank: mean };
    }
    res.ok = established === o.connections && held === o.connections && res.messages.lost === 0 &&
      res.messages.malformed === 0 && res.messages.unexpected === 0;
    for (const k of kids) k.send({ type: "close" });
    let exited = 0;
    for (const k of kids) k.on("exit", () => {
      if (++exited === W) {
        clearTimeout(bound);
        out(res, res.ok ? 0 : 3);
      }
    });
  }

  function summary(r) {
    if (r.error) {
      console.log(`chat-client.js: ${r.error}`);
      return;
    }
    const m = r.messages, l = m.latency_us, c = r.client;
    const f = (x) => (x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${x.toFixed(1)} us`);
    console.log(`chat-client.js chat ${r.url} (${r.params.workers} workers)`);
    console.log(`  connections ${r.connections.established}/${r.connections.target} in ${r.connections.connect_s.toFixed(2)} s, held ${r.connections.held}`);
    console.log(`  messages    ${m.published} published, ${m.expected} expected, ${m.received} received (${Math.round(m.deliveries_per_s)}/s), lost ${m.lost}, reordered ${m.reordered}, duplicates ${m.duplicates}`);
    if (l.count)
      console.log(`  latency     p50 ${f(l.p50)}  p90 ${f(l.p90)}  p99 ${f(l.p99)}  p99.9 ${f(l["p99.9"])}  max ${f(l.max)} (mean ${f(l.mean)}, ${l.count} samples)`);
    console.log(`  client      CPU ${c.cpu_s_run.toFixed(2)} s (${(c.core_share_run * 100).toFixed(0)}% of a core, busiest worker ${(c.busiest_worker_core_share * 100).toFixed(0)}%), ${c.cpu_us_per_delivery?.toFixed(2)} us per delivery, schedule lag max ${f(c.max_schedule_lag_us)}`);
  }
}

if (process.argv[2] === "--worker" && process.send) worker();
else parent();

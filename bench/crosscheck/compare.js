#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// compare.js [--tolerance PCT] [--judge epoll|node] DIR: the comparison table of a run.sh result
// directory.
//
// For every point (N, M, R) it takes the median over the repetitions of each client's
// deliveries/s, p50 and p99, and the relative difference (client - ringcast-bench) /
// ringcast-bench for each independent client. The rule: the medians of deliveries/s and of p50
// must agree within the tolerance (10%), every run (of both) must have completed with all
// connections and no lost delivery. p99 is reported, not judged (see README.md). The rule is
// judged for one client, epoll-client by default (chat-client.js when the directory has no
// epoll-client runs, or with --judge node); the other is compared and printed, not judged.
// Exit 0 when every point passes, 1 otherwise, 2 on a usage error.
"use strict";

const fs = require("fs");
const path = require("path");

let tol = 10, dir = null, judge = null;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--tolerance") tol = Number(args[++i]);
  else if (args[i] === "--judge") judge = args[++i];
  else dir = args[i];
}
if (!dir || !Number.isFinite(tol) || (judge !== null && judge !== "epoll" && judge !== "node")) {
  console.error("usage: compare.js [--tolerance PCT] [--judge epoll|node] DIR");
  process.exit(2);
}

const NAME = { c: "ringcast-bench", epoll: "epoll-client", node: "chat-client.js" };
const runs = [];
for (const f of fs.readdirSync(dir).sort()) {
  const m = /^n(\d+)-m(\d+)-r([\d.]+)-(c|epoll|node|epoll-ranks|node-ranks|ranks)-(\d+)\.json$/.exec(f);
  if (!m) continue;
  const tag = f.slice(0, -5);
  let j = null, ctx = {}, samples = [];
  try {
    j = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
  } catch {}
  try {
    ctx = JSON.parse(fs.readFileSync(path.join(dir, tag + ".ctx"), "utf8"));
  } catch {}
  try {
    samples = fs.readFileSync(path.join(dir, tag + ".samples"), "utf8").trim().split("\n")
      .map((l) => l.split(" ").map(Number)).filter((x) => x.length === 3 && x.every(Number.isFinite));
  } catch {}
  const tool = m[4] === "ranks" ? "node-ranks" : m[4]; // "ranks": result directories of before
  runs.push({ point: `${m[1]}:${m[2]}:${m[3]}`, n: +m[1], mm: +m[2], r: +m[3], tool, rep: +m[5], j, ctx, samples });
}
const present = (t) => runs.some((r) => r.tool === t);
if (!judge) judge = present("epoll") ? "epoll" : "node";
const others = ["epoll", "node"].filter(present);

const median = (a) => {
  const s = [...a].sort((x, y) => x - y), n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "-");
const pct = (a, b) => (100 * (a - b)) / b;
const spread = (a, d = 0) => {
  const v = a.filter(Number.isFinite);
  return v.length ? `${fmt(median(v), d)} (${fmt(Math.min(...v), d)}–${fmt(Math.max(...v), d)})` : "-";
};
const sign = (x) => (x >= 0 ? "+" : "") + fmt(x, 1) + "%";
const good = (r) => r.j && r.j.messages && !r.j.error;

// How late each client's publishes went out against the schedule: its own figure, not in its
// latency (ringcast-bench stamps the actual send unless run with --stamp schedule).
const sendLag = (r) =>
  r.tool === "c" ? r.j.messages.send_lag_us?.p50 ?? NaN : r.j.client.schedule_lag_us?.p50 ?? NaN;
// The client's CPU while publishing and draining, in % of one core: ringcast-bench reports its
// busiest worker's share (one worker at these sizes), the others the sum over their workers.
const busy = (r) =>
  100 * (r.tool === "c" ? r.j.client.busiest_worker_core_share * (r.j.params.workers || 1) : r.j.client.core_share_run);

// From sample.js's lines taken while publishing (from 1 s after the first publish to 0.5 s
// before the last, as seen from the tool's start): the broker's CPU per delivery and how often
// the client blocked (so had to be woken) per delivery.
function steady(r) {
  const s = r.samples, j = r.j;
  if (!s.length || !r.ctx.t_start || !j.connections || !j.params) return { broker: NaN, wakes: NaN };
  const pub = r.ctx.t_start + j.connections.connect_s;
  const lo = pub + 0.5 + j.params.warmup + 0.5, hi = pub + 0.2 + j.params.warmup + j.params.duration - 0.5;
  const w = s.filter((x) => x[0] >= lo && x[0] <= hi);
  if (w.length < 2) return { broker: NaN, wakes: NaN };
  const a = w[0], z = w[w.length - 1], d = j.messages.deliveries_per_s * (z[0] - a[0]);
  return { broker: (z[1] - a[1]) / 1000 / d, wakes: (z[2] - a[2]) / d };
}

let allOk = true;
const points = [...new Set(runs.map((r) => r.point))].sort((a, b) => {
  const x = a.split(":").map(Number), y = b.split(":").map(Number);
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
});
console.log("");
console.log("| point N:M:R | client | runs | deliveries/s | lost | p50 µs | p90 µs | p99 µs | send lag p50 µs (not in the latency) | client CPU while publishing (% of CPU 1) | client CPU per delivery µs | client wake-ups per delivery | broker CPU per delivery µs | other load (% of a core) |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
const verdicts = [], notes = [], diag = [];
const stamps = new Set();
for (const p of points) {
  const per = {};
  for (const tool of ["c", ...others]) {
    const rs = runs.filter((r) => r.point === p && r.tool === tool);
    const ok = rs.filter(good);
    const problems = [];
    for (const r of rs) {
      const name = `${NAME[tool]} rep ${r.rep}`;
      if (!good(r)) problems.push(`${name} failed`);
      else {
        if (r.j.messages.lost !== 0) problems.push(`${name} lost ${r.j.messages.lost}`);
        if (r.j.connections.established !== r.n) problems.push(`${name} connected ${r.j.connections.established}/${r.n}`);
      }
    }
    if (rs.length === 0) problems.push(`no ${NAME[tool]} runs`);
    if (tool === "c") for (const r of ok) stamps.add(r.j.messages.stamp || "schedule (a build without --stamp)");
    const v = (f) => ok.map(f);
    const d = v((r) => r.j.messages.deliveries_per_s);
    const p50 = v((r) => r.j.messages.latency_us.p50);
    const p99 = v((r) => r.j.messages.latency_us.p99);
    per[tool] = { d, p50, p99, problems, ok };
    const st = ok.map(steady);
    console.log(`| ${p} | ${NAME[tool]} | ${ok.length}/${rs.length} | ${spread(d)} | ${v((r) => r.j.messages.lost).join(", ")} | ` +
      `${spread(p50)} | ${spread(v((r) => r.j.messages.latency_us.p90))} | ${spread(p99)} | ${spread(v(sendLag))} | ` +
      `${spread(v(busy))} | ${spread(v((r) => r.j.client.cpu_us_per_delivery), 1)} | ${spread(st.map((x) => x.wakes), 2)} | ` +
      `${spread(st.map((x) => x.broker), 1)} | ${spread(v((r) => r.ctx.other_core_pct))} |`);
  }
  for (const tool of others) {
    const a = per[tool], c = per.c;
    const dd = pct(median(a.d), median(c.d));
    const d50 = pct(median(a.p50), median(c.p50));
    const d99 = pct(median(a.p99), median(c.p99));
    const problems = [...c.problems, ...a.problems];
    const pass = Math.abs(dd) <= tol && Math.abs(d50) <= tol && problems.length === 0;
    const judged = tool === judge;
    if (judged && !pass) allOk = false;
    verdicts.push(`${p}: ${NAME[tool]}${judged ? "" : " (not judged)"}: deliveries/s ${sign(dd)}, p50 ${sign(d50)} ` +
      `(${fmt(median(a.p50))} against ${fmt(median(c.p50))} µs), p99 ${sign(d99)} (not judged) -> ` +
      (pass ? `agree within ${tol}%` : `${judged ? "FAIL" : "differ"}${problems.length ? " (" + problems.join("; ") + ")" : ""}`));
  }

  // Diagnostics: where a client's own costs go into its latency.
  for (const tool of ["epoll", "node"]) {
    const rk = runs.filter((r) => r.point === p && r.tool === `${tool}-ranks` && good(r));
    const by = rk.map((r) => r.j.messages.latency_by_rank_us).filter((x) => x);
    if (by.length && p.split(":")[1] === "2") {
      diag.push(`${p}: ${NAME[tool]} --ranks: one receiver per publish, p50 ${fmt(median(by.map((x) => x.first.p50)))} µs`);
    } else if (by.length) {
      const slope = by.map((x) => {
        const m = x.mean_by_rank, n = m.length;
        return n > 2 ? (m[n - 1] - m[1]) / (n - 2) : NaN;
      });
      diag.push(`${p}: ${NAME[tool]} --ranks, p50 by arrival order within a publish (${by.length > 1 ? "medians of " + by.length + " runs" : "one run"}; whole run p50 ${fmt(median(rk.map((r) => r.j.messages.latency_us.p50)))} µs): ` +
        `first ${fmt(median(by.map((x) => x.first.p50)))} µs, middle ${fmt(median(by.map((x) => x.middle.p50)))} µs, ` +
        `last ${fmt(median(by.map((x) => x.last.p50)))} µs; mean grows ${fmt(median(slope), 1)} µs per place after the second`);
    }
    const ks = rk.filter((r) => r.j.messages.latency_kernel_us);
    if (ks.length) {
      const k = (f) => fmt(median(ks.map(f)));
      diag.push(`${p}: ${NAME[tool]} --kernel-stamps: send to the kernel's receive stamp p50 ${k((r) => r.j.messages.latency_kernel_us.p50)} µs, ` +
        `then waiting in the socket until read p50 ${k((r) => r.j.messages.socket_wait_us.p50)} µs (p90 ${k((r) => r.j.messages.socket_wait_us.p90)} µs); ` +
        `${fmt(median(ks.map((r) => r.j.client.events_per_wake)), 1)} ready sockets per wake-up` +
        (ks[0].j.messages.latency_wake_us ? `; stamped once per wake-up instead, after its reads, p50 ${k((r) => r.j.messages.latency_wake_us.p50)} µs` : ""));
    }
  }
  for (const tool of ["c", ...others]) {
    if (per[tool].ok.length)
      diag.push(`${p}: ${NAME[tool]} CPU per delivery while publishing ${spread(per[tool].ok.map((r) => r.j.client.cpu_us_per_delivery), 1)} µs, ` +
        `send lag p50 ${spread(per[tool].ok.map(sendLag))} µs`);
  }
  try {
    const pr = JSON.parse(fs.readFileSync(path.join(dir, `n${p.split(":").join("-").replace(/^(\d+)-(\d+)-/, "$1-m$2-r")}-probe.json`), "utf8"));
    diag.push(`${p}: lag-probe (ringcast-bench's pacing wait alone) at ${pr.rate}/s: wake-up lag p50 ${pr.lag_us.p50} µs, p90 ${pr.lag_us.p90} µs, p99 ${pr.lag_us.p99} µs`);
    const sched = per.c.ok.filter((r) => !r.j.messages.stamp || r.j.messages.stamp === "schedule");
    if (sched.length) {
      const adj = median(sched.map((r) => r.j.messages.latency_us.p50)) - pr.lag_us.p50;
      for (const tool of others)
        diag.push(`${p}: ringcast-bench (stamping the schedule) p50 less that lag ${fmt(adj)} µs; ${NAME[tool]} p50 differs from it by ${sign(pct(median(per[tool].p50), adj))}`);
    }
  } catch {}
}
console.log("");
console.log(`ringcast-bench's payload time: ${[...stamps].join(", ") || "-"}`);
console.log("against ringcast-bench, medians over the repetitions:");
for (const v of verdicts) console.log("  " + v);
if (others.includes("node") && judge !== "node") {
  notes.push("chat-client.js is not judged: its own cost per delivery on one core queues a room's deliveries behind",
    "each other (its --ranks latency grows 12-20 µs per place), which adds to its p50 as rooms grow (README.md,",
    "\"The Node client\").");
}
for (const v of notes) console.log("  " + v);
if (diag.length) console.log("diagnostics:");
for (const v of diag) console.log("  " + v);
process.exit(allOk ? 0 : 1);

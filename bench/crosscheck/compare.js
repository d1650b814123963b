#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// compare.js [--tolerance PCT] DIR: the comparison table of a run.sh result directory.
//
// For every point (N, M, R) it takes the median over the repetitions of each tool's
// deliveries/s, p50 and p99, and the relative difference (chat-client.js - ringcast-bench) /
// ringcast-bench. The rule: the medians of deliveries/s and of p50 must agree within the
// tolerance (10%), every run must have completed with all connections and no lost delivery.
// p99 is reported, not judged (see README.md). Exit 0 when every point passes, 1 otherwise,
// 2 on a usage error.
"use strict";

const fs = require("fs");
const path = require("path");

let tol = 10, dir = null;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--tolerance") tol = Number(args[++i]);
  else dir = args[i];
}
if (!dir || !Number.isFinite(tol)) {
  console.error("usage: compare.js [--tolerance PCT] DIR");
  process.exit(2);
}

const runs = [];
for (const f of fs.readdirSync(dir).sort()) {
  const m = /^n(\d+)-m(\d+)-r([\d.]+)-(c|node|ranks)-(\d+)\.json$/.exec(f);
  if (!m) continue;
  const tag = f.slice(0, -5);
  let j = null, ctx = {};
  try {
    j = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
  } catch {}
  try {
    ctx = JSON.parse(fs.readFileSync(path.join(dir, tag + ".ctx"), "utf8"));
  } catch {}
  runs.push({ point: `${m[1]}:${m[2]}:${m[3]}`, n: +m[1], mm: +m[2], r: +m[3], tool: m[4], rep: +m[5], j, ctx });
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y), n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "-");
const pct = (a, b) => (100 * (a - b)) / b;
const spread = (a, d = 0) => `${fmt(median(a), d)} (${fmt(Math.min(...a), d)}–${fmt(Math.max(...a), d)})`;
const sign = (x) => (x >= 0 ? "+" : "") + fmt(x, 1) + "%";

let allOk = true;
const points = [...new Set(runs.map((r) => r.point))].sort((a, b) => {
  const x = a.split(":").map(Number), y = b.split(":").map(Number);
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
});
console.log("");
console.log("| point N:M:R | tool | runs | deliveries/s | lost | p50 µs | p90 µs | p99 µs | tool CPU while publishing (% of CPU 1) | tool CPU, whole run | other load (% of a core) |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
const verdicts = [], rankLines = [], cpuLines = [], probeLines = [];
for (const p of points) {
  const per = {};
  const problems = [];
  for (const tool of ["c", "node"]) {
    const rs = runs.filter((r) => r.point === p && r.tool === tool);
    const ok = rs.filter((r) => r.j && r.j.messages && !r.j.error);
    const cpd = ok.map((r) => r.j.client.cpu_us_per_delivery);
    cpuLines.push(`${p}: ${tool === "c" ? "ringcast-bench" : "chat-client.js"} CPU per delivery while publishing ${spread(cpd, 1)} µs` +
      (tool === "node" ? `; its own send lag (not in its latency) p50 ${spread(ok.map((r) => r.j.client.schedule_lag_us?.p50 ?? NaN))} µs` : ""));
    for (const r of rs) {
      const name = `${tool === "c" ? "ringcast-bench" : "chat-client.js"} rep ${r.rep}`;
      if (!r.j || !r.j.messages || r.j.error) problems.push(`${name} failed`);
      else {
        if (r.j.messages.lost !== 0) problems.push(`${name} lost ${r.j.messages.lost}`);
        if (r.j.connections.established !== r.n) problems.push(`${name} connected ${r.j.connections.established}/${r.n}`);
      }
    }
    const d = ok.map((r) => r.j.messages.deliveries_per_s);
    const lost = ok.map((r) => r.j.messages.lost);
    const p50 = ok.map((r) => r.j.messages.latency_us.p50);
    const p90 = ok.map((r) => r.j.messages.latency_us.p90);
    const p99 = ok.map((r) => r.j.messages.latency_us.p99);
    // the tool's CPU over its whole run (connect to close), as run.sh measured it
    const core = ok.map((r) => (100 * r.ctx.tool_cpu_s) / r.ctx.wall_s);
    // while publishing and draining, all of the tool's processes on CPU 1 (ringcast-bench runs
    // one worker at these sizes, whose share it reports; chat-client.js sums its workers)
    const busy = ok.map((r) => 100 * (tool === "node" ? r.j.client.core_share_run :
      r.j.client.busiest_worker_core_share * (r.j.params.workers || 1)));
    const other = ok.map((r) => r.ctx.other_core_pct);
    per[tool] = { d, p50, p99 };
    const rk = runs.filter((r) => r.point === p && r.tool === "ranks" && r.j && r.j.messages)
      .map((r) => r.j.messages.latency_by_rank_us).filter((x) => x);
    if (rk.length) {
      const slope = rk.map((x) => {
        const m = x.mean_by_rank, n = m.length;
        return n > 2 ? (m[n - 1] - m[1]) / (n - 2) : NaN;
      });
      if (tool === "node") rankLines.push(`${p}: chat-client.js --ranks, latency by arrival order within a publish (p50${rk.length > 1 ? ", medians of " + rk.length + " runs" : ""}): ` +
        `first ${fmt(median(rk.map((x) => x.first.p50)))} µs, middle ${fmt(median(rk.map((x) => x.middle.p50)))} µs, ` +
        `last ${fmt(median(rk.map((x) => x.last.p50)))} µs; mean grows ${fmt(median(slope), 1)} µs per place after the second`);
    }
    console.log(`| ${p} | ${tool === "c" ? "ringcast-bench" : "chat-client.js"} | ${ok.length}/${rs.length} | ${spread(d)} | ${lost.join(", ")} | ${spread(p50)} | ${spread(p90)} | ${spread(p99)} | ${spread(busy)} | ${spread(core)} | ${spread(other)} |`);
  }
  try {
    const pr = JSON.parse(fs.readFileSync(path.join(dir, `n${p.split(":").join("-").replace(/^(\d+)-(\d+)-/, "$1-m$2-r")}-probe.json`), "utf8"));
    probeLines.push(`${p}: lag-probe (ringcast-bench's pacing wait alone) at ${pr.rate}/s: wake-up lag p50 ${pr.lag_us.p50} µs, p90 ${pr.lag_us.p90} µs, p99 ${pr.lag_us.p99} µs`);
    const adj = median(per.c.p50) - pr.lag_us.p50;
    probeLines.push(`${p}: ringcast-bench p50 less that lag ${fmt(adj)} µs; chat-client.js p50 differs from it by ${sign(pct(median(per.node.p50), adj))}` +
      (p.split(":")[1] === "2" ? " (one delivery per publish: neither client queues deliveries behind each other)" : " (chat-client.js still queues a room's deliveries behind each other, see --ranks)"));
  } catch {}
  const dd = pct(median(per.node.d), median(per.c.d));
  const d50 = pct(median(per.node.p50), median(per.c.p50));
  const d99 = pct(median(per.node.p99), median(per.c.p99));
  const pass = Math.abs(dd) <= tol && Math.abs(d50) <= tol && problems.length === 0;
  if (!pass) allOk = false;
  verdicts.push(`${p}: deliveries/s ${sign(dd)}, p50 ${sign(d50)}, p99 ${sign(d99)} (not judged) -> ` +
    (pass ? `agree within ${tol}%` : `FAIL${problems.length ? " (" + problems.join("; ") + ")" : ""}`));
}
console.log("");
console.log("chat-client.js against ringcast-bench, medians over the repetitions:");
for (const v of verdicts) console.log("  " + v);
if (cpuLines.length + rankLines.length + probeLines.length) console.log("diagnostics:");
for (const v of [...cpuLines, ...probeLines, ...rankLines]) console.log("  " + v);
process.exit(allOk ? 0 : 1);

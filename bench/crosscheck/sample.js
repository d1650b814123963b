#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// sample.js BROKER_PID TOOL_PIDFILE: run.sh's sampler. Every 250 ms, until the tool exits, one
// line on stdout:
//
//   WALL_S BROKER_CPU_NS TOOL_VCSW
//
// WALL_S is the wall clock (s since the epoch); BROKER_CPU_NS the broker's CPU time so far, all
// threads (/proc/PID/task/*/schedstat, in ns); TOOL_VCSW the voluntary context switches of the
// tool and every process below it: how often the client blocked, so how often something had to
// wake it. compare.js turns the samples taken while publishing into broker CPU per delivery and
// client wake-ups per delivery. On loopback the sender's CPU runs the receiver's wake-up, so a
// client that blocks more often costs the broker more per delivery (README.md, "Measured").
"use strict";

const fs = require("fs");

const [bpid, pidfile] = process.argv.slice(2);
if (!bpid || !pidfile) {
  console.error("usage: sample.js BROKER_PID TOOL_PIDFILE");
  process.exit(2);
}

const read = (f) => {
  try {
    return fs.readFileSync(f, "utf8");
  } catch {
    return null;
  }
};

function brokerNs() {
  let ns = 0;
  let tids = [];
  try {
    tids = fs.readdirSync(`/proc/${bpid}/task`);
  } catch {}
  for (const t of tids) {
    const s = read(`/proc/${bpid}/task/${t}/schedstat`);
    if (s) ns += Number(s.split(" ")[0]);
  }
  return ns;
}

// The tool and its descendants (no /proc/PID/task/*/children here: scan the parents).
function tree(root) {
  const kids = new Map();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const s = read(`/proc/${d}/stat`);
    if (!s) continue;
    const ppid = s.slice(s.lastIndexOf(")") + 2).split(" ")[1];
    if (!kids.has(ppid)) kids.set(ppid, []);
    kids.get(ppid).push(d);
  }
  const out = [], todo = [String(root)];
  while (todo.length) {
    const p = todo.pop();
    out.push(p);
    for (const k of kids.get(p) || []) todo.push(k);
  }
  return out;
}

function vcsw(pids) {
  let n = 0;
  for (const p of pids) {
    let tids = [];
    try {
      tids = fs.readdirSync(`/proc/${p}/task`);
    } catch {}
    for (const t of tids) {
      const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(read(`/proc/${p}/task/${t}/status`) || "");
      if (m) n += Number(m[1]);
    }
  }
  return n;
}

let tpid = null;
const deadline = Date.now() + 10000;
const tick = () => {
  if (!tpid) {
    const s = read(pidfile);
    if (s && s.trim()) tpid = s.trim();
    else if (Date.now() > deadline) process.exit(0);
    else return setTimeout(tick, 50);
  }
  if (!fs.existsSync(`/proc/${tpid}`)) process.exit(0);
  process.stdout.write(`${(Date.now() / 1000).toFixed(3)} ${brokerNs()} ${vcsw(tree(tpid))}\n`);
  setTimeout(tick, 250);
};
tick();

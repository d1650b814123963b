// SPDX-License-Identifier: MIT
// The operations page: reads /stats once a second while the page is visible, turns the
// counters into rates here (the broker only counts), takes the publish latency percentiles from
// the histogram's buckets (stats.js, shared with the chat page), and draws the last five
// minutes on canvases. No library, nothing inline (the page's Content-Security-Policy allows
// only the broker's own files to run), and every figure reaches the page as text, never as HTML.
'use strict';

(function () {
  const POLL_MS = 1000;
  const HISTORY = 300; // samples kept and drawn: five minutes at 1 Hz
  // Rates are taken over about three seconds: the broker samples its CPU time once a second,
  // so a rate over one interval alone would swing between 0 and twice the truth.
  const RATE_WINDOW_MS = 3000;
  // Percentiles need deliveries to rank: the last ten seconds of them.
  const LATENCY_WINDOW_MS = 10000;
  const NR_COLOURS = 8;

  const $ = (id) => document.getElementById(id);
  const samples = []; // { t: ms (performance.now), s: the /stats object }, oldest first
  const series = {
    conns: [], shardConns: [], msgsIn: [], deliveries: [], p50: [], p99: [], cpu: [], shardCpu: [],
  };
  let timer = null;
  let inFlight = false;
  let paused = false;
  let failures = 0;

  // ---- formatting -------------------------------------------------------------------------

  const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const nf1 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
  const nf2 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

  function fmtCount(n) {
    return n == null ? '—' : nf0.format(n);
  }

  function fmtRate(n) {
    if (n == null) return '—';
    return n < 10 ? nf1.format(n) : nf0.format(n);
  }

  function fmtBytes(n) {
    if (n == null) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? nf0.format(n) : nf1.format(n)) + ' ' + units[i];
  }

  function fmtSeconds(s) {
    if (s == null) return '—';
    if (s < 0.001) return nf0.format(s * 1e6) + ' µs';
    if (s < 1) return nf1.format(s * 1e3) + ' ms';
    return nf2.format(s) + ' s';
  }

  // An axis label: whole numbers plain, the halves and quarters of small scales with decimals.
  function fmtTick(v) {
    return Number.isInteger(v) ? nf0.format(v) : nf2.format(v);
  }

  function fmtPercent(p) {
    return p == null ? '—' : nf1.format(p) + ' %';
  }

  // Sets a figure's text, and its raw value in data-value for whoever reads the page by program.
  function show(id, text, raw) {
    const el = $(id);
    el.textContent = text;
    if (raw !== undefined) el.dataset.value = raw == null ? '' : String(raw);
  }

  // ---- figures from counters --------------------------------------------------------------

  // The newest sample at least <ms> older than the last one, or the oldest there is.
  function base(ms) {
    const last = samples[samples.length - 1];
    for (let i = samples.length - 2; i >= 0; i--) {
      if (last.t - samples[i].t >= ms) return samples[i];
    }
    return samples.length > 1 ? samples[0] : null;
  }

  // Per second between samples <a> and <b> of the counter <get> picks. A counter that went
  // back means the broker restarted: no rate rather than a negative one.
  function rate(a, b, get) {
    if (!a || !b) return null;
    const dt = (b.t - a.t) / 1000;
    const va = get(a.s);
    const vb = get(b.s);
    if (dt <= 0 || va == null || vb == null || vb < va) return null;
    return (vb - va) / dt;
  }

  function push(arr, v) {
    arr.push(v);
    if (arr.length > HISTORY) arr.shift();
  }

  // ---- charts -----------------------------------------------------------------------------

  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      if (v <= m * p) return m * p;
    }
    return 10 * p;
  }

  // Draws <lines> ([{ data, colour }], data oldest first, null for a gap) on <canvas>, newest at
  // the right edge, with four grid lines labelled by <fmt>.
  function drawChart(canvas, lines, fmt) {
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (!w || !h) return;
    const dpr = window.devicePixelRatio || 1;
    const pw = Math.round(w * dpr);
    const ph = Math.round(h * dpr);
    if (canvas.width !== pw || canvas.height !== ph) {
      canvas.width = pw;
      canvas.height = ph;
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    let max = 0;
    for (const l of lines) {
      for (const v of l.data) if (v != null && v > max) max = v;
    }
    const top = niceCeil(max);
    const left = 56;
    const right = 6;
    const up = 8;
    const down = 6;
    const ch = h - up - down;
    const cw = w - left - right;
    ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    ctx.lineWidth = 1;
    ctx.strokeStyle = css.getPropertyValue('--grid').trim();
    ctx.fillStyle = css.getPropertyValue('--muted').trim();
    for (let k = 0; k <= 4; k++) {
      const y = Math.round(up + ch * (1 - k / 4)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(w - right, y);
      ctx.stroke();
      ctx.fillText(fmt((top * k) / 4), left - 6, y);
    }
    ctx.lineWidth = 1.5;
    ctx.lineJoin = 'round';
    for (const l of lines) {
      ctx.strokeStyle = css.getPropertyValue('--c' + l.colour).trim();
      ctx.beginPath();
      let pen = false;
      const n = l.data.length;
      for (let i = 0; i < n; i++) {
        const v = l.data[i];
        if (v == null) {
          pen = false;
          continue;
        }
        const x = left + (cw * (HISTORY - n + i)) / (HISTORY - 1);
        const y = up + ch * (1 - v / top);
        if (pen) ctx.lineTo(x, y);
        else ctx.moveTo(x, y);
        pen = true;
      }
      ctx.stroke();
    }
  }

  // Writes a legend list: one item per line, its colour by class (no inline style under CSP).
  function legend(id, names) {
    const ul = $(id);
    if (ul.dataset.names === names.join('\n')) return;
    ul.dataset.names = names.join('\n');
    ul.replaceChildren();
    names.forEach((name, i) => {
      const li = document.createElement('li');
      li.className = 'c' + (i % NR_COLOURS);
      li.textContent = name;
      ul.appendChild(li);
    });
  }

  function last(arr) {
    return arr.length ? arr[arr.length - 1] : null;
  }

  function drawAll() {
    const nrShards = series.shardConns.length;
    const shardLines = (list, from) => list.map((data, i) => ({ data, colour: (i + from) % NR_COLOURS }));
    const shardNames = () => Array.from({ length: nrShards }, (_, i) => 'shard ' + i);

    drawChart($('c-conns'), [{ data: series.conns, colour: 0 }].concat(shardLines(series.shardConns, 1)),
              fmtTick);
    legend('l-conns', ['all shards'].concat(shardNames()));
    $('c-conns').setAttribute('aria-label', 'Connections over the last five minutes; now ' +
                              fmtCount(last(series.conns)));

    drawChart($('c-msgs'), [{ data: series.msgsIn, colour: 0 }, { data: series.deliveries, colour: 1 }],
              fmtTick);
    legend('l-msgs', ['messages in', 'deliveries']);
    $('c-msgs').setAttribute('aria-label', 'Messages per second over the last five minutes; now ' +
                             fmtRate(last(series.msgsIn)) + ' in and ' +
                             fmtRate(last(series.deliveries)) + ' delivered');

    drawChart($('c-lat'), [{ data: series.p50, colour: 0 }, { data: series.p99, colour: 1 }],
              (v) => fmtSeconds(v));
    legend('l-lat', ['p50', 'p99']);
    $('c-lat').setAttribute('aria-label', 'Publish latency over the last five minutes; now p50 ' +
                            fmtSeconds(last(series.p50)) + ', p99 ' + fmtSeconds(last(series.p99)));

    drawChart($('c-cpu'), [{ data: series.cpu, colour: 0 }].concat(shardLines(series.shardCpu, 1)),
              (v) => fmtTick(v) + ' %');
    legend('l-cpu', ['process'].concat(shardNames()));
    $('c-cpu').setAttribute('aria-label', 'CPU over the last five minutes; the process now ' +
                            fmtPercent(last(series.cpu)));
  }

  // ---- one sample -------------------------------------------------------------------------

  function cell(tr, text) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.appendChild(td);
  }

  function renderShards(a, b) {
    const body = $('shards');
    const per = b.s.per_shard || [];
    const rows = [];
    per.forEach((sh, i) => {
      const at = (s) => (s.per_shard && s.per_shard[i] ? s.per_shard[i] : null);
      const r = (field) => rate(a, b, (s) => (at(s) ? at(s)[field] : null));
      const delivered = r('messages_delivered');
      const sends = r('sends');
      const cpu = r('cpu_seconds');
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = String(sh.shard);
      tr.appendChild(th);
      cell(tr, fmtCount(sh.connections));
      cell(tr, fmtRate(r('messages_received')));
      cell(tr, fmtRate(delivered));
      cell(tr, sends ? nf2.format(delivered / sends) : '—');
      cell(tr, fmtBytes(sh.send_queue_bytes));
      cell(tr, fmtRate(r('loop_turns')));
      cell(tr, fmtPercent(cpu == null ? null : cpu * 100));
      rows.push(tr);
    });
    body.replaceChildren(...rows);
  }

  function onSample(stats) {
    const now = { t: performance.now(), s: stats };
    samples.push(now);
    while (samples.length > 2 && now.t - samples[1].t > LATENCY_WINDOW_MS) samples.shift();
    const a = base(RATE_WINDOW_MS);
    const la = base(LATENCY_WINDOW_MS);
    const r = (get) => rate(a, now, get);

    const upgrades = r((s) => s.upgrades);
    const closes = r((s) => s.closes);
    const msgsIn = r((s) => s.messages_received);
    const deliveries = r((s) => s.messages_delivered);
    const sends = r((s) => s.sends);
    const cpu = r((s) => s.cpu_seconds);
    const lat = ringcastStats.latency(la ? la.s : null, now.s);

    show('v-connections', fmtCount(stats.connections), stats.connections);
    show('v-upgrades', fmtRate(upgrades), upgrades);
    show('v-closes', fmtRate(closes), closes);
    show('v-msgs-in', fmtRate(msgsIn), msgsIn);
    show('v-deliveries', fmtRate(deliveries), deliveries);
    // Frames per send over the window when there was traffic, else the broker's lifetime figure.
    const fps = sends ? deliveries / sends : stats.frames_per_send;
    show('v-fps', fps ? nf2.format(fps) : '—', fps);
    show('v-p50', fmtSeconds(lat.p50), lat.p50);
    show('v-p99', fmtSeconds(lat.p99), lat.p99);
    show('v-slow', fmtCount(stats.slow_consumer_close) + ' / ' + fmtCount(stats.slow_consumer_drop));
    show('v-tls', fmtCount(stats.tls_handshakes_active) + ' / ' +
         fmtCount(stats.tls_handshakes_waiting));
    show('v-rss', fmtBytes(stats.rss_bytes), stats.rss_bytes);
    show('v-cpu', fmtPercent(cpu == null ? null : cpu * 100), cpu);
    show('v-rooms', fmtCount(stats.rooms), stats.rooms);
    show('v-queued', fmtBytes(stats.send_queue_bytes), stats.send_queue_bytes);

    const per = stats.per_shard || [];
    push(series.conns, stats.connections);
    push(series.msgsIn, msgsIn);
    push(series.deliveries, deliveries);
    push(series.p50, lat.p50);
    push(series.p99, lat.p99);
    push(series.cpu, cpu == null ? null : cpu * 100);
    per.forEach((sh, i) => {
      if (!series.shardConns[i]) series.shardConns[i] = new Array(series.conns.length - 1).fill(null);
      if (!series.shardCpu[i]) series.shardCpu[i] = new Array(series.cpu.length - 1).fill(null);
      push(series.shardConns[i], sh.connections);
      const c = rate(a, now, (s) => (s.per_shard && s.per_shard[i] ? s.per_shard[i].cpu_seconds : null));
      push(series.shardCpu[i], c == null ? null : c * 100);
    });
    series.shardConns.length = per.length;
    series.shardCpu.length = per.length;

    renderShards(a, now);
    drawAll();
    const time = new Date().toLocaleTimeString('en-GB');
    setStatus('Updated ' + time + ' · ' + stats.shards + (stats.shards === 1 ? ' shard' : ' shards'),
              false);
  }

  // ---- polling ----------------------------------------------------------------------------

  function setStatus(text, bad) {
    const el = $('status');
    el.textContent = text;
    el.classList.toggle('bad', bad);
  }

  async function poll() {
    timer = null;
    if (inFlight) return;
    inFlight = true;
    try {
      const res = await fetch('/stats', { cache: 'no-store' });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      onSample(await res.json());
      failures = 0;
    } catch (e) {
      failures++;
      setStatus('Cannot read /stats (' + e.message + '); trying again', true);
    }
    inFlight = false;
    schedule();
  }

  // One request at a time, one second apart; none while paused or while the page is hidden, so
  // a forgotten background tab costs the broker nothing.
  function schedule() {
    if (timer || paused || document.hidden) return;
    timer = setTimeout(poll, failures ? Math.min(POLL_MS * 2 ** failures, 10000) : POLL_MS);
  }

  function stop() {
    if (timer) clearTimeout(timer);
    timer = null;
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) stop();
    else schedule();
  });

  $('pause').addEventListener('click', () => {
    paused = !paused;
    const button = $('pause');
    button.setAttribute('aria-pressed', String(paused));
    button.textContent = paused ? 'Resume' : 'Pause';
    if (paused) {
      stop();
      setStatus('Paused', false);
    } else {
      poll();
    }
  });

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawAll, 100);
  });
  window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', drawAll);

  poll();
})();

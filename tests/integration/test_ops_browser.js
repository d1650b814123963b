// SPDX-License-Identifier: MIT
// The operations page in a real browser: Debian's Chromium, headless, driven by playwright-core
// (npm). A broker with 20 `ws` clients in a room and a little traffic; the page must show the
// connection count /stats gives, a row per shard, deliveries per second, charts that are drawn,
// its script and style served gzip-compressed, no console error (a CSP violation is one), no
// horizontal scrolling at phone width, and the dark scheme when the system asks for it. It
// saves a screenshot: into the build directory, or into $RINGCAST_SCREENSHOT_DIR when set (the
// README's docs/ops.png is made with RINGCAST_SCREENSHOT_DIR=docs RINGCAST_SCREENSHOT_WAIT_S=40),
// so that a test run does not change the source tree.
//
// Without /usr/bin/chromium (or $RINGCAST_CHROMIUM) or playwright-core it prints why and exits
// 77, which ctest reports as skipped; `tools/deps.sh test` installs both, so CI runs it.
// Plain CommonJS; works on Node 18 and 20.
'use strict';

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const {
  SRC, withTimeout, sendAsync, assert, startBroker, stopBroker, connect, closeAll, settle,
  Runner, runMain,
} = require('./node_harness');

const SKIP = 77;
const CHROMIUM = process.env.RINGCAST_CHROMIUM || '/usr/bin/chromium';
const TOTAL_LIMIT_MS = 150000;
const MEMBERS = 20;
const ROOM = '/room/ops-browser';

function skip(why) {
  console.log('skipped: ' + why);
  process.exit(SKIP);
}

let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (e) {
  skip('cannot load playwright-core (run `npm ci` in tests/integration): ' + e.message);
}
if (!fs.existsSync(CHROMIUM)) {
  skip(CHROMIUM + ' is missing (apt-get install chromium; tools/deps.sh test installs it)');
}

// Chromium's own flags for a quiet, self-contained run: no GPU, no sandbox (containers), no
// QUIC, and none of its background traffic (update checks, sync, component downloads), which a
// machine without outside access would refuse anyway.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls <fn>(<arg>) in the page until it returns a true value, for at most <ms>. A loop of
// page.evaluate rather than waitForFunction: each call is one function call over the DevTools
// protocol, which the page's CSP (no 'unsafe-eval') has no say over.
async function waitIn(page, fn, arg, ms, what) {
  return withTimeout((async () => {
    for (;;) {
      const v = await page.evaluate(fn, arg);
      if (v) return v;
      await sleep(100);
    }
  })(), ms, what);
}

function getStats(port) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/stats', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(new Error('/stats is not JSON: ' + body.slice(0, 200)));
        }
      });
    });
    req.on('error', reject);
  });
}

// ------------------------------------------------------------------------------------------
// Cases (each gets the shared state: broker, browser context, page, console errors)

async function caseConnections(st) {
  // The count moves while settle's probe connection goes away: compare against a fresh /stats
  // until both agree on at least the members.
  let shown = null;
  let want = null;
  await withTimeout((async () => {
    for (;;) {
      want = (await getStats(st.b.port)).connections;
      shown = await st.page.$eval('#v-connections', (el) => el.dataset.value);
      if (want >= MEMBERS && shown === String(want)) return;
      await sleep(200);
    }
  })(), 15000, 'page connection count ' + shown + ' vs /stats ' + want);
}

async function caseShardsAndRates(st) {
  const s = await getStats(st.b.port);
  await waitIn(st.page, (n) => document.querySelectorAll('#shards tr').length === n, s.shards,
               5000, 'a table row per shard');
  // Rates need two samples; the pump publishes 20 messages a second into a room of 20.
  await waitIn(st.page, () => Number(document.getElementById('v-deliveries').dataset.value) > 0,
               null, 10000, 'deliveries per second above 0');
  const cells = await st.page.$$eval('#shards tr', (rows) => rows.map((r) => r.cells.length));
  assert(cells.every((n) => n === 8), 'shard rows with ' + cells + ' cells');
  const p50 = await st.page.$eval('#v-p50', (el) => el.textContent);
  assert(/\d/.test(p50), 'p50 shows ' + p50 + ' with traffic flowing');
}

async function caseChartsDrawn(st) {
  const painted = await st.page.$$eval('canvas', (list) => list.map((c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
    return n;
  }));
  assert(painted.length === 4, painted.length + ' canvases');
  assert(painted.every((n) => n > 200), 'canvas pixels painted: ' + painted);
  const legends = await st.page.$$eval('.legend li', (l) => l.length);
  assert(legends >= 4, legends + ' legend items');
}

async function caseGzipAssets(st) {
  for (const name of ['/assets/ops.js', '/assets/ops.css', '/ops']) {
    const h = st.headers[name];
    assert(h, 'the page did not load ' + name);
    assert(h['content-encoding'] === 'gzip', name + ' came with Content-Encoding ' +
           h['content-encoding']);
    assert(/charset=utf-8/.test(h['content-type']), name + ': ' + h['content-type']);
  }
}

async function casePhoneWidth(st) {
  const page = await st.ctx.newPage();
  try {
    await page.setViewportSize({ width: 360, height: 740 });
    await page.goto(st.url, { waitUntil: 'load' });
    await waitIn(page, () => document.getElementById('v-connections').dataset.value, null, 10000,
                 'first sample at phone width');
    const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(over <= 0, 'the page scrolls sideways by ' + over + ' px at 360 px');
    const unlabelled = await page.$$eval('button, canvas, table', (els) => els.filter((e) =>
      !(e.getAttribute('aria-label') || e.textContent.trim() || e.querySelector('caption'))).length);
    assert(unlabelled === 0, unlabelled + ' controls or charts without a label');
  } finally {
    await page.close();
  }
}

async function caseDarkScheme(st) {
  const bg = () => st.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await st.page.emulateMedia({ colorScheme: 'light' });
  const light = await bg();
  await st.page.emulateMedia({ colorScheme: 'dark' });
  const dark = await bg();
  await st.page.emulateMedia({ colorScheme: 'light' });
  assert(light !== dark, 'same background in both schemes: ' + light);
  const lum = (rgb) => rgb.match(/\d+/g).slice(0, 3).reduce((a, v) => a + Number(v), 0);
  assert(lum(dark) < lum(light), 'dark scheme is not darker: ' + dark + ' vs ' + light);
}

async function caseScreenshot(st) {
  // A few more seconds of samples so the charts show a line (longer with
  // RINGCAST_SCREENSHOT_WAIT_S, for the README's picture), then the picture.
  await sleep(1000 * Number(process.env.RINGCAST_SCREENSHOT_WAIT_S || 6));
  const dir = process.env.RINGCAST_SCREENSHOT_DIR ||
              process.env.RINGCAST_BUILD_DIR || path.join(SRC, 'build');
  const file = path.resolve(SRC, dir, 'ops.png');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await st.page.screenshot({ path: file, fullPage: true });
  const size = fs.statSync(file).size;
  assert(size > 10000, 'screenshot of ' + size + ' bytes');
  console.log('   screenshot: ' + path.relative(process.cwd(), file) + ' (' + size + ' bytes)');
}

async function caseNoConsoleErrors(st) {
  assert(st.errors.length === 0, 'console errors:\n  ' + st.errors.join('\n  '));
}

// ------------------------------------------------------------------------------------------

async function main() {
  const r = new Runner(TOTAL_LIMIT_MS);
  const b = await startBroker(['--shards', '2']);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ringcast-chromium-'));
  const clients = [];
  let ctx = null;
  let pumping = true;
  let pump = Promise.resolve();
  try {
    for (let i = 0; i < MEMBERS; i++) clients.push(await connect(b, ROOM));
    await settle(b, ROOM, clients);
    pump = (async () => {
      for (let i = 0; pumping; i++) {
        await sendAsync(clients[i % MEMBERS], 'hello ' + i);
        await sleep(50);
      }
    })();

    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1000, height: 800 },
      deviceScaleFactor: 1,
      colorScheme: 'light',
      timeout: 30000,
    });
    const page = ctx.pages()[0] || await ctx.newPage();
    const st = { b, ctx, page, errors: [], headers: {}, url: 'http://127.0.0.1:' + b.port + '/ops' };
    ctx.on('console', (m) => { if (m.type() === 'error') st.errors.push(m.text()); });
    page.on('pageerror', (e) => st.errors.push(e.message));
    page.on('requestfailed', (q) => st.errors.push('request failed: ' + q.url()));
    page.on('response', async (res) => {
      const p = new URL(res.url()).pathname;
      st.headers[p] = await res.allHeaders().catch(() => ({}));
    });
    await page.goto(st.url, { waitUntil: 'load' });

    await r.run('the page shows the connection count /stats gives', caseConnections, st);
    await r.run('a row per shard, deliveries per second and p50 under traffic',
                caseShardsAndRates, st);
    await r.run('four charts drawn, with legends', caseChartsDrawn, st);
    await r.run('script, style and page arrive gzip-compressed, with a charset',
                caseGzipAssets, st);
    await r.run('phone width: no sideways scrolling, every control labelled', casePhoneWidth, st);
    await r.run('dark scheme when the system asks', caseDarkScheme, st);
    await r.run('screenshot', caseScreenshot, st);
    await r.run('no console errors (CSP violations included)', caseNoConsoleErrors, st);
  } finally {
    pumping = false;
    await pump.catch(() => {});
    if (ctx) await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
    await closeAll(clients);
    const exit = await stopBroker(b);
    if (exit.code !== 0) {
      console.log('FAIL broker exited with ' + JSON.stringify(exit) + ': ' + b.stderr);
      r.failed++;
    }
  }
  r.finish();
}

runMain(main);

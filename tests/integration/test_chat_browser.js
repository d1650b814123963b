// SPDX-License-Identifier: MIT
// The chat page (GET /) in a real browser: Debian's Chromium, headless, driven by playwright-core
// (npm), against a broker with two shards and --history-size 20. Alice and Bob (two browser
// contexts) enter one room and see each other's messages and presence; a message that looks
// like HTML shows as typed; Carol enters late and sees the history, and leaves again. Bob's page
// reaches the broker through a small TCP proxy in this file, which cuts his WebSocket and
// refuses new ones for a while: his page must reconnect by itself and recover what Alice wrote
// meanwhile, exactly once and in order; after a cut longer than the room's history it must
// mark the gap. The page must also fit a 360 px screen, follow the dark scheme, show the stats
// panel, and log no console error (a CSP violation is one) other than the refused connections
// the proxy causes on purpose. It saves screenshots (chat.png, chat-phone.png) into the build
// directory, or into $RINGCAST_SCREENSHOT_DIR when set (the README's pictures are made with
// RINGCAST_SCREENSHOT_DIR=docs), so that a test run does not change the source tree.
//
// Without /usr/bin/chromium (or $RINGCAST_CHROMIUM) or playwright-core it prints why and exits
// 77, which ctest reports as skipped; `tools/deps.sh test` installs both, so CI runs it.
// Plain CommonJS; works on Node 18 and 20.
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const {
  SRC, withTimeout, sendAsync, assert, startBroker, stopBroker, connect, closeAll, Runner, runMain,
} = require('./node_harness');

const SKIP = 77;
const CHROMIUM = process.env.RINGCAST_CHROMIUM || '/usr/bin/chromium';
const TOTAL_LIMIT_MS = 150000;
const ROOM = 'chat-browser';
const HISTORY_SIZE = 20;
const XSS = '<img src=x onerror=alert(1)>';

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

// As in test_ops_browser.js: no GPU, no sandbox (containers), no QUIC, no background traffic.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls <fn>(<arg>) in the page until it returns a true value, for at most <ms> (a loop of
// page.evaluate, which the page's CSP has no say over; see test_ops_browser.js).
async function waitIn(page, fn, arg, ms, what) {
  return withTimeout((async () => {
    for (;;) {
      const v = await page.evaluate(fn, arg);
      if (v) return v;
      await sleep(100);
    }
  })(), ms, what);
}

// ------------------------------------------------------------------------------------------
// A TCP proxy between Bob's page and the broker. Plain HTTP passes untouched; WebSocket
// connections to /connection/websocket are the ones it cuts (cut) and refuses while blocked.

function startProxy(port) {
  const sockets = new Set();
  let blocked = false;
  let refused = 0;
  const server = net.createServer((down) => {
    down.on('error', () => {});
    down.once('data', (first) => {
      const ws = /^GET \/connection\/websocket[ ?]/.test(first.toString('latin1'));
      if (ws && blocked) {
        refused++;
        down.destroy();
        return;
      }
      const up = net.connect(port, '127.0.0.1');
      up.on('error', () => down.destroy());
      down.on('close', () => up.destroy());
      up.on('close', () => down.destroy());
      up.write(first);
      down.pipe(up);
      up.pipe(down);
      if (ws) {
        sockets.add(down);
        down.on('close', () => sockets.delete(down));
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({
      port: server.address().port,
      refused: () => refused,
      // An abrupt loss, as a dropped network shows it: no close frame, a reset.
      cut() {
        for (const s of sockets) s.resetAndDestroy ? s.resetAndDestroy() : s.destroy();
      },
      block() { blocked = true; },
      unblock() { blocked = false; },
      close() {
        for (const s of sockets) s.destroy();
        return new Promise((r) => server.close(() => r()));
      },
    }));
  });
}

// ------------------------------------------------------------------------------------------
// The page, seen from outside

async function enter(page, url, name) {
  await page.goto(url, { waitUntil: 'load' });
  await page.fill('#name', name);
  await page.click('#go');
  await waitIn(page, () => document.getElementById('status').dataset.state === 'subscribed',
               null, 10000, name + ' enters the room');
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.click('#send');
}

// [{ who, text, mine }] of the message list, in order, and the notes as { note }.
function messages(page) {
  return page.$$eval('#messages > li', (lis) => lis.map((li) => (li.classList.contains('note')
    ? { note: li.textContent }
    : { who: li.querySelector('.who').textContent, text: li.querySelector('.text').textContent,
        mine: li.classList.contains('mine'), offset: Number(li.dataset.offset) })));
}

function texts(page) {
  return page.$$eval('#messages .msg .text', (els) => els.map((e) => e.textContent));
}

async function waitText(page, text, what) {
  await waitIn(page, (t) => Array.from(document.querySelectorAll('#messages .msg .text'))
    .some((e) => e.textContent === t), text, 10000, what);
}

function people(page) {
  return page.$$eval('#people li', (lis) => lis.map((li) => li.textContent));
}

async function waitPeople(page, n, what) {
  await waitIn(page, (k) => document.querySelectorAll('#people li').length === k &&
    document.getElementById('people-count').textContent === String(k), n, 10000, what);
}

function state(page) {
  return page.$eval('#status', (el) => el.dataset.state);
}

// ------------------------------------------------------------------------------------------
// Cases (each gets the shared state <st>)

async function caseTwoPeople(st) {
  await enter(st.alice, st.url, 'Alice');
  await enter(st.bob, st.bobUrl, 'Bob');
  await waitPeople(st.alice, 2, 'Alice sees two people');
  await waitPeople(st.bob, 2, 'Bob sees two people');
  await say(st.alice, 'hello from Alice');
  await waitText(st.bob, 'hello from Alice', 'Bob gets Alice\'s message');
  await say(st.bob, 'hi Alice, Bob here');
  await waitText(st.alice, 'hi Alice, Bob here', 'Alice gets Bob\'s message');
  const a = await messages(st.alice);
  assert(a.length === 2, 'Alice sees ' + JSON.stringify(a));
  assert(a[0].who === 'Alice' && a[0].mine && a[1].who === 'Bob' && !a[1].mine,
         'Alice\'s list: ' + JSON.stringify(a));
  assert(a[1].offset === a[0].offset + 1, 'offsets ' + a[0].offset + ', ' + a[1].offset);
  // Names in the presence list come from the messages: both have written now.
  await waitIn(st.alice, () => Array.from(document.querySelectorAll('#people li'))
    .some((li) => li.textContent === 'Bob'), null, 5000, 'Bob by name in Alice\'s list');
  const p = await people(st.alice);
  assert(p.includes('Alice (you)') && p.includes('Bob'), 'Alice\'s people: ' + p);
}

async function caseText(st) {
  await say(st.alice, XSS);
  await waitText(st.bob, XSS, 'the HTML-looking message arrives as text');
  const imgs = await st.bob.$$eval('#messages img', (l) => l.length);
  assert(imgs === 0, imgs + ' <img> elements in the message list');
  assert(st.dialogs.length === 0, 'a dialog opened: ' + st.dialogs);
}

async function caseLateJoiner(st) {
  const carol = await st.newPage('carol', 1000, 700);
  await enter(carol, st.url, 'Carol');
  await waitIn(carol, (n) => document.querySelectorAll('#messages .msg').length >= n, 3, 10000,
               'Carol sees the history');
  const t = await texts(carol);
  assert(JSON.stringify(t) === JSON.stringify(['hello from Alice', 'hi Alice, Bob here', XSS]),
         'Carol\'s history: ' + JSON.stringify(t));
  const who = (await messages(carol)).map((m) => m.who);
  assert(who.join() === 'Alice,Bob,Alice', 'names in the history: ' + who);
  await waitPeople(st.alice, 3, 'Alice sees Carol join');
  await waitPeople(carol, 3, 'Carol sees three people');
  const p = await people(carol);
  assert(p.includes('Alice') && p.includes('Bob') && p.includes('Carol (you)'),
         'Carol knows the others by name from the history: ' + p);
  await say(carol, 'Carol here: I see what you wrote before I came');
  await waitText(st.alice, 'Carol here: I see what you wrote before I came', 'Carol writes');
  await st.alice.evaluate(() => {
    const ol = document.getElementById('messages');
    ol.scrollTop = ol.scrollHeight;
  });
  await shoot(st.alice, 'chat.png');
  await carol.click('#leave');
  await waitPeople(st.alice, 2, 'Alice sees Carol leave');
  await carol.close();
}

// Cuts Bob's WebSocket and keeps him out while <during> runs and until his page has tried again
// at least once (and been refused); then lets him back in and waits until his page is in the
// room again.
async function outage(st, during) {
  const refused = st.proxy.refused();
  st.proxy.block();
  st.cutting = true;
  st.proxy.cut();
  await waitIn(st.bob, () => document.getElementById('status').dataset.state !== 'subscribed',
               null, 10000, 'Bob\'s page notices the cut');
  await during();
  await withTimeout((async () => {
    while (st.proxy.refused() === refused) await sleep(50);
  })(), 15000, 'Bob\'s page tries to reconnect');
  st.proxy.unblock();
  await waitIn(st.bob, () => document.getElementById('status').dataset.state === 'subscribed',
               null, 30000, 'Bob\'s page reconnects by itself');
  st.cutting = false;
}

async function caseRecover(st) {
  const missed = ['while you were away 1', 'while you were away 2', 'while you were away 3'];
  await outage(st, async () => {
    for (const m of missed) await say(st.alice, m);
    await waitText(st.alice, missed[2], 'Alice\'s own messages');
  });
  await waitText(st.bob, missed[2], 'Bob recovers what he missed');
  const b = await messages(st.bob);
  const t = b.map((m) => m.text);
  assert(JSON.stringify(t.slice(-3)) === JSON.stringify(missed), 'Bob\'s list: ' + t);
  assert(new Set(t).size === t.length, 'a message shown twice: ' + t);
  assert(!b.some((m) => m.note), 'a gap marked where nothing was lost: ' + JSON.stringify(b));
  const status = await st.bob.$eval('#status', (el) => el.textContent);
  assert(/Caught up on 3 messages/.test(status), 'Bob\'s status: ' + status);
  await say(st.bob, 'back again');
  await waitText(st.alice, 'back again', 'Bob writes after the reconnect');
  await waitPeople(st.alice, 2, 'Alice sees Bob once after his reconnect');
}

async function caseGap(st) {
  // More than --history-size messages while Bob is away, from a raw member of the same room.
  const raw = await connect(st.b, '/room/' + ROOM);
  try {
    await outage(st, async () => {
      for (let i = 1; i <= HISTORY_SIZE + 10; i++) {
        await sendAsync(raw, JSON.stringify({ name: 'bot', text: 'flood ' + i }));
      }
      await waitText(st.alice, 'flood ' + (HISTORY_SIZE + 10), 'the flood reaches Alice');
    });
  } finally {
    await closeAll([raw]);
  }
  await waitText(st.bob, 'flood ' + (HISTORY_SIZE + 10), 'Bob sees the latest messages');
  const b = await messages(st.bob);
  const gap = b.findIndex((m) => m.note);
  assert(gap >= 0 && /could not be recovered/.test(b[gap].note), 'no gap mark: ' +
         JSON.stringify(b.slice(-5)));
  assert(b[gap - 1].text === 'back again', 'before the mark: ' + JSON.stringify(b[gap - 1]));
  const after = b.slice(gap + 1).map((m) => m.text);
  assert(after[0] !== 'flood 1' && after[after.length - 1] === 'flood ' + (HISTORY_SIZE + 10),
         'after the mark: ' + after);
  assert(b.filter((m) => m.note).length === 1, 'one mark: ' + JSON.stringify(b));
}

async function casePhone(st) {
  const page = await st.newPage('phone', 360, 740);
  try {
    await enter(page, st.url, 'Dana');
    await waitIn(page, () => document.querySelectorAll('#messages .msg').length > 0, null, 10000,
                 'history at phone width');
    await say(page, 'from a phone, a rather long message that has to wrap inside the narrow ' +
              'column without pushing anything sideways: ' + 'x'.repeat(80));
    await waitText(st.alice, 'from a phone, a rather long message that has to wrap inside the ' +
                   'narrow column without pushing anything sideways: ' + 'x'.repeat(80),
                   'the phone\'s message');
    const over = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
    assert(over <= 0, 'the page scrolls sideways by ' + over + ' px at 360 px');
    const box = await page.$eval('#compose', (el) => el.getBoundingClientRect().toJSON());
    assert(box.right <= 360 && box.bottom <= 740, 'the message box is off screen: ' +
           JSON.stringify(box));
    await shoot(page, 'chat-phone.png');
    // Every control has a name a screen reader can say.
    const unnamed = await page.evaluate(() => {
      const named = (el) => (el.labels && el.labels.length) || el.getAttribute('aria-label') ||
        el.textContent.trim();
      return Array.from(document.querySelectorAll('input, button, ol, ul'))
        .filter((el) => !named(el)).map((el) => el.id || el.tagName);
    });
    assert(unnamed.length === 0, 'controls without a label: ' + unnamed);
    await page.click('#leave');
  } finally {
    await page.close();
  }
}

async function caseDark(st) {
  const bg = () => st.alice.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await st.alice.emulateMedia({ colorScheme: 'dark' });
  const dark = await bg();
  await st.alice.emulateMedia({ colorScheme: 'light' });
  const light = await bg();
  const lum = (rgb) => rgb.match(/\d+/g).slice(0, 3).reduce((a, v) => a + Number(v), 0);
  assert(lum(dark) < lum(light), 'dark scheme is not darker: ' + dark + ' vs ' + light);
}

async function caseStats(st) {
  await waitIn(st.alice, () => Number(document.getElementById('s-conns').dataset.value) >= 2,
               null, 10000, 'the stats panel shows the connections');
  await waitIn(st.alice, () => document.getElementById('s-rate').dataset.value !== '', null,
               10000, 'the stats panel shows messages per second');
  const ops = await st.alice.$$eval('a[href="/ops"]', (l) => l.length);
  assert(ops >= 1, 'no link to /ops');
}

async function shoot(page, name) {
  const dir = process.env.RINGCAST_SCREENSHOT_DIR ||
              process.env.RINGCAST_BUILD_DIR || path.join(SRC, 'build');
  const file = path.resolve(SRC, dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.screenshot({ path: file });
  const size = fs.statSync(file).size;
  assert(size > 5000, 'screenshot of ' + size + ' bytes');
  console.log('   screenshot: ' + path.relative(process.cwd(), file) + ' (' + size + ' bytes)');
}

async function caseNoConsoleErrors(st) {
  assert(st.errors.length === 0, 'console errors:\n  ' + st.errors.join('\n  '));
  console.log('   refused connections during the outages (expected): ' + st.expected);
}

// ------------------------------------------------------------------------------------------

async function main() {
  const r = new Runner(TOTAL_LIMIT_MS);
  const b = await startBroker(['--shards', '2', '--history-size', String(HISTORY_SIZE)]);
  const proxy = await startProxy(b.port);
  let browser = null;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
      args: CHROMIUM_ARGS, timeout: 30000 });
    const st = {
      b, proxy, errors: [], dialogs: [], expected: 0, cutting: false,
      url: 'http://127.0.0.1:' + b.port + '/?room=' + ROOM,
      bobUrl: 'http://127.0.0.1:' + proxy.port + '/?room=' + ROOM,
    };
    // Each person is a browser context of their own (no shared storage), with one page.
    st.newPage = async (who, width, height) => {
      const ctx = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1,
        colorScheme: 'light' });
      const page = await ctx.newPage();
      const note = (text) => {
        // Bob's refused reconnections during an outage are the point of the outage.
        if (who === 'bob' && st.cutting &&
            /WebSocket connection to .* failed|ERR_CONNECTION|ERR_EMPTY_RESPONSE/.test(text)) {
          st.expected++;
          return;
        }
        st.errors.push(who + ': ' + text);
      };
      page.on('console', (m) => { if (m.type() === 'error') note(m.text()); });
      page.on('pageerror', (e) => note(e.message));
      page.on('requestfailed', (q) => note('request failed: ' + q.url()));
      page.on('dialog', (d) => { st.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
      page.on('close', () => ctx.close().catch(() => {}));
      return page;
    };
    st.alice = await st.newPage('alice', 1000, 700);
    st.bob = await st.newPage('bob', 1000, 700);

    await r.run('two people: messages and presence both ways', caseTwoPeople, st);
    await r.run('a message that looks like HTML shows as typed', caseText, st);
    await r.run('a late joiner sees the history and the names; leaving shows', caseLateJoiner, st);
    await r.run('phone width: fits 360 px, every control labelled', casePhone, st);
    await r.run('socket cut: the page reconnects and recovers what it missed', caseRecover, st);
    await r.run('a longer outage than the history: the gap is marked', caseGap, st);
    await r.run('dark scheme when the system asks', caseDark, st);
    await r.run('the stats panel and the link to /ops', caseStats, st);
    await r.run('no console errors (CSP violations included)', caseNoConsoleErrors, st);
  } finally {
    if (browser) await browser.close().catch(() => {});
    await proxy.close();
    const exit = await stopBroker(b);
    if (exit.code !== 0) {
      console.log('FAIL broker exited with ' + JSON.stringify(exit) + ': ' + b.stderr);
      r.failed++;
    }
  }
  r.finish();
}

runMain(main);

// SPDX-License-Identifier: MIT
// Keeps one operations page open in headless Chromium for bench/ops_cost.sh: opens URL, prints
// "open" once the page has drawn its first sample, stays until SIGTERM or SECONDS pass, then
// prints how many /stats requests the page made. playwright-core comes from
// tests/integration/node_modules (NODE_PATH), Chromium from Debian (/usr/bin/chromium).
//   node bench/ops_page.js URL SECONDS
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

async function main() {
  const [url, seconds] = process.argv.slice(2);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ringcast-ops-page-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.RINGCAST_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  let polls = 0;
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('request', (q) => { if (q.url().endsWith('/stats')) polls++; });
  await page.goto(url, { waitUntil: 'load' });
  // A loop of evaluate, not waitForFunction: the page's CSP allows no eval.
  for (let i = 0; !(await page.evaluate(() =>
    document.getElementById('v-connections').dataset.value)); i++) {
    if (i > 100) throw new Error('the page showed no sample in 10 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log('open');
  let done;
  const finished = new Promise((r) => { done = r; });
  process.on('SIGTERM', done);
  setTimeout(done, Number(seconds) * 1000);
  await finished;
  console.log('stats requests: ' + polls);
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});

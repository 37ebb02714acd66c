// Browser test of a job with 100k+ lines of output, against a running bff, in Debian's Chromium.
//
// The job is ingested through the ingest API in gzip batches, as a callback plugin would send it.
// What a person would notice: the page opens, the output is complete, the end and the middle can
// be reached and show the right lines, and search finds a line near the end. Times are printed
// (`# time …`), never asserted: speed belongs in benchmarks.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node big.mjs
//
// BIG_LINES (default 100000) sets the size of the output.

import { randomBytes } from 'node:crypto';
import {
  BASE, DESKTOP, Run, assert, ingest, launchBrowser, linesOf, newPage, noPageErrors, requireEnv, run, shot,
  signIn, step, waitFor,
} from './lib.mjs';

requireEnv('big.mjs');

const WANT_LINES = Number(process.env.BIG_LINES ?? 100_000);
const HOSTS = 200;
// Events per ingest request, gzipped.
const BATCH = 2_000;

async function lineCount(page) {
  return Number((await page.getByTestId('out-lines').innerText()).replace(/[^0-9]/g, ''));
}

async function main() {
  const suffix = randomBytes(4).toString('hex');
  const hosts = Array.from({ length: HOSTS }, (_, i) => `big-${suffix}-${String(i + 1).padStart(3, '0')}`);
  const runner = new Run({ hosts, start: Date.now() - 3_600_000 });
  const events = [...runner.start()];
  // Each task prints 2 lines and 3 per host.
  const tasks = Math.ceil(WANT_LINES / (2 + 3 * HOSTS));
  for (let t = 0; t < tasks; t++) {
    events.push(...runner.task(`Step ${t} of ${suffix}`, { lines: 3, outcome: (h) => (t === tasks - 1 && h === hosts[7] ? 'changed' : 'ok') }));
  }
  events.push(...runner.end());
  const expected = linesOf(events);
  const job = { external_id: `big-${suffix}`, name: `Big ${suffix}`, template: 'fleet-audit', inventory: 'all' };

  let jobId;
  await step(`a job of ${expected.length} lines (${events.length} events) is ingested in gzip batches`, async () => {
    const t0 = Date.now();
    for (let i = 0; i < events.length; i += BATCH) {
      const r = await ingest({ source: 'local', job, events: events.slice(i, i + BATCH) }, { gzip: true });
      jobId = r.job_id;
      assert(r.accepted === Math.min(BATCH, events.length - i), `batch at ${i}: ${JSON.stringify(r)}`);
    }
    console.log(`# time ingest ${events.length} events: ${Date.now() - t0} ms`);
  });

  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    await signIn(context);
    const page = await newPage(context);

    await step('the job page opens and shows the whole output', async () => {
      const t0 = Date.now();
      await page.goto(`${BASE}/jobs/${jobId}`);
      await page.locator('.out .line[data-line="1"]').waitFor({ timeout: 30_000 });
      const first = Date.now() - t0;
      await waitFor('every line loads', async () => (await lineCount(page)) === expected.length || await lineCount(page), 120_000);
      await page.getByTestId('backfill').waitFor({ state: 'detached', timeout: 30_000 });
      const all = Date.now() - t0;
      const inDom = await page.locator('.out .line').count();
      console.log(`# time to first rendered line: ${first} ms; to all ${expected.length} lines: ${all} ms; lines in the DOM: ${inDom}`);
      assert(inDom < 500, `${inDom} lines are in the DOM: the view does not window`);
      assert((await page.locator('.out .line[data-line="1"] .tx').textContent()) === expected[0], 'line 1 is wrong');
    });

    await step('End scrolls to the last line', async () => {
      const out = page.getByTestId('output');
      await out.focus();
      const t0 = Date.now();
      await page.keyboard.press('End');
      const last = page.locator(`.out .line[data-line="${expected.length}"] .tx`);
      await last.waitFor({ timeout: 10_000 });
      console.log(`# time End to the last line rendered: ${Date.now() - t0} ms`);
      assert((await last.textContent()) === expected.at(-1), `the last line shows ${JSON.stringify(await last.textContent())}`);
      assert(await last.isVisible(), 'the last line is not visible');
      await shot(page, 'big-end.png');
    });

    await step('the middle shows the right lines, and scrolling stays smooth', async () => {
      const out = page.getByTestId('output');
      const mid = Math.floor(expected.length / 2);
      await out.evaluate((el, n) => { el.scrollTop = (n - 1) * 20; }, mid);
      const line = page.locator(`.out .line[data-line="${mid}"] .tx`);
      await line.waitFor({ timeout: 10_000 });
      assert((await line.textContent()) === expected[mid - 1], `line ${mid} shows ${JSON.stringify(await line.textContent())}`);
      // The longest pause between frames while the wheel scrolls through the output.
      await out.hover();
      await page.evaluate(() => {
        window.__gaps = [];
        let last = performance.now();
        const tick = (t) => { window.__gaps.push(t - last); last = t; if (window.__gaps.length < 400) requestAnimationFrame(tick); };
        requestAnimationFrame(tick);
      });
      for (let i = 0; i < 40; i++) {
        await page.mouse.wheel(0, 2_000);
        await page.waitForTimeout(16);
      }
      const gaps = await page.evaluate(() => window.__gaps.slice(1));
      gaps.sort((a, b) => a - b);
      const p95 = gaps[Math.floor(gaps.length * 0.95)] ?? 0;
      console.log(`# time frames while wheel-scrolling: median ${gaps[Math.floor(gaps.length / 2)]?.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${gaps.at(-1)?.toFixed(1)} ms (${gaps.length} frames)`);
      const n = Number(await page.locator('.out .line').first().getAttribute('data-line'));
      assert(n > mid, `the wheel did not move the output (first line ${n})`);
    });

    await step('search finds a line near the end of all 100k', async () => {
      const needle = `changed: [${hosts[7]}]`;
      const t0 = Date.now();
      await page.getByTestId('out-search').fill(needle);
      await waitFor('one match', async () => (await page.getByTestId('out-hits').innerText()) === '1 of 1' || await page.getByTestId('out-hits').innerText());
      const current = page.locator('.out mark.cur');
      await current.waitFor();
      console.log(`# time search to the match shown: ${Date.now() - t0} ms`);
      const n = Number(await current.evaluate((m) => m.closest('.line').dataset.line));
      assert(expected[n - 1].includes(needle), `the match is on line ${n}: ${expected[n - 1]}`);
      await shot(page, 'big-search.png');
    });

    await step('the timeline and the hosts of the big job open', async () => {
      const t0 = Date.now();
      await page.getByTestId('tab-timeline').click();
      await page.getByTestId('timeline-task').first().waitFor({ timeout: 15_000 });
      assert((await page.getByTestId('timeline-task').count()) === tasks, 'not every task is on the timeline');
      console.log(`# time timeline of ${tasks} tasks: ${Date.now() - t0} ms`);
      await page.getByTestId('tab-hosts').click();
      await page.getByTestId('hosts-table').waitFor({ timeout: 15_000 });
      assert((await page.getByTestId('host-row').count()) === HOSTS, 'not every host is listed');
    });

    noPageErrors(page);
  } finally {
    await browser.close();
  }
}

await run(main, 480_000);

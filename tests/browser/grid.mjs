// Browser test of the job grid's filters, paging and live rows, against a running bff, in Debian's
// Chromium.
//
// What a person would notice: filters change the URL and the rows, a reload (a bookmark) keeps
// them, jobs that arrive live appear only when they match, paging moves through a long list, a new
// job on top does not move the rows the person is looking at, and running jobs' durations tick.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node grid.mjs

import { randomBytes } from 'node:crypto';
import {
  BASE, DESKTOP, PHONE, LIVE_TIMEOUT_MS, Run, assert, assertContrast, ingest, launchBrowser, newPage, noPageErrors,
  noSidewaysScroll, requireEnv, run, shot, signIn, step, waitFor,
} from './lib.mjs';

requireEnv('grid.mjs');

/// A short run on two hosts; `fail` makes it end failed, `finish` false leaves it running.
async function job(suffix, name, { template, inventory = 'prod', launched_by = 'alice', fail = false, finish = true }) {
  const r = new Run({ hosts: ['h1', 'h2'], start: Date.now() - 30_000 });
  const events = [...r.start(), ...r.task('ping', { outcome: (h) => (fail && h === 'h2' ? 'failed' : 'ok') })];
  if (finish) events.push(...r.end());
  const res = await ingest({ source: 'local', job: { external_id: `${name}-${suffix}`, name: `${name} ${suffix}`, template, inventory, launched_by }, events });
  return res.job_id;
}

async function shownIds(page) {
  return page.getByTestId('job-row').evaluateAll((rows) => rows.map((r) => Number(r.dataset.jobId)));
}

async function rowsAre(page, ids, what) {
  const want = [...ids].sort((a, b) => b - a);
  await waitFor(what, async () => {
    const shown = await shownIds(page);
    return JSON.stringify(shown) === JSON.stringify(want) || shown;
  });
}

async function urlHas(page, key, value) {
  await waitFor(`the URL has ${key}=${value}`, async () => new URL(page.url()).searchParams.get(key) === value || page.url());
}

async function main() {
  const suffix = randomBytes(4).toString('hex');
  const tA = `tmpl-a-${suffix}`;
  const tB = `tmpl-b-${suffix}`;
  const a = await job(suffix, 'Alpha', { template: tA });
  const b = await job(suffix, 'Bravo', { template: tB, launched_by: 'bob', finish: false });
  const c = await job(suffix, 'Charlie', { template: tA, fail: true });

  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    await signIn(context);
    const page = await newPage(context);

    await step('the grid renders', async () => {
      const t0 = Date.now();
      await page.goto(`${BASE}/`);
      await page.getByTestId('job-row').first().waitFor({ timeout: 15_000 });
      console.log(`# time from navigation to the first rendered grid: ${Date.now() - t0} ms`);
      await page.locator('[data-testid="connection"][data-state="live"]').waitFor({ timeout: 15_000 });
    });

    await step('quick search changes the URL and the rows', async () => {
      await page.getByTestId('filter-q').fill(suffix);
      await urlHas(page, 'q', suffix);
      await rowsAre(page, [a, b, c], 'the three jobs of this run are shown');
    });

    await step('a status filter changes the URL and the rows', async () => {
      await page.getByTestId('filter-status-failed').click();
      await urlHas(page, 'status', 'failed');
      await rowsAre(page, [c], 'only the failed job is shown');
      assert((await page.getByTestId('filter-status-failed').getAttribute('aria-pressed')) === 'true', 'the chip is not pressed');
    });

    await step('a reload (a bookmark) keeps the filters', async () => {
      await page.reload();
      await rowsAre(page, [c], 'the reloaded page shows the same rows');
      assert((await page.getByTestId('filter-q').inputValue()) === suffix, 'the search box lost its text');
      assert((await page.getByTestId('filter-status-failed').getAttribute('aria-pressed')) === 'true', 'the chip lost its state');
      await page.locator('[data-testid="connection"][data-state="live"]').waitFor({ timeout: 15_000 });
    });

    let d;
    await step('a job that arrives live appears only if it matches the filters', async () => {
      await page.evaluate(() => { window.__sameGrid = true; });
      const e = await job(suffix, 'Echo', { template: tA, finish: false });
      d = await job(suffix, 'Delta', { template: tA, fail: true });
      await rowsAre(page, [d, c], 'the new failed job appears, the running one does not');
      assert(await page.evaluate(() => window.__sameGrid), 'the page was reloaded');
      void e;
    });

    await step('a template filter changes the URL and the rows', async () => {
      await page.getByTestId('filter-status-failed').click();
      await page.getByText('More filters').click();
      await page.getByTestId('filter-template').fill(tA);
      await urlHas(page, 'template', tA);
      await waitFor('status is gone from the URL', async () => !new URL(page.url()).searchParams.has('status') || page.url());
      await waitFor(`template ${tA} shows its jobs only`, async () => {
        const shown = await shownIds(page);
        return (shown.includes(a) && shown.includes(c) && shown.includes(d) && !shown.includes(b)) || shown;
      });
    });

    await step('a date range changes the URL and the rows', async () => {
      const yesterday = new Date(Date.now() - 86_400_000);
      const day = `${yesterday.getFullYear()}-${String(yesterday.getMonth() + 1).padStart(2, '0')}-${String(yesterday.getDate()).padStart(2, '0')}`;
      await page.getByTestId('filter-to').fill(day);
      await urlHas(page, 'to', day);
      await page.getByTestId('no-jobs').waitFor({ timeout: LIVE_TIMEOUT_MS });
      await page.getByTestId('filter-to').fill('');
      await page.getByTestId('filter-from').fill(day);
      await urlHas(page, 'from', day);
      await page.getByTestId('job-row').first().waitFor({ timeout: LIVE_TIMEOUT_MS });
      await shot(page, 'grid-filtered.png');
      await page.getByTestId('filter-clear').click();
      await waitFor('the URL has no filters', async () => new URL(page.url()).search === '' || page.url());
    });

    await step('paging moves through a long list, with the page in the URL', async () => {
      const many = randomBytes(4).toString('hex');
      const ids = [];
      for (let i = 0; i < 55; i++) {
        const r = new Run({ hosts: ['h1'] });
        ids.push((await ingest({ source: 'local', job: { external_id: `page-${many}-${i}`, name: `Page ${many} ${i}` }, events: r.start() })).job_id);
      }
      await page.getByTestId('filter-q').fill(many);
      await waitFor('55 jobs are counted', async () => (await page.getByTestId('page-info').innerText().catch(() => '')).includes('1–50 of 55') || await page.getByTestId('page-info').innerText().catch(() => ''));
      assert((await page.getByTestId('job-row').count()) === 50, 'the first page does not hold 50 rows');
      await page.getByTestId('page-next').click();
      await urlHas(page, 'page', '2');
      await rowsAre(page, ids.slice(0, 5), 'the second page shows the 5 oldest');
      await page.getByTestId('page-prev').click();
      await waitFor('page 1 again', async () => !new URL(page.url()).searchParams.has('page') || page.url());
      await rowsAre(page, ids.slice(5), 'the first page shows the 50 newest');
    });

    await step('a new job on top does not move the rows in view', async () => {
      await page.setViewportSize({ width: DESKTOP.width, height: 500 });
      const row = page.locator('[data-testid="job-row"]').nth(20);
      await row.scrollIntoViewIfNeeded();
      await page.evaluate(() => window.scrollBy(0, 100));
      const id = await row.getAttribute('data-job-id');
      const target = page.locator(`[data-testid="job-row"][data-job-id="${id}"]`);
      const before = (await target.boundingBox()).y;
      const scrollBefore = await page.evaluate(() => window.scrollY);
      // A new job that matches this page's search, so it belongs on top.
      const q = new URL(page.url()).searchParams.get('q');
      const r2 = new Run({ hosts: ['h1'] });
      const newer = (await ingest({ source: 'local', job: { external_id: `late2-${suffix}`, name: `Page ${q} late` }, events: r2.start() })).job_id;
      await page.locator(`[data-testid="job-row"][data-job-id="${newer}"]`).waitFor({ state: 'attached', timeout: LIVE_TIMEOUT_MS });
      await page.waitForTimeout(200);
      const after = (await target.boundingBox()).y;
      const scrollAfter = await page.evaluate(() => window.scrollY);
      assert(Math.abs(after - before) < 3, `the row moved from ${before} to ${after} on screen (scroll ${scrollBefore} → ${scrollAfter})`);
      await page.setViewportSize(DESKTOP);
    });

    await step('a running job\'s duration ticks', async () => {
      await page.getByTestId('filter-clear').click();
      await page.getByTestId('filter-q').fill(suffix);
      const row = page.locator(`[data-testid="job-row"][data-job-id="${b}"]`);
      await row.waitFor({ timeout: LIVE_TIMEOUT_MS });
      const first = await row.getByTestId('job-duration').innerText();
      await waitFor('the duration changes', async () => (await row.getByTestId('job-duration').innerText()) !== first || first, 5_000);
      assert((await row.getByTestId('job-progress').count()) === 1, 'a running job shows no progress');
    });

    await step('grid text passes WCAG AA contrast, light and dark', async () => {
      await page.getByTestId('filter-status-running').click();
      await page.getByTestId('job-progress').first().waitFor();
      await assertContrast(page, 'the grid');
      await page.getByTestId('filter-status-running').click();
    });

    await step('grid screenshots at desktop and phone widths, light and dark', async () => {
      await shot(page, 'grid-desktop.png');
      await page.emulateMedia({ colorScheme: 'dark' });
      await shot(page, 'grid-desktop-dark.png');
      await page.setViewportSize(PHONE);
      await page.getByText('More filters').click();
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'grid-phone-dark.png');
      await page.emulateMedia({ colorScheme: 'light' });
      await shot(page, 'grid-phone.png');
    });

    await step('a row opens its job page, and Back returns to the filtered grid', async () => {
      await page.setViewportSize(DESKTOP);
      await page.locator(`[data-testid="job-row"][data-job-id="${c}"]`).getByTestId('job-name').click();
      await page.getByTestId('job-page').waitFor();
      assert(new URL(page.url()).pathname === `/jobs/${c}`, `the address is ${page.url()}`);
      await page.goBack();
      await page.getByTestId('jobs-table').waitFor();
      assert(new URL(page.url()).searchParams.get('q') === suffix, 'Back lost the filters');
    });

    noPageErrors(page);
  } finally {
    await browser.close();
  }
}

await run(main, 240_000);

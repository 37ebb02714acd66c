// Browser smoke test of Playdeck's page, against a running bff, in Debian's Chromium.
//
// What a person would notice: a wrong key is refused with a message, the right one signs in, a job
// sent to the ingest endpoint appears in the grid by itself and turns "successful" in place, and
// the page fits a phone (no sideways scrolling), with and without ?embed=1.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node smoke.mjs
//
// SCREENSHOT_DIR (default tests/browser/screenshots) receives the screenshots. Exits non-zero with
// the failing step's message on any failure.

import { randomBytes } from 'node:crypto';

import {
  ADMIN_KEY,
  BASE,
  DESKTOP,
  LIVE_TIMEOUT_MS,
  PHONE,
  assert,
  ingest,
  launchBrowser,
  noSidewaysScroll,
  requireEnv,
  run,
  shot,
  step,
} from './lib.mjs';

// The whole run; a hung browser must not hang CI.
const RUN_TIMEOUT_MS = 180_000;

requireEnv('smoke.mjs');

async function main() {
  const browser = await launchBrowser();
  // A panic in the wasm app shows only in the console; it must fail the run, not pass silently.
  const pageErrors = [];
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && /panicked|RuntimeError|unreachable/i.test(m.text())) {
        pageErrors.push(m.text());
      }
    });

    const suffix = randomBytes(4).toString('hex');
    const jobName = `Smoke ${suffix}`;

    await step('the page offers a sign-in form', async () => {
      await page.goto(`${BASE}/`);
      await page.getByTestId('signin-key').waitFor({ timeout: 15_000 });
    });

    await step('a wrong key is refused with a visible message', async () => {
      await page.getByTestId('signin-key').fill(`wrong-${suffix}`);
      await page.getByTestId('signin-submit').click();
      const error = page.getByTestId('signin-key-error');
      await error.waitFor({ state: 'visible', timeout: 10_000 });
      const text = (await error.innerText()).trim();
      assert(text.length > 0, 'the error message is empty');
      console.log(`# error shown: ${text}`);
      await shot(page, 'sign-in-error.png');
    });

    await step('the right key signs in and the live feed connects', async () => {
      await page.getByTestId('signin-key').fill(ADMIN_KEY);
      await page.getByTestId('signin-submit').click();
      await page.getByTestId('sign-out').waitFor({ timeout: 10_000 });
      await page.locator('[data-testid="connection"][data-state="live"]').waitFor({ timeout: 15_000 });
      const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
      assert(!stored.includes(ADMIN_KEY), 'the API key was left in web storage');
    });

    // Survives only if the page is never reloaded.
    await page.evaluate(() => { window.__playdeckSmoke = 'same page'; });

    const job = { external_id: `smoke-${suffix}`, name: jobName };
    let jobId;
    let row;
    await step('a job sent to ingest appears as "running" without a reload', async () => {
      const result = await ingest({
        source: 'local',
        job,
        events: [{ counter: 1, event: 'playbook_on_start', created: new Date().toISOString(), stdout: '', event_data: {} }],
      });
      jobId = result.job_id;
      assert(Number.isInteger(jobId), `ingest answered no job_id: ${JSON.stringify(result)}`);
      row = page.locator(`[data-testid="job-row"][data-job-id="${jobId}"]`);
      await row.waitFor({ timeout: LIVE_TIMEOUT_MS });
      const name = (await row.getByTestId('job-name').innerText()).trim();
      assert(name === jobName, `row ${jobId} shows name "${name}", expected "${jobName}"`);
      await waitForStatus(row, 'running');
    });

    await step('the row turns "successful" in place when the run ends', async () => {
      const before = await row.elementHandle();
      await ingest({
        source: 'local',
        job,
        events: [{
          counter: 2,
          event: 'playbook_on_stats',
          created: new Date().toISOString(),
          event_data: { ok: { h1: 1 }, changed: {}, failures: {}, dark: {}, skipped: {} },
        }],
      });
      await waitForStatus(row, 'successful');
      assert(await before.evaluate((el) => el.isConnected), 'the row was replaced rather than updated');
      assert(
        (await page.evaluate(() => window.__playdeckSmoke)) === 'same page',
        'the page was reloaded',
      );
      assert(
        (await page.locator(`[data-testid="job-row"][data-job-id="${jobId}"]`).count()) === 1,
        'the job is shown more than once',
      );
    });

    await step('desktop screenshots (light and dark)', async () => {
      await shot(page, 'desktop.png');
      await page.emulateMedia({ colorScheme: 'dark' });
      await shot(page, 'desktop-dark.png');
      await page.emulateMedia({ colorScheme: 'light' });
    });

    await step('at 390px wide the grid fits without sideways scrolling', async () => {
      await page.setViewportSize(PHONE);
      await row.waitFor();
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'phone.png');
    });

    await step('?embed=1 drops the header and still fits a phone', async () => {
      await page.goto(`${BASE}/?embed=1`);
      await page.locator(`[data-testid="job-row"][data-job-id="${jobId}"]`).waitFor({ timeout: 15_000 });
      assert((await page.getByTestId('sign-out').count()) === 0, 'the header is shown in embed mode');
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'embed-phone.png');
      await page.setViewportSize(DESKTOP);
      await shot(page, 'embed-desktop.png');
    });

    await step('a session ended elsewhere signs out any page at its next call, the same way', async () => {
      for (const [path, ready, act] of [
        ['/kb', 'kb-search', (p) => p.getByTestId('kb-search').fill(`after-${suffix}`)],
        ['/dashboard', 'window-switch', (p) => p.getByTestId('window-7d').click()],
      ]) {
        await page.goto(`${BASE}${path}`);
        await page.getByTestId(ready).waitFor({ timeout: 15_000 });
        // Another tab signs out: the server forgets the session and this page does not know yet.
        const status = await page.evaluate(async () =>
          (await fetch('/api/v1/session', { method: 'DELETE', headers: { 'X-Playdeck-Csrf': '1' } })).status);
        assert(status === 204, `signing out elsewhere answered ${status}`);
        await act(page);
        await page.getByTestId('signin-key').waitFor({ timeout: 10_000 });
        assert((await page.getByTestId('sign-out').count()) === 0, `${path} still shows the signed-in header`);
        await page.getByTestId('signin-key').fill(ADMIN_KEY);
        await page.getByTestId('signin-submit').click();
        await page.getByTestId('sign-out').waitFor({ timeout: 10_000 });
      }
    });

    await step('sign out returns to the form, and a reload stays signed out', async () => {
      await page.goto(`${BASE}/`);
      await page.getByTestId('sign-out').click();
      await page.getByTestId('signin-key').waitFor({ timeout: 10_000 });
      await page.reload();
      await page.getByTestId('signin-key').waitFor({ timeout: 15_000 });
      assert((await page.getByTestId('jobs-table').count()) === 0, 'the job grid is shown after signing out');
    });

    assert(pageErrors.length === 0, `the page reported errors:\n${pageErrors.join('\n')}`);
  } finally {
    await browser.close();
  }
}

async function waitForStatus(row, status) {
  const badge = row.getByTestId('job-status');
  const deadline = Date.now() + LIVE_TIMEOUT_MS;
  let shown = '';
  while (Date.now() < deadline) {
    shown = (await badge.innerText()).trim();
    if (shown === status) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`status shows "${shown}" after ${LIVE_TIMEOUT_MS / 1000}s, expected "${status}"`);
}

await run(main, RUN_TIMEOUT_MS);

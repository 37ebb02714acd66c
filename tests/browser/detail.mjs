// Browser test of the job page, against a running bff, in Debian's Chromium.
//
// What a person would notice: the output streams in as events are ingested and follows the end;
// scrolling up stops following and the Follow button resumes it; after the live socket drops and
// comes back (events ingested meanwhile, out of order) every line is there exactly once, in
// Ansible's order; a reload of the finished job shows all of it; a line opens its event; search
// steps through matches; hosts drill down to their results; the timeline opens per host; the
// status history, embed mode and a phone's width.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node detail.mjs

import { randomBytes } from 'node:crypto';
import {
  BASE, DESKTOP, PHONE, LIVE_TIMEOUT_MS, Run, assert, assertContrast, ingest, launchBrowser, linesOf, newPage, noPageErrors,
  noSidewaysScroll, requireEnv, run, shot, signIn, step, waitFor,
} from './lib.mjs';

requireEnv('detail.mjs');

/// Every line of the output view, read by scrolling it from top to bottom (only the lines in view
/// are in the DOM). Fails on a line number shown twice with different text.
export async function readAllLines(page) {
  const out = page.getByTestId('output');
  const lines = new Map();
  await out.evaluate((el) => { el.scrollTop = 0; });
  // The view draws the rows of a new position on its next frame, later on a busy machine: the
  // reading starts once line 1 is there.
  const rendered = () => out.evaluate((el) => [...el.querySelectorAll('.line')].map((l) => Number(l.dataset.line)));
  await waitFor('the top rows are drawn', async () => (await rendered()).includes(1) || await rendered(), 5_000);
  for (;;) {
    const seen = await out.evaluate((el) => [...el.querySelectorAll('.line')].map((l) => [
      Number(l.dataset.line), l.querySelector('.tx').textContent,
    ]));
    for (const [n, text] of seen) {
      if (lines.has(n) && lines.get(n) !== text) throw new Error(`line ${n} read as ${JSON.stringify(lines.get(n))} and ${JSON.stringify(text)}`);
      lines.set(n, text);
    }
    const done = await out.evaluate((el) => {
      if (el.scrollTop + el.clientHeight >= el.scrollHeight - 1) return true;
      el.scrollTop += el.clientHeight;
      return false;
    });
    if (done) break;
    await page.waitForTimeout(50);
  }
  const numbers = [...lines.keys()].sort((a, b) => a - b);
  numbers.forEach((n, i) => assert(n === i + 1, `line ${i + 1} is missing from the view`));
  return numbers.map((n) => lines.get(n));
}

async function lineCount(page) {
  const text = await page.getByTestId('out-lines').innerText();
  return Number(text.replace(/[^0-9]/g, ''));
}

async function atBottom(page) {
  return page.getByTestId('output').evaluate((el) => el.scrollTop + el.clientHeight >= el.scrollHeight - 2);
}

function sameLines(shown, expected, what) {
  if (shown.length !== expected.length) {
    throw new Error(`${what}: ${shown.length} lines shown, ${expected.length} expected`);
  }
  const i = shown.findIndex((l, k) => l !== expected[k]);
  assert(i < 0, `${what}: line ${i + 1} is ${JSON.stringify(shown[i])}, expected ${JSON.stringify(expected[i])}`);
}

async function main() {
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    await signIn(context);
    const page = await newPage(context);

    // The live socket goes through this route, so the test can cut it like a network would.
    let down = false;
    const sockets = new Set();
    await page.routeWebSocket(/\/api\/v1\/ws/, (ws) => {
      if (down) {
        ws.close({ code: 1011, reason: 'test: network down' });
        return;
      }
      const server = ws.connectToServer();
      const pair = { ws, server };
      sockets.add(pair);
      ws.onClose(() => sockets.delete(pair));
    });

    const suffix = randomBytes(4).toString('hex');
    const hosts = Array.from({ length: 12 }, (_, i) => `node-${suffix}-${String(i + 1).padStart(2, '0')}`);
    const failing = hosts[4];
    const runner = new Run({ hosts });
    const job = { external_id: `detail-${suffix}`, name: `Detail ${suffix}`, template: 'patch', inventory: 'prod', launched_by: 'carol' };
    const all = [];
    const send = async (events) => {
      all.push(...events);
      return ingest({ source: 'local', job, events });
    };

    let jobId;
    await step('a running job opens with its output, following the end', async () => {
      const first = [...runner.start()];
      for (let t = 0; t < 8; t++) first.push(...runner.task(`Prepare step ${t}`, { lines: t % 2 ? 3 : 1 }));
      jobId = (await send(first)).job_id;
      await page.goto(`${BASE}/jobs/${jobId}`);
      await page.getByTestId('output').waitFor({ timeout: 15_000 });
      await page.locator('[data-testid="connection"][data-state="live"]').waitFor({ timeout: 15_000 });
      const expected = linesOf(all);
      await waitFor('all lines are shown', async () => (await lineCount(page)) === expected.length || await lineCount(page));
      await page.locator('[data-testid="follow"][data-state="on"]').waitFor();
      await waitFor('the view is at the end', () => atBottom(page));
      const last = page.locator(`.out .line[data-line="${expected.length}"] .tx`);
      assert((await last.textContent()) === expected.at(-1), 'the last line shown is not the last line');
    });

    await step('new events stream in and the view follows them', async () => {
      await page.evaluate(() => { window.__sameDetailPage = true; });
      await send(runner.task('Install patches', { outcome: (h) => (h === hosts[2] ? 'changed' : 'ok'), lines: 4 }));
      const expected = linesOf(all);
      await waitFor('the new lines arrive', async () => (await lineCount(page)) === expected.length || await lineCount(page));
      await waitFor('the view follows to the end', () => atBottom(page));
      await page.locator(`.out .line[data-line="${expected.length}"]`).waitFor();
      assert(await page.evaluate(() => window.__sameDetailPage), 'the page was reloaded');
    });

    await step('scrolling up stops following; Follow resumes it', async () => {
      const out = page.getByTestId('output');
      await out.hover();
      await page.mouse.wheel(0, -600);
      await page.locator('[data-testid="follow"][data-state="off"]').waitFor({ timeout: 5_000 });
      const top = await out.evaluate((el) => el.scrollTop);
      await send(runner.task('Check disk', { outcome: (h) => (h === failing ? 'failed' : 'ok') }));
      const expected = linesOf(all);
      await waitFor('the new lines arrive', async () => (await lineCount(page)) === expected.length || await lineCount(page));
      await page.waitForTimeout(300);
      const after = await out.evaluate((el) => el.scrollTop);
      assert(Math.abs(after - top) < 2, `the view moved from ${top} to ${after} while not following`);
      const label = await page.getByTestId('follow').innerText();
      assert(/new/.test(label), `the Follow button does not say how many lines are new: ${label}`);
      await page.getByTestId('follow').click();
      await page.locator('[data-testid="follow"][data-state="on"]').waitFor();
      await waitFor('the view is back at the end', () => atBottom(page));
    });

    await step('after the socket drops and comes back, every line is there once', async () => {
      down = true;
      for (const { ws, server } of [...sockets]) {
        await ws.close({ code: 1006, reason: 'test: dropped' }).catch(() => {});
        await server.close().catch(() => {});
      }
      await page.locator('[data-testid="connection"][data-state="reconnecting"]').waitFor({ timeout: 5_000 });
      // The browser loses its network too: the badge says so rather than "reconnecting".
      await context.setOffline(true);
      await page.locator('[data-testid="connection"][data-state="offline"]').waitFor({ timeout: 10_000 });
      // Ingested while the page is cut off, the later half first (AWX delivers out of order too).
      const a = runner.task('Reboot if needed', { outcome: (h) => (hosts.indexOf(h) % 3 ? 'skipped' : 'changed'), lines: 2 });
      const b = runner.task('Verify services', { lines: 3 });
      await send(b);
      await send(a);
      await page.waitForTimeout(500);
      await context.setOffline(false);
      down = false;
      await page.locator('[data-testid="connection"][data-state="live"]').waitFor({ timeout: 20_000 });
      const expected = linesOf(all);
      await waitFor('the missed lines arrive', async () => (await lineCount(page)) === expected.length || await lineCount(page));
      sameLines(await readAllLines(page), expected, 'after the reconnect');
      assert(await page.evaluate(() => window.__sameDetailPage), 'the page was reloaded');
    });

    await step('the end of the run turns the header to its final status live', async () => {
      await send(runner.end());
      await waitFor('the status turns failed', async () => (await page.getByTestId('job-page').getAttribute('data-status')) === 'failed' || 'still ' + await page.getByTestId('job-page').getAttribute('data-status'));
      const failed = await page.getByTestId('count-failed').innerText();
      assert(failed.startsWith('1'), `the Failed counter shows ${failed}`);
      assert((await page.getByTestId('count-hosts').innerText()).startsWith(String(hosts.length)), 'the Hosts counter is wrong');
      await page.getByTestId('host-bar').waitFor();
      await shot(page, 'detail-desktop.png');
    });

    await step('a reload of the finished job shows all of its output', async () => {
      await page.reload();
      await page.getByTestId('output').waitFor({ timeout: 15_000 });
      const expected = linesOf(all);
      await waitFor('all lines load', async () => (await lineCount(page)) === expected.length || await lineCount(page));
      assert((await page.getByTestId('follow').count()) === 0, 'a finished job offers to follow');
      sameLines(await readAllLines(page), expected, 'after a reload');
    });

    await step('search steps through matches with next and previous', async () => {
      const needle = `FAILED`;
      const expectedHits = linesOf(all).reduce((n, l) => n + (l.toLowerCase().split(needle.toLowerCase()).length - 1), 0);
      await page.getByTestId('out-search').fill(needle.toLowerCase());
      await waitFor('matches are counted', async () => (await page.getByTestId('out-hits').innerText()) === `1 of ${expectedHits}` || await page.getByTestId('out-hits').innerText());
      await page.getByTestId('out-search').press('Enter');
      const hits = await page.getByTestId('out-hits').innerText();
      assert(hits === `${Math.min(2, expectedHits)} of ${expectedHits}`, `after Enter: ${hits}`);
      await page.getByTestId('out-prev').click();
      assert((await page.getByTestId('out-hits').innerText()) === `1 of ${expectedHits}`, 'Previous did not go back');
      const current = page.locator('.out mark.cur');
      await current.waitFor();
      assert((await current.textContent()).toLowerCase() === needle.toLowerCase(), 'the current match is not marked');
      const line = await current.evaluate((m) => m.closest('.line').querySelector('.tx').textContent);
      assert(line.includes(failing), `the first match is on ${JSON.stringify(line)}`);
      await assertContrast(page, 'the output with search matches');
      // The keyboard's way to the event of a line: the match's "Open event" button.
      await page.getByTestId('out-search').focus();
      await page.keyboard.press('Tab');
      await page.keyboard.press('Tab');
      await page.keyboard.press('Tab');
      assert(await page.getByTestId('out-open').evaluate((b) => b === document.activeElement), 'Tab does not reach "Open event"');
      await page.keyboard.press('Enter');
      await page.getByTestId('event-panel').getByTestId('event-json').waitFor({ timeout: 5_000 });
      await page.getByTestId('event-close').click();
    });

    await step('a line number opens the event of that line', async () => {
      const lineNo = await page.locator('.out mark.cur').evaluate((m) => m.closest('.line').dataset.line);
      await page.locator(`.out .line[data-line="${lineNo}"] .ln`).click();
      assert(new URL(page.url()).searchParams.get('line') === lineNo, `the URL does not name line ${lineNo}`);
      const panel = page.getByTestId('event-panel');
      await panel.waitFor();
      await panel.getByTestId('event-json').waitFor({ timeout: 5_000 });
      const json = await panel.getByTestId('event-json').innerText();
      assert(json.includes('non-zero return code'), `the result JSON is not shown: ${json.slice(0, 200)}`);
      assert((await panel.getByTestId('event-stderr').innerText()).includes('permission denied'), 'stderr is not shown');
      const body = await panel.innerText();
      assert(body.includes(failing) && body.includes('Check disk') && body.includes('ansible.builtin.command'), 'host, task or module missing');
      await shot(page, 'detail-event.png');
      await assertContrast(page, 'the event panel and the selected line');
      // The link is shareable: opening it selects the line and its event again.
      await page.goto(`${BASE}/jobs/${jobId}?line=${lineNo}`);
      await page.getByTestId('event-panel').waitFor({ timeout: 15_000 });
      await page.locator(`.out .line.sel[data-line="${lineNo}"]`).waitFor({ timeout: 10_000 });
      await page.getByTestId('event-close').click();
      await page.getByTestId('event-panel').waitFor({ state: 'detached' });
    });

    await step('hosts list every host and drill down into one host\'s results', async () => {
      await page.getByTestId('tab-hosts').click();
      await page.getByTestId('hosts-table').waitFor();
      assert((await page.getByTestId('host-row').count()) === hosts.length, 'not every host is listed');
      const row = page.locator(`[data-testid="host-row"][data-host="${failing}"]`);
      assert((await row.innerText()).includes('failed'), 'the failing host is not marked failed');
      await row.getByRole('button').click();
      assert(new URL(page.url()).searchParams.get('host') === failing, 'the host is not in the URL');
      await page.getByTestId('host-event').first().waitFor();
      const results = await page.getByTestId('host-event').count();
      assert(results === 12, `the host shows ${results} results, expected 12 tasks`);
      const failedResult = page.locator('[data-testid="host-event"]', { hasText: 'Check disk' });
      await failedResult.getByRole('button').click();
      await failedResult.getByTestId('event-stderr').waitFor();
      await shot(page, 'detail-host.png');
      await assertContrast(page, 'a host\'s results');
      await page.getByTestId('host-back').click();
      await page.getByTestId('hosts-table').waitFor();
    });

    await step('the timeline draws every task and opens one per host', async () => {
      await page.getByTestId('tab-timeline').click();
      await page.getByTestId('timeline').waitFor();
      assert((await page.getByTestId('timeline-task').count()) === 12, 'not every task is on the timeline');
      await page.getByTestId('timeline-task').first().getByRole('button').click();
      await waitFor('host bars appear', async () => (await page.getByTestId('timeline-host').count()) === hosts.length || await page.getByTestId('timeline-host').count());
      await shot(page, 'detail-timeline.png');
      await assertContrast(page, 'the timeline');
    });

    await step('the status history lists the changes', async () => {
      await page.getByTestId('tab-history').click();
      const history = page.getByTestId('history');
      await history.waitFor();
      const text = await history.innerText();
      assert(text.includes('running') && text.includes('failed'), `history: ${text}`);
    });

    await step('at 390px wide the job page fits without sideways scrolling', async () => {
      await page.setViewportSize(PHONE);
      for (const tab of ['output', 'hosts', 'timeline', 'history']) {
        await page.getByTestId(`tab-${tab}`).click();
        await page.waitForTimeout(200);
        await noSidewaysScroll(page, PHONE.width);
        if (tab === 'output' || tab === 'timeline') await shot(page, `detail-phone-${tab}.png`);
      }
      await page.emulateMedia({ colorScheme: 'dark' });
      await page.getByTestId('tab-output').click();
      await shot(page, 'detail-phone-dark.png');
      await page.emulateMedia({ colorScheme: 'light' });
    });

    await step('?embed=1 drops the chrome on the job page, which may sit in a frame', async () => {
      const response = await page.request.get(`${BASE}/jobs/${jobId}?embed=1`);
      const csp = response.headers()['content-security-policy'] ?? '';
      assert(/frame-ancestors /.test(csp), `no frame-ancestors in the CSP: ${csp}`);
      assert(!response.headers()['x-frame-options'], 'X-Frame-Options forbids every frame');
      await page.goto(`${BASE}/jobs/${jobId}?embed=1`);
      await page.getByTestId('output').waitFor({ timeout: 15_000 });
      assert((await page.locator('.topbar').count()) === 0, 'the header is shown in embed mode');
      await noSidewaysScroll(page, PHONE.width);
      // Moving inside the frame keeps it embedded.
      await page.getByTestId('tab-hosts').click();
      assert(new URL(page.url()).searchParams.get('embed') === '1', 'a tab lost ?embed=1');
      await shot(page, 'detail-embed-phone.png');
      await page.setViewportSize(DESKTOP);
    });

    noPageErrors(page);
  } finally {
    await browser.close();
  }
}

await run(main, 240_000);
void LIVE_TIMEOUT_MS;

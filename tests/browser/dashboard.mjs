// Browser test of the dashboard (`/dashboard`), against a running bff, in Debian's Chromium.
//
// Jobs of one template are ingested with known outcomes and durations (three successful of 10, 20
// and 30 s, one failed of 40 s whose error the seeded "No space left on device" entry explains,
// one running); the template's row shows the hand-computed figures, the cards show what
// `GET /api/v1/stats` says, the SVG trend is drawn with a text alternative, the running job is
// linked, and the failing template names its most common known error. The window switch, a
// phone's width and both colour schemes.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node dashboard.mjs

import { randomBytes } from 'node:crypto';
import {
  BASE, DESKTOP, PHONE, Run, api, assert, assertContrast, ingest, launchBrowser, newPage, noPageErrors, noSidewaysScroll,
  requireEnv, run, shot, signIn, step, waitFor,
} from './lib.mjs';

requireEnv('dashboard.mjs');

const pct = (r) => (r == null ? '—' : `${Math.round(r * 100)}%`);
const secs = (s) => (s == null ? '—' : s < 1 ? `${Math.round(s * 1000)}ms` : s < 60 ? `${s.toFixed(1)}s` : null);

async function main() {
  const suffix = randomBytes(4).toString('hex');
  const template = `Dash ${suffix}`;
  const now = Date.now();
  const jobs = [
    { status: 'successful', secs: 10 },
    { status: 'successful', secs: 20 },
    { status: 'successful', secs: 30 },
    { status: 'failed', secs: 40 },
    { status: 'running', secs: null },
  ];
  // A team's many templates and running jobs, before the template's own (so its running job is
  // the newest): the dashboard lists ten of each and offers the rest.
  for (let i = 0; i < 11; i += 1) {
    const r = new Run({ hosts: ['web-01'], start: now - 300_000 });
    const job = { external_id: `dash-many-${suffix}-${i}`, name: `Many ${suffix} ${i}`, template: `Many ${suffix} ${i}`, status: 'running', started: new Date(now - 300_000).toISOString() };
    await ingest({ source: 'local', job, events: [...r.start()] });
  }
  const ids = [];
  for (const [i, j] of jobs.entries()) {
    const started = new Date(now - 600_000 + i * 60_000);
    const r = new Run({ hosts: ['web-01'], start: started.getTime() });
    let events = [...r.start()];
    if (j.status === 'failed') {
      events.push(...r.task('Write the report', { outcome: () => 'failed' }));
      for (const e of events) {
        if (e.event === 'runner_on_failed') e.event_data.res.msg = 'write failed: No space left on device';
      }
    } else {
      events.push(...r.task('Write the report'));
    }
    if (j.status !== 'running') events.push(...r.end());
    const job = { external_id: `dash-${suffix}-${i}`, name: `${template} run ${i}`, template, status: j.status, started: started.toISOString() };
    if (j.secs != null) job.finished = new Date(started.getTime() + j.secs * 1000).toISOString();
    ids.push((await ingest({ source: 'local', job, events })).job_id);
  }
  const row = async () => (await api('/api/v1/stats?window=24h')).templates.find((t) => t.template === template);
  await waitFor('the stats count the ingested jobs', async () => {
    const t = await row();
    return (t?.jobs === 5 && t?.top_failure != null) || t;
  });

  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    await signIn(context);
    const page = await newPage(context);

    await step('the template row shows the hand-computed figures', async () => {
      const t = await row();
      assert(t.jobs === 5 && t.successful === 3 && t.failed === 1, `API: ${JSON.stringify(t)}`);
      assert(Math.abs(t.success_rate - 0.75) < 1e-9, `success rate ${t.success_rate}, expected 0.75`);
      assert(t.durations.median === 25, `median ${t.durations.median}, expected 25`);
      assert(Math.abs(t.durations.p95 - 38.5) < 1e-9, `p95 ${t.durations.p95}, expected 38.5`);
      await page.goto(`${BASE}/dashboard`);
      await page.getByTestId('stats').waitFor({ timeout: 15_000 });
      const cells = await page.locator(`[data-testid="templates"] tr[data-template="${template}"] > *`).allInnerTexts();
      assert(JSON.stringify(cells) === JSON.stringify([template, '5', '75%', '25.0s', '38.5s', 'No space left on device']),
        `the row shows ${JSON.stringify(cells)}`);
    });

    await step('the cards and statuses show what the stats API says', async () => {
      const s = await api('/api/v1/stats?window=24h');
      const card = async (k) => (await page.getByTestId(`card-${k}`).locator('.value').innerText()).trim();
      assert(await card('jobs') === String(s.jobs), `jobs card ${await card('jobs')}, API ${s.jobs}`);
      assert(await card('success') === pct(s.success_rate), `success card ${await card('success')}, API ${s.success_rate}`);
      for (const [k, v] of [['median', s.durations.median], ['p95', s.durations.p95]]) {
        const want = secs(v);
        if (want) assert(await card(k) === want, `${k} card ${await card(k)}, API ${v}`);
      }
      const byStatus = await page.getByTestId('by-status').innerText();
      for (const [st, n] of Object.entries(s.by_status).filter(([, n]) => n > 0)) {
        assert(byStatus.includes(`${st} ${n}`), `"${st} ${n}" is not in ${JSON.stringify(byStatus)}`);
      }
    });

    await step('the trend is an SVG drawn by the page, with a text alternative', async () => {
      const svg = page.getByTestId('trend-svg');
      await svg.waitFor();
      const s = await api('/api/v1/stats?window=24h');
      assert(await svg.locator('g').count() === s.trend.length, 'not one bar group per bucket');
      assert(await svg.locator('rect.tr-successful').count() > 0 && await svg.locator('rect.tr-failed').count() > 0, 'no stacked bars');
      assert(await svg.locator('text.axis').count() >= 3, 'no axis labels');
      const desc = await svg.locator('desc').textContent();
      assert(desc.includes(`${s.trend.reduce((a, p) => a + p.successful + p.failed + p.other, 0)} in all`), `desc: ${desc}`);
      assert(await page.getByTestId('trend-table').locator('tbody tr').count() > 0, 'the table alternative is empty');
    });

    await step('the running job is linked and the failing template names its known error', async () => {
      const link = page.getByTestId('running').locator(`a[href="/jobs/${ids[4]}"]`);
      assert(await link.count() === 1, 'the running job is not linked');
      const failing = await page.getByTestId('failing').innerText();
      assert(failing.includes(template) && failing.includes('No space left on device'), `failing: ${failing}`);
      await shot(page, 'dashboard-1280.png');
      await page.emulateMedia({ colorScheme: 'dark' });
      await shot(page, 'dashboard-dark-1280.png');
      await assertContrast(page, 'the dashboard');
      await page.setViewportSize(PHONE);
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'dashboard-390.png');
      await page.setViewportSize(DESKTOP);
    });

    await step('ten templates and ten running jobs are listed, and the rest a click away', async () => {
      const s = await api('/api/v1/stats?window=24h');
      assert(s.templates.length > 10 && s.by_status.running > 10, `not enough to cap: ${s.templates.length} templates, ${s.by_status.running} running`);
      const rows = page.locator('[data-testid="templates"] tbody tr');
      assert(await rows.count() === 10, `${await rows.count()} template rows shown`);
      assert(await page.getByTestId('running').locator('li').count() === 10, 'not ten running jobs listed');
      const all = page.getByTestId('running-all');
      const words = await all.innerText();
      assert(words === `and ${s.by_status.running - 10} more: all ${s.by_status.running} running jobs in the grid`, `the rest: ${words}`);
      assert(await all.getAttribute('href') === '/?status=running', `links to ${await all.getAttribute('href')}`);
      const more = page.getByTestId('templates-all');
      assert(await more.innerText() === `Show all ${s.templates.length} templates`, await more.innerText());
      await more.click();
      await waitFor('every template listed', async () => (await rows.count()) === s.templates.length || (await rows.count()));
      assert(await more.count() === 0, 'the button is gone once all are shown');
      await all.click();
      await page.waitForURL((u) => u.pathname === '/' && u.searchParams.get('status') === 'running');
      await waitFor('the grid lists running jobs only', async () => {
        const statuses = await page.locator('[data-testid="job-row"] [data-testid="job-status"]').allInnerTexts();
        return (statuses.length > 0 && statuses.every((t) => t === 'running')) || statuses.join(',');
      });
      await page.goto(`${BASE}/dashboard`);
      await page.getByTestId('stats').waitFor({ timeout: 15_000 });
    });

    await step('the window switch loads the 7-day figures', async () => {
      await page.getByTestId('window-7d').click();
      await page.locator('[data-testid="stats"][data-window="7d"]').waitFor({ timeout: 10_000 });
      assert(new URL(page.url()).searchParams.get('window') === '7d', 'the window is not in the URL');
      const s = await api('/api/v1/stats?window=7d');
      assert(await page.getByTestId('trend-svg').locator('g').count() === s.trend.length, '7d: not one bar per day');
      await link(page, ids[4]);
      noPageErrors(page);
    });
  } finally {
    await browser.close();
  }
}

async function link(page, id) {
  await page.getByTestId('running').locator(`a[href="/jobs/${id}"]`).click();
  await page.waitForURL(new RegExp(`/jobs/${id}$`));
  await page.getByTestId('job-page').waitFor();
}

run(main, 120_000);

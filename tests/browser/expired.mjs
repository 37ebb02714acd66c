// Browser test of a job whose raw events retention deleted, against a running bff (started by
// `cargo xtask test` with PLAYDECK_EVENT_RETENTION_DAYS=3650 and a sweep every second), in Debian's
// Chromium.
//
// A job that finished in 2001 is ingested with its events; the sweep deletes them and keeps the
// summary. Its page says so in words, where the output would be, instead of an empty view; the
// hosts and the history are still there; a phone's width too.
//
//   PLAYDECK_URL=… PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node expired.mjs

import { randomBytes } from 'node:crypto';
import {
  BASE, DESKTOP, PHONE, Run, api, assert, ingest, launchBrowser, newPage, noPageErrors, noSidewaysScroll, requireEnv, run,
  shot, signIn, step, waitFor,
} from './lib.mjs';

requireEnv('expired.mjs');

async function main() {
  const suffix = randomBytes(4).toString('hex');
  const start = Date.parse('2001-03-04T05:06:07Z');
  const r = new Run({ hosts: ['old-01', 'old-02'], start });
  const events = [...r.start(), ...r.task('Rotate logs', { outcome: () => 'changed' }), ...r.end()];
  const jobId = (await ingest({
    source: 'local',
    job: {
      external_id: `expired-${suffix}`, name: `Rotate logs ${suffix}`, status: 'successful',
      started: new Date(start).toISOString(), finished: new Date(start + 60_000).toISOString(),
    },
    events,
  })).job_id;
  let job;
  await waitFor('retention deletes the job\'s events', async () => {
    job = await api(`/api/v1/jobs/${jobId}`);
    return Boolean(job.events_expired) || job.events_expired;
  }, 20_000);
  assert(job.hosts.changed === 2, `the summary is gone: ${JSON.stringify(job.hosts)}`);

  const browser = await launchBrowser();
  try {
    for (const [viewport, name] of [[DESKTOP, 'desktop'], [PHONE, 'phone']]) {
      const context = await browser.newContext({ viewport });
      await signIn(context);
      const page = await newPage(context);
      await step(`${name}: the page says the output was deleted, not an empty output`, async () => {
        await page.goto(`${BASE}/jobs/${jobId}`);
        const notice = page.getByTestId('events-expired');
        await notice.waitFor({ timeout: 15_000 });
        const text = await notice.innerText();
        assert(/retention/.test(text) && text.includes(job.events_expired.slice(0, 10)), `the notice reads: ${text}`);
        const where = page.getByTestId('output-expired');
        await where.waitFor();
        assert((await page.getByTestId('output').count()) === 0, 'an empty output view is shown');
        assert((await page.getByTestId('download-txt').count()) === 0, 'a download of nothing is offered');
        await noSidewaysScroll(page, viewport.width);
        await shot(page, `expired-${name}.png`);
      });
      await step(`${name}: the hosts and the history are kept`, async () => {
        await page.getByRole('tab', { name: /Hosts/ }).click();
        await waitFor('both hosts are listed', async () => {
          const t = await page.locator('.tabpanel').innerText();
          return (t.includes('old-01') && t.includes('old-02')) || t;
        });
        await page.getByRole('tab', { name: /History/ }).click();
        await waitFor('the history shows the end', async () => {
          const t = await page.locator('.tabpanel').innerText();
          return /successful/i.test(t) || t;
        });
      });
      noPageErrors(page);
      await context.close();
    }
  } finally {
    await browser.close();
  }
}

await run(main, 120_000);

// Browser test of schedules, against a running bff with the local engine, in Debian's Chromium.
//
// What a person would notice: an operator opens Launch, picks patch.yml on web-01 with Group-1,
// chooses "Schedule…", sees the next five runs in Europe/Berlin (computed by the server, with
// their offsets), creates it, sees it fire on the Schedules page without reloading (its run links
// to a real job), pauses it; a wrong cron is refused in the server's words, naming the field; a
// viewer sees the schedules but no Pause; the pages fit a phone.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node schedules.mjs

import { randomBytes } from 'node:crypto';
import {
  ADMIN_KEY, call, BASE, DESKTOP, PHONE, assert, launchBrowser, newPage, noPageErrors, noSidewaysScroll, requireEnv, run,
  selectListed, shot, signIn, step, waitFor,
} from './lib.mjs';

requireEnv('schedules.mjs');

async function main() {
  const suffix = randomBytes(4).toString('hex');
  const operator = await call('POST', '/api/v1/keys', { name: `scheduler-${suffix}`, role: 'operator' });
  assert(operator.ok, `an operator key: ${operator.detail}`);
  const viewer = await call('POST', '/api/v1/keys', { name: `sched-viewer-${suffix}`, role: 'viewer' });
  assert(viewer.ok, `a viewer key: ${viewer.detail}`);
  const name = `Patch web-01 ${suffix}`;
  const browser = await launchBrowser();
  let id;
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    await signIn(context, operator.json.secret);
    const page = await newPage(context);

    await step('the launch form schedules patch.yml on web-01 with Group-1, previewing the runs in Berlin', async () => {
      await page.goto(`${BASE}/launch`);
      await page.getByTestId('launch-kind-playbook').check();
      await selectListed(page, 'launch-playbook', 'patch.yml');
      await selectListed(page, 'launch-inventory', 'demo.yml');
      await page.getByTestId('launch-limit').fill('web-01');
      await page.getByTestId('launch-vars').fill('patch_group: Group-1');
      // The form's first preview (its default cron, in the browser's zone) answers last, after
      // what is typed below: the page must keep showing the answer to the newest timing.
      let held = true;
      await page.route('**/api/v1/schedules/preview', async (route) => {
        if (held) {
          held = false;
          await new Promise((r) => setTimeout(r, 2_000));
        }
        await route.continue();
      });
      await page.getByTestId('launch-schedule').click();
      await page.getByTestId('schedule-form').waitFor();
      await page.getByTestId('schedule-name-input').fill(name);
      await page.getByTestId('schedule-zone').fill('Europe/Berlin');
      // A wrong field first: the server's words, naming it, in the preview.
      await page.getByTestId('schedule-cron').fill('0 25 * * *');
      const error = page.getByTestId('schedule-preview-error');
      await waitFor('the preview names the wrong field', async () =>
        (await error.count()) > 0 && (await error.innerText()).includes('field 2 (hour)') || (await page.getByTestId('schedule-preview').innerText()));
      // Once the held first answer is in, the preview still names the wrong field.
      await new Promise((r) => setTimeout(r, 2_500));
      assert(!held, 'the first preview was asked for');
      assert((await error.count()) > 0 && (await error.innerText()).includes('field 2 (hour)'),
        `an older answer replaced the newest: ${await page.getByTestId('schedule-preview').innerText()}`);
      await page.unroute('**/api/v1/schedules/preview');
      await page.getByTestId('schedule-create').click();
      const refused = page.getByTestId('schedule-error');
      await waitFor('Create is refused in words', async () =>
        (await refused.isVisible()) && (await refused.innerText()).includes('field 2 (hour)') || (await refused.innerText()));
      // Every five seconds (a sixth field in front for seconds): the test sees it fire soon.
      await page.getByTestId('schedule-cron').fill('*/5 * * * * *');
      const runs = page.getByTestId('schedule-preview-run');
      await waitFor('five runs previewed', async () => (await runs.count()) === 5 || (await runs.count()));
      const first = await runs.first().innerText();
      assert(/\+0[12]:00$/.test(first), `a run shown with Berlin's offset: ${first}`);
      await shot(page, 'schedule-form-desktop.png');
      await page.getByTestId('schedule-create').click();
      await page.getByTestId('schedules-page').waitFor();
      assert(new URL(page.url()).pathname === '/schedules', 'created, the Schedules page opens');
    });

    await step('the Schedules page shows it fire, live, with a link to the job', async () => {
      const card = page.getByTestId('schedule').filter({ hasText: name });
      await card.waitFor();
      const listed = await call('GET', '/api/v1/schedules?page_size=200');
      id = listed.json.results.find((s) => s.name === name)?.id;
      assert(id, 'the schedule is listed by the API');
      assert((await card.getByTestId('schedule-next').innerText()).includes('+0'), 'its next run, with an offset');
      // No reload: the page reads again by itself.
      const last = card.getByTestId('schedule-last');
      await waitFor('a run fired with its job', async () =>
        (await last.count()) > 0 && (await last.innerText()).includes('fired') && (await last.innerText()).includes('job ') || (await card.innerText()), 30_000);
      await card.getByTestId('schedule-runs-toggle').click();
      await card.getByTestId('schedule-runs').waitFor();
      await shot(page, 'schedules-desktop.png');
      const run = (await call('GET', `/api/v1/schedules/${id}/runs`)).json.results.find((r) => r.state === 'fired');
      const job = (await call('GET', `/api/v1/jobs/${run.job_id}`)).json;
      assert(job.template === 'patch.yml' && job.limit === 'web-01', `the job is patch.yml on web-01: ${JSON.stringify(job)}`);
      const schedule = (await call('GET', `/api/v1/schedules/${id}`)).json;
      assert(schedule.launch?.extra_vars?.patch_group === 'Group-1', `the launch has Group-1: ${JSON.stringify(schedule.launch)}`);
      await waitFor('the job ran with Group-1', async () => {
        const out = await fetch(`${BASE}/api/v1/jobs/${run.job_id}/stdout?format=txt`, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } });
        return (await out.text()).includes('Group-1');
      }, 30_000);
      await card.locator(`a[href="/jobs/${run.job_id}"]`).first().click();
      await page.waitForURL(`**/jobs/${run.job_id}`);
      await page.goBack();
    });

    await step('pausing stops it, and the page says so', async () => {
      const card = page.getByTestId('schedule').filter({ hasText: name });
      await card.getByTestId('schedule-toggle').click();
      await waitFor('paused', async () => (await card.innerText()).includes('paused') && (await card.getByTestId('schedule-next').innerText()) === 'No next run' || (await card.innerText()));
      const s = (await call('GET', `/api/v1/schedules/${id}`)).json;
      assert(s.enabled === false && s.next_run === null, `paused on the server: ${JSON.stringify(s)}`);
      const before = (await call('GET', `/api/v1/schedules/${id}/runs`)).json.count;
      await new Promise((r) => setTimeout(r, 6_000));
      const after = (await call('GET', `/api/v1/schedules/${id}/runs`)).json.count;
      assert(after === before, `no run while paused (${before} → ${after})`);
      await page.goto(`${BASE}/launch`);
      await page.getByTestId('launch-kind-playbook').check();
      await selectListed(page, 'launch-playbook', 'patch.yml');
      noPageErrors(page);
    });

    await step('"… tomorrow at 22:00" in the request box becomes a one-time schedule in the person\'s zone', async () => {
      const bc = await browser.newContext({ viewport: DESKTOP, timezoneId: 'Europe/Berlin' });
      await signIn(bc, operator.json.secret);
      const p = await newPage(bc);
      await p.goto(`${BASE}/requests`);
      await p.getByTestId('ask-text').fill('Patch server web-01 with Group-1 tomorrow at 22:00');
      await p.getByTestId('ask-send').click();
      await p.getByTestId('request').waitFor({ timeout: 10_000 });
      const understood = await p.getByTestId('understood').innerText();
      assert(/22:00:00 \(Europe\/Berlin\)/.test(understood), `the time, in the browser's zone: ${understood}`);
      assert(understood.includes('web-01') && !understood.includes('22:00:00,'), `22:00 is no host: ${understood}`);
      const confirm = p.getByTestId('request-confirm');
      assert((await confirm.innerText()).includes('schedule'), `the button says it schedules: ${await confirm.innerText()}`);
      await confirm.click();
      await p.getByTestId('request-scheduled').waitFor({ timeout: 10_000 });
      await shot(p, 'request-scheduled-desktop.png');
      const requestId = new URL(p.url()).searchParams.get('id') ?? (await p.getByTestId('request').getAttribute('data-id'));
      await p.getByTestId('request-scheduled').getByRole('link').click();
      await p.getByTestId('schedules-page').waitFor();
      const once = p.getByTestId('schedule').filter({ hasText: 'once at' }).filter({ hasText: 'Europe/Berlin' }).first();
      await once.waitFor();
      const text = await once.innerText();
      assert(/22:00:00 \+01:00/.test(text), `the next run is 22:00 in Berlin: ${text}`);
      const all = (await call('GET', '/api/v1/schedules?page_size=200')).json.results;
      const made = all.find((x) => x.at && x.time_zone === 'Europe/Berlin' && /\(request \d+\)$/.test(x.name));
      assert(made && made.at.endsWith('T22:00:00') && made.launch.options.limit === 'web-01', `the schedule: ${JSON.stringify(made)} (${requestId})`);
      await call('DELETE', `/api/v1/schedules/${made.id}`);
      noPageErrors(p);
      await bc.close();
    });

    await step('a viewer sees the schedules, without Pause', async () => {
      const vc = await browser.newContext({ viewport: DESKTOP });
      await signIn(vc, viewer.json.secret);
      const v = await newPage(vc);
      await v.goto(`${BASE}/schedules`);
      await waitFor('the page knows the viewer', async () => ((await v.getByTestId('who').textContent()) ?? '').endsWith(' · viewer'));
      await v.getByTestId('schedule').filter({ hasText: name }).waitFor();
      assert((await v.getByTestId('schedule-toggle').count()) === 0, 'a viewer sees Pause');
      noPageErrors(v);
      await vc.close();
    });

    await step('the schedule pages fit a phone', async () => {
      const pc = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
      await signIn(pc, operator.json.secret);
      const p = await newPage(pc);
      await p.goto(`${BASE}/schedules`);
      await p.getByTestId('schedule').filter({ hasText: name }).waitFor();
      await noSidewaysScroll(p, PHONE.width);
      await shot(p, 'schedules-phone.png');
      await p.goto(`${BASE}/launch?source=patch.yml`);
      await p.getByTestId('launch-schedule').click();
      await p.getByTestId('schedule-preview-run').first().waitFor();
      await noSidewaysScroll(p, PHONE.width);
      await shot(p, 'schedule-form-phone.png');
      noPageErrors(p);
      await pc.close();
    });
  } finally {
    if (id) await call('DELETE', `/api/v1/schedules/${id}`);
    await browser.close();
  }
}

await run(main, 180_000);

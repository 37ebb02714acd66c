// Browser test of actions by role, against a running bff, in Debian's Chromium.
//
// What a person would notice: an operator gets the launch form, which checks extra vars (YAML or
// JSON) before sending and shows the server's own words when it refuses a launch; cancel and
// relaunch answer in words too; cancel really stops a running local job, and relaunching the
// failed hosts really runs on them alone; the output downloads; a viewer sees no action buttons.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node actions.mjs

import { randomBytes } from 'node:crypto';
import {
  ADMIN_KEY, BASE, DESKTOP, PHONE, Run, assert, assertContrast, ingest, launchBrowser, linesOf, newPage, noPageErrors,
  noSidewaysScroll, requireEnv, run, selectListed, shot, signIn, step, waitFor,
} from './lib.mjs';

requireEnv('actions.mjs');

/// What the server answers to a POST, as `{ok, detail}`.
async function post(path, body) {
  const response = await fetch(`${BASE}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${ADMIN_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({}));
  return { ok: response.ok, detail: json?.errors?.[0]?.detail ?? '', json };
}

/// The page shows either the server's refusal in its words, or that it was done.
async function shownOutcome(page, errorId, okId) {
  const either = page.locator(`[data-testid="${errorId}"]:not([hidden]), [data-testid="${okId}"]`);
  await either.first().waitFor({ timeout: 15_000 });
  const error = page.locator(`[data-testid="${errorId}"]:not([hidden])`);
  if (await error.count()) return { ok: false, text: (await error.innerText()).trim() };
  return { ok: true, text: (await page.getByTestId(okId).innerText()).trim() };
}

async function main() {
  const suffix = randomBytes(4).toString('hex');
  const r = new Run({ hosts: ['db-01', 'db-02'] });
  const events = [...r.start(), ...r.task('Backup', { outcome: (h) => (h === 'db-02' ? 'failed' : 'ok') }), ...r.end()];
  const failedJob = (await ingest({ source: 'local', job: { external_id: `act-${suffix}`, name: `Backup ${suffix}` }, events })).job_id;
  const r2 = new Run({ hosts: ['db-01'] });
  const runningJob = (await ingest({ source: 'local', job: { external_id: `act-run-${suffix}`, name: `Long ${suffix}` }, events: [...r2.start(), ...r2.task('Wait')] })).job_id;

  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    await signIn(context);
    const page = await newPage(context);

    await step('extra vars are checked as they are typed, with the line that is wrong', async () => {
      await page.goto(`${BASE}/`);
      await page.getByTestId('nav-launch').click();
      await page.getByTestId('launch-form').waitFor();
      assert(new URL(page.url()).pathname === '/launch', 'the launch form has no address of its own');
      // With no controller configured it opens on the local playbooks; a template is still offered.
      await waitFor('the form opens on the local playbooks', async () => page.getByTestId('launch-kind-playbook').isChecked());
      await page.getByTestId('launch-kind-template').check();
      await page.getByTestId('launch-template').fill(`no-such-template-${suffix}`);
      await page.getByTestId('launch-vars').fill('patch_group: Group-1\n  reboot: no');
      const check = page.getByTestId('launch-vars-check');
      await waitFor('the mistake is named', async () => (await check.innerText()).includes('line 2') || await check.innerText());
      assert((await page.getByTestId('launch-vars').getAttribute('aria-invalid')) === 'true', 'the field is not marked invalid');
      await page.getByTestId('launch-submit').click();
      const error = await page.getByTestId('launch-error').innerText();
      assert(error.includes('Extra vars') && error.includes('line 2'), `submitting invalid vars says: ${error}`);
      await page.getByTestId('launch-vars').fill('patch_group: Group-1\nreboot: no\nhosts:\n  - web-01\n');
      await waitFor('the vars are read', async () => (await check.innerText()) === '3 variables.' || await check.innerText());
      await page.getByTestId('launch-vars').fill('{"patch_group": "Group-1"}');
      await waitFor('JSON is read too', async () => (await check.innerText()) === '1 variable.' || await check.innerText());
    });

    await step('a refused template launch shows the server\'s words', async () => {
      const body = { template: `no-such-template-${suffix}`, extra_vars: { patch_group: 'Group-1' } };
      await page.getByTestId('launch-submit').click();
      await waitFor('the answer is shown', async () => !(await page.getByTestId('launch-error').innerText()).startsWith('Extra vars') || 'still the vars error');
      const shown = await shownOutcome(page, 'launch-error', 'job-page');
      const server = await post('/api/v1/jobs', body);
      assert(!server.ok, `the server launched a template that does not exist: ${JSON.stringify(server.json)}`);
      assert(!shown.ok && shown.text.includes(server.detail), `the page says ${JSON.stringify(shown.text)}, the server ${JSON.stringify(server.detail)}`);
      console.log(`# launch refused: ${shown.text}`);
      await shot(page, 'launch-error.png');
      await assertContrast(page, 'the launch form with an error');
    });

    await step('a refused playbook launch shows the server\'s words', async () => {
      await page.getByTestId('launch-kind-playbook').check();
      await selectListed(page, 'launch-playbook', '(other)');
      await page.getByTestId('launch-playbook-path').fill(`no-such-playbook-${suffix}.yml`);
      await page.getByTestId('launch-limit').fill('web-01');
      await page.getByTestId('launch-submit').click();
      const shown = await shownOutcome(page, 'launch-error', 'job-page');
      const server = await post('/api/v1/jobs', {
        source: { type: 'playbook', path: `no-such-playbook-${suffix}.yml` },
        extra_vars: { patch_group: 'Group-1' },
        options: { limit: 'web-01' },
      });
      assert(!server.ok, `the server ran a playbook that does not exist: ${JSON.stringify(server.json)}`);
      assert(!shown.ok && shown.text.includes(server.detail), `the page says ${JSON.stringify(shown.text)}, the server ${JSON.stringify(server.detail)}`);
      await page.setViewportSize(PHONE);
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'launch-phone.png');
      await page.setViewportSize(DESKTOP);
    });

    await step('a playbook launched from the form opens its job, which runs live to the end; relaunch runs it again', async () => {
      await page.goto(`${BASE}/launch`);
      await page.getByTestId('launch-kind-playbook').check();
      await selectListed(page, 'launch-playbook', 'hello.yml');
      await page.getByTestId('launch-submit').click();
      const shown = await shownOutcome(page, 'launch-error', 'job-page');
      if (!shown.ok && /not available in this build/.test(shown.text)) {
        // The branch without the local engine: nothing to run, and the refusal was shown in words.
        console.log(`# skipped: ${shown.text}`);
        return;
      }
      assert(shown.ok, `the launch was refused: ${shown.text}`);
      const first = new URL(page.url()).pathname;
      await waitFor('the job ends successful', async () => (await page.getByTestId('job-page').getAttribute('data-status')) === 'successful' || await page.getByTestId('job-page').getAttribute('data-status'), 60_000);
      await page.locator('.out .line', { hasText: 'Hello from Playdeck' }).first().waitFor({ timeout: 10_000 });
      await page.getByTestId('action-all').click();
      await waitFor('the relaunch opens a new job', async () => (new URL(page.url()).pathname !== first) || page.url(), 15_000);
      await waitFor('the new job ends successful', async () => (await page.getByTestId('job-page').getAttribute('data-status')) === 'successful' || await page.getByTestId('job-page').getAttribute('data-status'), 60_000);
    });

    await step('cancel answers in words', async () => {
      await page.goto(`${BASE}/jobs/${runningJob}`);
      await page.getByTestId('action-cancel').click();
      const shown = await shownOutcome(page, 'action-error', 'action-result');
      console.log(`# cancel: ${shown.text}`);
      if (!shown.ok) {
        const server = await post(`/api/v1/jobs/${runningJob}/cancel`, {});
        assert(!server.ok && shown.text.includes(server.detail), `the page says ${JSON.stringify(shown.text)}, the server ${JSON.stringify(server.detail)}`);
      }
      assert((await page.getByTestId('action-relaunch').count()) === 0, 'a running job offers relaunch');
    });

    await step('relaunching the failed hosts answers in words', async () => {
      await page.goto(`${BASE}/jobs/${failedJob}`);
      assert((await page.getByTestId('action-cancel').count()) === 0, 'a finished job offers cancel');
      await page.getByTestId('action-failed').click();
      // Either the refusal in words, or the new job's page (its address names another job).
      const here = `/jobs/${failedJob}`;
      await waitFor('the relaunch is answered', async () => (
        (await page.locator('[data-testid="action-error"], [data-testid="action-result"]').count()) > 0
        || new URL(page.url()).pathname !== here) || 'no answer yet');
      const error = page.getByTestId('action-error');
      const shown = (await error.count())
        ? { ok: false, text: (await error.innerText()).trim() }
        : { ok: true, text: `now at ${new URL(page.url()).pathname}` };
      console.log(`# relaunch failed hosts: ${shown.text}`);
      if (!shown.ok) {
        const server = await post(`/api/v1/jobs/${failedJob}/relaunch`, { hosts: 'failed' });
        assert(!server.ok && shown.text.includes(server.detail), `the page says ${JSON.stringify(shown.text)}, the server ${JSON.stringify(server.detail)}`);
      }
    });

    await step('cancel stops a job the local engine is running, and the page shows it canceled', async () => {
      const launched = await post('/api/v1/jobs', { source: { type: 'playbook', path: 'wait.yml' }, extra_vars: { seconds: 120 } });
      assert(launched.ok, `launching wait.yml: ${launched.detail}`);
      const id = launched.json.job.id;
      await page.goto(`${BASE}/jobs/${id}`);
      const status = async () => page.getByTestId('job-page').getAttribute('data-status');
      await waitFor('the job runs', async () => (await status()) === 'running' || await status(), 30_000);
      await page.getByTestId('action-cancel').click();
      const shown = await shownOutcome(page, 'action-error', 'action-result');
      assert(shown.ok, `the cancel was refused: ${shown.text}`);
      await waitFor('the page shows the job canceled', async () => (await status()) === 'canceled' || await status(), 30_000);
      const job = await (await fetch(`${BASE}/api/v1/jobs/${id}`, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } })).json();
      assert(job.status === 'canceled' && job.finished, `the server says ${job.status}`);
      await shot(page, 'action-canceled.png');
    });

    await step('relaunching the failed hosts runs a new job on those hosts only', async () => {
      const launched = await post('/api/v1/jobs', {
        source: { type: 'playbook', path: 'patch.yml' },
        inventory: { type: 'file', path: 'demo.yml' },
        extra_vars: { patch_group: 'Group-1', simulate_failure_on: 'web-01' },
        wait: true,
      });
      assert(launched.ok && launched.json.job.status === 'failed', `the patch run: ${launched.detail || launched.json.job?.status}`);
      const id = launched.json.job.id;
      await page.goto(`${BASE}/jobs/${id}`);
      await page.getByTestId('action-failed').click();
      await waitFor('the new job opens', async () => new URL(page.url()).pathname !== `/jobs/${id}` || 'still on the failed job', 15_000);
      const newId = Number(new URL(page.url()).pathname.split('/').pop());
      const status = async () => page.getByTestId('job-page').getAttribute('data-status');
      await waitFor('the new job ends', async () => ['successful', 'failed'].includes(await status()) || await status(), 60_000);
      const job = await (await fetch(`${BASE}/api/v1/jobs/${newId}`, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } })).json();
      assert(job.limit === 'web-01', `the relaunch is limited to ${JSON.stringify(job.limit)}, not the failed host web-01`);
      const hosts = await (await fetch(`${BASE}/api/v1/jobs/${newId}/hosts`, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } })).json();
      const names = (hosts.results ?? hosts).map((h) => h.host).sort();
      assert(JSON.stringify(names) === '["web-01"]', `the relaunch ran on ${JSON.stringify(names)}`);
      await shot(page, 'action-relaunched-failed.png');
    });

    await step('the output downloads as text', async () => {
      await page.goto(`${BASE}/jobs/${failedJob}`);
      const href = await page.getByTestId('download-txt').getAttribute('href');
      const response = await context.request.get(`${BASE}${href}`);
      assert(response.ok(), `the download answered ${response.status()}`);
      // As the events printed it: carriage returns and all.
      const text = (await response.text()).replace(/\r/g, '');
      assert(text === linesOf(events).join('\n') + '\n', 'the downloaded output is not the job\'s output');
    });

    await step('a viewer sees no action buttons', async () => {
      const created = await post('/api/v1/keys', { name: `viewer-${suffix}`, role: 'viewer' });
      assert(created.ok, `creating a viewer key: ${created.detail}`);
      const viewerContext = await browser.newContext({ viewport: DESKTOP });
      await signIn(viewerContext, created.json.secret);
      const viewer = await newPage(viewerContext);
      await viewer.goto(`${BASE}/jobs/${failedJob}`);
      await viewer.getByTestId('actions').waitFor({ timeout: 15_000 });
      // What decides the buttons has loaded: the page knows it is a viewer's.
      await waitFor('the page knows the viewer', async () => (await viewer.getByTestId('who').textContent()).endsWith(' · viewer'));
      for (const id of ['action-all', 'action-failed', 'action-cancel', 'nav-launch']) {
        assert((await viewer.getByTestId(id).count()) === 0, `a viewer sees ${id}`);
      }
      assert((await viewer.getByTestId('download-txt').count()) === 1, 'a viewer cannot download the output');
      await viewer.goto(`${BASE}/launch`);
      await viewer.getByText('needs the operator role').waitFor();
      noPageErrors(viewer);
      await viewerContext.close();
    });

    noPageErrors(page);
  } finally {
    await browser.close();
  }
}

await run(main, 180_000);

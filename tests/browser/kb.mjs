// Browser test of the knowledge base page and the failure explanations on the job page, against a
// running bff, in Debian's Chromium.
//
// A failed job is ingested whose error no entry knows: its page says so and offers to create an
// entry from the failure; the editor opens pre-filled, shows validation errors in words, and
// "Try it" lists the ingested failure before saving; once saved (and then edited) the job page
// shows the entry's solution, its Markdown rendered and its HTML left as text; search, tag filter
// and a confirmed delete; a phone's width and both colour schemes.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node kb.mjs

import { randomBytes } from 'node:crypto';
import {
  ADMIN_KEY, BASE, DESKTOP, PHONE, Run, api, assert, assertContrast, ingest, launchBrowser, newPage, noPageErrors, noSidewaysScroll,
  requireEnv, run, shot, signIn, step, waitFor,
} from './lib.mjs';

requireEnv('kb.mjs');

async function main() {
  const suffix = randomBytes(4).toString('hex');
  const error = `frobnicator ${suffix} jammed: widget queue overflow`;
  const r = new Run({ hosts: ['app-01', 'app-02'] });
  const events = [...r.start(), ...r.task(`Frobnicate ${suffix}`, { outcome: (h) => (h === 'app-02' ? 'failed' : 'ok') }), ...r.end()];
  for (const e of events) {
    if (e.event === 'runner_on_failed') {
      e.event_data.res.msg = error;
      e.event_data.res.stderr = '';
    }
  }
  const jobName = `Frobnicate ${suffix}`;
  const jobId = (await ingest({ source: 'local', job: { external_id: `kb-${suffix}`, name: jobName }, events })).job_id;
  await waitFor('the failure is recorded', async () => {
    const job = await api(`/api/v1/jobs/${jobId}`);
    return job.explanations?.length === 1 || job.explanations;
  });

  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    await signIn(context);
    const page = await newPage(context);
    const title = `Frobnicator jam ${suffix}`;

    await step('the job page says no entry knows the failure, and offers to create one', async () => {
      await page.goto(`${BASE}/jobs/${jobId}`);
      const ex = page.getByTestId('explanation');
      await ex.waitFor({ timeout: 15_000 });
      assert((await ex.count()) === 1, `${await ex.count()} explanations shown, 1 expected`);
      const text = await ex.innerText();
      assert(text.includes('app-02') && text.includes(`Frobnicate ${suffix}`), `the explanation does not name host and task: ${text}`);
      assert(text.includes(error), `the error is not shown: ${text}`);
      await page.getByTestId('explanation-none').waitFor();
      await shot(page, 'kb-job-unexplained.png');
      await page.getByTestId('explanation-create').click();
    });

    await step('the editor opens pre-filled from the failure', async () => {
      await page.getByTestId('kb-editor').waitFor({ timeout: 10_000 });
      const pattern = await page.getByTestId('kb-pattern').inputValue();
      assert(pattern === error, `pattern is ${JSON.stringify(pattern)}, expected the error`);
      const task = await page.getByTestId('kb-task').inputValue();
      assert(task === `Frobnicate ${suffix}`, `task is ${JSON.stringify(task)}`);
      assert((await page.getByTestId('kb-module').inputValue()) === 'ansible.builtin.command', 'the module is not pre-filled');
    });

    await step('validation errors are shown in words', async () => {
      await page.getByTestId('kb-title').fill('');
      await page.getByTestId('kb-save').click();
      const errors = page.getByTestId('kb-errors');
      await errors.waitFor();
      assert((await errors.innerText()).includes('title'), `no word about the title: ${await errors.innerText()}`);
      // A regular expression that does not compile: the server's words.
      await page.getByTestId('kb-title').fill(title);
      await page.getByTestId('kb-kind').selectOption('regex');
      await page.getByTestId('kb-pattern').fill('frobnicator (');
      await page.getByTestId('kb-save').click();
      await waitFor('the server refuses the regex', async () => {
        const t = await errors.innerText().catch(() => '');
        return /regular expression|regex|parse|unclosed/i.test(t) || t;
      });
      await page.getByTestId('kb-kind').selectOption('substring');
      await page.getByTestId('kb-pattern').fill(`frobnicator ${suffix} jammed`);
    });

    await step('"Try it" lists the ingested failure before saving', async () => {
      await page.getByTestId('kb-try').click();
      const match = page.getByTestId('kb-try-match');
      await match.first().waitFor({ timeout: 10_000 });
      const text = await page.getByTestId('kb-try-results').innerText();
      assert(text.includes(`${jobName} #${jobId}`) && text.includes('app-02'), `try-it does not list the failure: ${text}`);
      const list = await api('/api/v1/kb?q=' + encodeURIComponent(title));
      assert(list.count === 0, 'trying saved the entry');
    });

    await step('saving creates the entry; the list finds it by search and tag', async () => {
      await page.getByTestId('kb-solution').fill('Clear the queue:\n\n* run `frobctl flush`\n- restart **frobd**\n\n<script>window.__x=1</script> <b>not bold</b>');
      await page.getByTestId('kb-tags').fill(`frob, test-${suffix}`);
      await page.getByTestId('kb-try').click();
      await page.getByTestId('kb-try-match').first().waitFor();
      await shot(page, 'kb-editor.png');
      await page.getByTestId('kb-save').click();
      await page.getByTestId('kb-notice').waitFor({ timeout: 10_000 });
      assert(await page.getByTestId('kb-editor').count() === 0, 'the editor stayed open');
      await page.getByTestId('kb-search').fill(suffix);
      await waitFor('search finds the entry', async () => (await page.getByTestId('kb-entry').count()) === 1 || await page.getByTestId('kb-entry').count());
      await page.getByTestId('kb-search').fill('');
      await waitFor('the full list is back', async () => (await page.getByTestId('kb-entry').count()) > 1);
      await page.getByTestId('kb-tag').selectOption(`test-${suffix}`);
      await waitFor('the tag filter keeps the entry', async () => (await page.getByTestId('kb-entry').count()) === 1 || await page.getByTestId('kb-entry').count());
      assert((await page.getByTestId('kb-entry').innerText()).includes(title), 'the filtered entry is not ours');
    });

    await step('edit changes the solution', async () => {
      await page.getByTestId('kb-edit').click();
      await page.getByTestId('kb-editor').waitFor();
      assert((await page.getByTestId('kb-title').inputValue()) === title, 'the editor is not filled with the entry');
      const solution = await page.getByTestId('kb-solution').inputValue();
      await page.getByTestId('kb-solution').fill(solution.replace('Clear the queue:', 'Clear the **widget** queue:'));
      await page.getByTestId('kb-save').click();
      await page.getByTestId('kb-editor').waitFor({ state: 'detached', timeout: 10_000 });
      const entry = (await api('/api/v1/kb?q=' + encodeURIComponent(title))).results[0];
      assert(entry.solution.startsWith('Clear the **widget** queue:'), `the edit was not saved: ${entry.solution}`);
      await page.locator('[data-testid="kb-entry"] summary').click();
      await page.setViewportSize(PHONE);
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'kb-390.png');
      await page.setViewportSize(DESKTOP);
      await shot(page, 'kb-1280.png');
      await assertContrast(page, 'the knowledge base page');
    });

    await step('the job page shows the explanation, its Markdown rendered and HTML as text', async () => {
      await waitFor('the job is re-checked against the new entry', async () => {
        const job = await api(`/api/v1/jobs/${jobId}`);
        return job.explanations[0].matches.some((m) => m.title === title) || job.explanations;
      });
      await page.goto(`${BASE}/jobs/${jobId}`);
      const match = page.getByTestId('explanation-match');
      await match.waitFor({ timeout: 15_000 });
      const text = await match.innerText();
      assert(text.includes(title), `the match does not show the title: ${text}`);
      assert(await match.locator('li').count() === 2, 'the list items are not rendered as a list');
      assert((await match.locator('code').first().innerText()) === 'frobctl flush', 'code is not rendered');
      assert((await match.locator('strong').allInnerTexts()).includes('frobd'), 'bold is not rendered');
      assert(text.includes('<script>window.__x=1</script>') && text.includes('<b>not bold</b>'), `HTML is not shown as text: ${text}`);
      assert(await match.locator('script, b').count() === 0, 'HTML from the entry reached the page');
      assert(await page.evaluate(() => window.__x) === undefined, 'a script from the entry ran');
      await shot(page, 'kb-job-explained-1280.png');
      await page.setViewportSize(PHONE);
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'kb-job-explained-390.png');
      await page.setViewportSize(DESKTOP);
    });

    await step('a viewer reads the entries and explanations but sees no edit buttons', async () => {
      const response = await fetch(`${BASE}/api/v1/keys`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${ADMIN_KEY}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: `kb-viewer-${suffix}`, role: 'viewer' }),
      });
      const created = await response.json();
      assert(response.ok, `creating a viewer key: ${JSON.stringify(created)}`);
      const viewerContext = await browser.newContext({ viewport: DESKTOP });
      await signIn(viewerContext, created.secret);
      const viewer = await newPage(viewerContext);
      await viewer.goto(`${BASE}/kb`);
      await viewer.getByTestId('kb-entry').first().waitFor({ timeout: 15_000 });
      // What decides the buttons has loaded: the page knows it is a viewer's.
      await waitFor('the page knows the viewer', async () => (await viewer.getByTestId('who').textContent()).endsWith(' · viewer'));
      for (const id of ['kb-new', 'kb-edit', 'kb-delete']) {
        assert((await viewer.getByTestId(id).count()) === 0, `a viewer sees ${id}`);
      }
      await viewer.goto(`${BASE}/jobs/${jobId}`);
      await viewer.getByTestId('explanation-match').waitFor({ timeout: 15_000 });
      await viewer.goto(`${BASE}/requests`);
      await viewer.getByTestId('ask-viewer').waitFor({ timeout: 15_000 });
      assert((await viewer.getByTestId('ask-form').count()) === 0, 'a viewer is offered the request box');
      noPageErrors(viewer);
      await viewerContext.close();
    });

    await step('delete asks first, then removes the entry', async () => {
      await page.goto(`${BASE}/kb`);
      await page.getByTestId('kb-search').fill(suffix);
      await waitFor('search finds the entry', async () => (await page.getByTestId('kb-entry').count()) === 1 || await page.getByTestId('kb-entry').count());
      await page.getByTestId('kb-delete').click();
      assert((await api('/api/v1/kb?q=' + encodeURIComponent(title))).count === 1, 'deleted without confirmation');
      await page.getByTestId('kb-delete-confirm').click();
      await page.getByTestId('kb-notice').waitFor();
      await waitFor('the entry is gone', async () => (await page.getByTestId('kb-entry').count()) === 0);
      assert((await api('/api/v1/kb?q=' + encodeURIComponent(title))).count === 0, 'the entry is still there');
      noPageErrors(page);
    });
  } finally {
    await browser.close();
  }
}

run(main, 180_000);

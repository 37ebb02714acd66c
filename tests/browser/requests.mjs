// Browser test of the request box (`/requests`), against a running bff with the local engine, in
// Debian's Chromium.
//
// The operator types "Patch server web-01 with Group-1": the page shows what was understood and
// exactly what would run, nothing runs before Confirm; after Confirm the phases arrive while the
// real playbook (examples/playbooks/patch.yml) runs, and the conversation ends with the result and
// a link to the job. A request with a missing part asks for it and a choice answers it; an
// unknown host is refused with the closest names. A phone's width and both colour schemes.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node requests.mjs

import {
  BASE, DESKTOP, PHONE, api, assert, assertContrast, launchBrowser, newPage, noPageErrors, noSidewaysScroll, requireEnv, run,
  shot, signIn, step, waitFor,
} from './lib.mjs';

requireEnv('requests.mjs');

async function ask(page, text) {
  await page.goto(`${BASE}/requests`);
  await page.getByTestId('ask-text').fill(text);
  await page.getByTestId('ask-send').click();
  await page.waitForURL(/\/requests\?id=\d+/, { timeout: 10_000 });
  await page.getByTestId('request').waitFor({ timeout: 10_000 });
  return Number(new URL(page.url()).searchParams.get('id'));
}

async function main() {
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    await signIn(context);
    const page = await newPage(context);
    let id;

    await step('the request box shows what it understood and exactly what would run', async () => {
      const jobsBefore = (await api('/api/v1/jobs?page_size=1')).count;
      id = await ask(page, 'Patch server web-01 with Group-1');
      await page.locator('[data-testid="request"][data-status="ready"]').waitFor();
      const understood = await page.getByTestId('understood').innerText();
      for (const word of ['patch', 'web-01', 'patch_group', 'Group-1']) {
        assert(understood.includes(word), `"${word}" is not in what was understood: ${understood}`);
      }
      const wouldRun = await page.getByTestId('would-run').innerText();
      for (const word of ['patch.yml', 'demo.yml', 'web-01', 'Group-1']) {
        assert(wouldRun.includes(word), `"${word}" is not in what would run: ${wouldRun}`);
      }
      const messages = await page.getByTestId('message').allInnerTexts();
      assert(messages[0].includes('Patch server web-01 with Group-1'), `the operator's words are not shown: ${messages}`);
      assert(messages.length >= 2, 'Playdeck did not answer in the conversation');
      assert((await api('/api/v1/jobs?page_size=1')).count === jobsBefore, 'a job was launched before Confirm');
      await shot(page, 'requests-ready-1280.png');
      await page.setViewportSize(PHONE);
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'requests-ready-390.png');
      await page.setViewportSize(DESKTOP);
      await assertContrast(page, 'the request box');
    });

    await step('Confirm launches it and the phases arrive while it runs, then the result', async () => {
      await page.getByTestId('request-confirm').click();
      await page.getByTestId('phases').waitFor({ timeout: 15_000 });
      const seen = new Set();
      let runningSnapshots = 0;
      await waitFor('the job ends with a result', async () => {
        const states = await page.getByTestId('phase').evaluateAll((els) => els.map((e) => `${e.textContent.trim()}=${e.dataset.state}`));
        states.forEach((s) => seen.add(s));
        const result = await page.getByTestId('request-result').count();
        if (!result) runningSnapshots += 1;
        return result > 0 || states;
      }, 180_000);
      console.log(`# phase states seen: ${[...seen].join(', ')}`);
      assert(runningSnapshots > 0, 'the phases were never shown before the result');
      const names = await page.getByTestId('phase').allInnerTexts();
      assert(names.some((n) => n.includes('Pre-checks started')) && names.some((n) => n.includes('Patching completed')), `phases: ${names}`);
      const result = page.getByTestId('request-result');
      const status = await result.getAttribute('data-status');
      assert(status === 'successful', `the job ended ${status}: ${await result.innerText()}`);
      const done = await page.locator('[data-testid="phase"][data-state="done"]').count();
      assert(done >= 3, `${done} phases done`);
      assert([...seen].some((s) => s.endsWith('=active') || s.endsWith('=pending')), `no phase was seen before it was done: ${[...seen]}`);
      const r = await api(`/api/v1/requests/${id}`);
      assert(r.job_id && r.job.limit === 'web-01', `the job is not limited to web-01: ${JSON.stringify(r.job?.limit)}`);
      await shot(page, 'requests-done-1280.png');
      await page.setViewportSize(PHONE);
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'requests-done-390.png');
      await page.setViewportSize(DESKTOP);
      await page.getByTestId('request-job-link').click();
      await page.waitForURL(new RegExp(`/jobs/${r.job_id}$`));
      await page.getByTestId('job-page').waitFor();
    });

    await step('a missing part is asked for, and a reply completes the request', async () => {
      await ask(page, 'patch web-01');
      await page.locator('[data-testid="request"][data-status="needs_input"]').waitFor();
      const missing = await page.getByTestId('missing').innerText();
      assert(/patch group/i.test(missing), `the question is not about the patch group: ${missing}`);
      await shot(page, 'requests-missing-1280.png');
      await page.getByTestId('reply-text').fill('group 2');
      await page.getByTestId('reply-send').click();
      await page.locator('[data-testid="request"][data-status="ready"]').waitFor({ timeout: 10_000 });
      assert((await page.getByTestId('would-run').innerText()).includes('Group-2'), 'the reply was not taken');
    });

    await step('an unknown host is refused with the closest names, and a suggestion answers it', async () => {
      await ask(page, 'patch server web-09 with group 1');
      await page.locator('[data-testid="request"][data-status="refused"]').waitFor();
      const refused = await page.getByTestId('refused').innerText();
      assert(refused.includes('web-09'), `the refusal does not name web-09: ${refused}`);
      const suggestions = await page.getByTestId('suggestions').innerText();
      assert(suggestions.includes('web-01'), `web-01 is not suggested: ${suggestions}`);
      assert(await page.getByTestId('request-confirm').count() === 0, 'a refused request offers Confirm');
      await shot(page, 'requests-refused-1280.png');
      await page.setViewportSize(PHONE);
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'requests-refused-390.png');
      await page.setViewportSize(DESKTOP);
      await page.getByTestId('suggestions').getByText('web-01').click();
      await page.locator('[data-testid="request"][data-status="ready"]').waitFor({ timeout: 10_000 });
      const wouldRun = await page.getByTestId('would-run').innerText();
      assert(wouldRun.includes('web-01') && !wouldRun.includes('web-09'), `the suggestion was not taken: ${wouldRun}`);
      noPageErrors(page);
    });
  } finally {
    await browser.close();
  }
}

run(main, 300_000);

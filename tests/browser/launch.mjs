// Browser test of the launch form for local playbooks, against a running bff with the local
// engine (examples/playbooks, examples/inventories), in Debian's Chromium.
//
// What a person would notice: with no controller configured the form opens on local playbooks;
// the playbooks and inventories are picked from lists (patch.yml marked as having a survey); the
// survey asks for the patch group from a list, the hosts from the inventory's `webservers` group
// and reboot yes/no; the limit is picked from the inventory's groups and hosts with a search that
// keeps 284 hosts usable on a phone; the page says how many hosts the launch will touch before it
// runs; the server's refusal of an answer outside the survey is shown in its words; and patch.yml
// runs on web-01 with Group-1 without a file or host name typed.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node launch.mjs

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  call, BASE, DESKTOP, PHONE, assert, assertContrast, launchBrowser, newPage, noPageErrors, noSidewaysScroll,
  requireEnv, run, shot, signIn, step, waitFor,
} from './lib.mjs';

requireEnv('launch.mjs');

const countText = (page) => page.getByTestId('launch-host-count').innerText();

async function main() {
  const suffix = randomBytes(4).toString('hex');
  const operator = await call('POST', '/api/v1/keys', { name: `launcher-${suffix}`, role: 'operator' });
  assert(operator.ok, `an operator key: ${operator.detail}`);
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    await signIn(context, operator.json.secret);
    const page = await newPage(context);

    await step('with no controller configured the form opens on the local playbooks, listed', async () => {
      await page.goto(`${BASE}/launch`);
      await waitFor('the playbook list', async () => (await page.locator('select[data-testid="launch-playbook"]').count()) > 0);
      assert(await page.getByTestId('launch-kind-playbook').isChecked(), 'the form opened on "A local playbook"');
      const options = await page.locator('[data-testid="launch-playbook"] option').allInnerTexts();
      for (const p of ['hello.yml', 'patch.yml (survey)', 'wait.yml']) {
        assert(options.includes(p), `${p} is listed: ${options}`);
      }
      assert(!options.some((o) => o.includes('.survey.')), `survey files are not playbooks: ${options}`);
      await waitFor('the inventory list', async () => (await page.locator('select[data-testid="launch-inventory"]').count()) > 0);
      const inventories = await page.locator('[data-testid="launch-inventory"] option').allInnerTexts();
      assert(inventories.includes('demo.yml (3 hosts)') && inventories.includes('fleet.ini (284 hosts)'), `inventories: ${inventories}`);
    });

    await step('patch.yml asks its survey, with the hosts of the inventory\'s webservers group', async () => {
      await page.getByTestId('launch-playbook').selectOption('patch.yml');
      await page.getByTestId('launch-plays').waitFor();
      assert((await page.getByTestId('launch-plays').innerText()).includes('Pre-checks for patch group'), 'the plays are shown');
      await page.getByTestId('launch-survey').waitFor();
      // Before an inventory is chosen the hosts question says what it needs.
      await waitFor('the hosts question asks for an inventory', async () =>
        (await page.getByTestId('survey-patch_hosts-error').count()) > 0 && (await page.getByTestId('survey-patch_hosts-error').innerText()).includes('choose an inventory file first'));
      await page.getByTestId('launch-inventory').selectOption('demo.yml');
      await waitFor('the hosts question lists web-01 and web-02', async () => {
        const hosts = await page.locator('#survey-patch_hosts option').allInnerTexts();
        return hosts.join(',') === 'web-01,web-02' || hosts.join(',');
      });
      const groups = await page.locator('#survey-patch_group option').allInnerTexts();
      assert(groups.join(',') === 'Choose…,Group-1,Group-2', `patch groups: ${groups}`);
      assert((await page.locator('#survey-reboot').inputValue()) === 'yes', 'reboot defaults to yes');
      // With nothing chosen, every host of the inventory would run the first play.
      await waitFor('the count of every host', async () => (await countText(page)).includes('3 hosts') || await countText(page));
    });

    await step('the host picker searches groups and hosts and writes the limit; the count follows', async () => {
      await page.getByTestId('host-search').fill('web');
      const shown = (await page.locator('.pick-list label').allInnerTexts()).map((t) => t.trim());
      assert(shown.length === 3 && shown[0].startsWith('webservers'), `matches for "web": ${shown}`);
      await page.getByTestId('pick-web-01').check();
      assert((await page.getByTestId('launch-limit').inputValue()) === 'web-01', 'the limit is web-01');
      await waitFor('the count says web-01', async () => (await countText(page)) === 'This launch will run on 1 host: web-01.' || await countText(page));
      await page.getByTestId('pick-web-01').uncheck();
      assert((await page.getByTestId('launch-limit').inputValue()) === '', 'the limit is empty again');
    });

    await step('an answer outside the survey is refused by the server, naming the question', async () => {
      await page.getByTestId('launch-vars').fill('patch_group: Group-9');
      await page.getByTestId('launch-submit').click();
      const error = page.getByTestId('launch-error');
      await waitFor('the refusal', async () => (await error.innerText()).includes('Group-9') || await error.innerText());
      const server = await call('POST', '/api/v1/jobs', {
        source: { type: 'playbook', path: 'patch.yml' }, inventory: { type: 'file', path: 'demo.yml' },
        extra_vars: { patch_group: 'Group-9' },
      }, operator.json.secret);
      assert(server.status === 422, `the server answered ${server.status}`);
      assert(server.detail.includes('survey question “Patch group” (`patch_group`)'), `the server names the question: ${server.detail}`);
      assert((await error.innerText()).includes(server.detail), `the page says ${await error.innerText()}, the server ${server.detail}`);
      await shot(page, 'launch-survey-refused.png');
      await page.getByTestId('launch-vars').fill('');
    });

    let jobId;
    await step('patch.yml runs on web-01 with Group-1, nothing typed but the choices', async () => {
      await page.locator('#survey-patch_group').selectOption('Group-1');
      await page.locator('#survey-patch_hosts').selectOption(['web-01']);
      await waitFor('the count says web-01', async () => (await countText(page)) === 'This launch will run on 1 host: web-01.' || await countText(page));
      await assertContrast(page, 'the launch form with a survey');
      await shot(page, 'launch-survey.png');
      await page.getByTestId('launch-submit').click();
      await page.getByTestId('job-page').waitFor({ timeout: 15_000 });
      jobId = Number(new URL(page.url()).pathname.split('/').pop());
      await waitFor('the job ends successful', async () => (await page.getByTestId('job-page').getAttribute('data-status')) === 'successful' || await page.getByTestId('job-page').getAttribute('data-status'), 60_000);
      const hosts = await call('GET', `/api/v1/jobs/${jobId}/hosts`);
      const names = hosts.json.results.map((h) => h.host);
      assert(names.join(',') === 'web-01', `the job ran on ${names}`);
      const job = await call('GET', `/api/v1/jobs/${jobId}`);
      assert(job.json.name === 'patch.yml' && job.json.inventory === 'demo.yml', `the job: ${JSON.stringify(job.json)}`);
    });

    await step('a git repository\'s playbooks are listed at the chosen branch, and one runs', async () => {
      const repo = mkdtempSync(path.join(tmpdir(), 'playdeck-launch-repo-'));
      const git = (...args) => execFileSync('git', ['-c', 'user.name=Playdeck Tests', '-c', 'user.email=tests@playdeck.invalid', ...args], { cwd: repo });
      const play = (name) => `- name: ${name}\n  hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n        msg: "${name}"\n`;
      mkdirSync(path.join(repo, 'site'));
      writeFileSync(path.join(repo, 'site', 'hello.yml'), play('From the main branch'));
      git('init', '-q', '-b', 'main');
      git('add', '.');
      git('commit', '-q', '-m', 'main');
      git('checkout', '-q', '-b', 'release');
      writeFileSync(path.join(repo, 'release.yml'), play('From the release branch'));
      git('add', '.');
      git('commit', '-q', '-m', 'release');
      await page.goto(`${BASE}/launch`);
      await waitFor('the playbook list', async () => (await page.locator('select[data-testid="launch-playbook"]').count()) > 0);
      await page.getByTestId('launch-playbook').selectOption('(other)');
      await page.getByTestId('launch-repo').fill(`file://${repo}`);
      await page.getByTestId('launch-branch').fill('release');
      await page.getByTestId('launch-repo-list').click();
      await waitFor('the branch\'s playbooks', async () => {
        if ((await page.getByTestId('launch-repo-error').count()) > 0) return `refused: ${await page.getByTestId('launch-repo-error').innerText()}`;
        const options = await page.locator('[data-testid="launch-repo-playbooks"] option').allInnerTexts();
        return options.join(',') === '2 playbooks in the branch: choose…,release.yml,site/hello.yml' || options.join(',');
      }, 20_000);
      await page.getByTestId('launch-repo-playbooks').selectOption('release.yml');
      assert((await page.getByTestId('launch-playbook-path').inputValue()) === 'release.yml', 'the path is the one picked');
      await page.getByTestId('launch-submit').click();
      await page.getByTestId('job-page').waitFor({ timeout: 15_000 });
      await waitFor('the job ends successful', async () => (await page.getByTestId('job-page').getAttribute('data-status')) === 'successful' || await page.getByTestId('job-page').getAttribute('data-status'), 60_000);
      await page.locator('.out .line', { hasText: 'From the release branch' }).first().waitFor({ timeout: 10_000 });
    });

    await step('a fleet of 284 hosts stays usable on a phone: 40 shown, the search narrows, one picked', async () => {
      await page.setViewportSize(PHONE);
      await page.goto(`${BASE}/launch`);
      await waitFor('the playbook list', async () => (await page.locator('select[data-testid="launch-playbook"]').count()) > 0);
      await page.getByTestId('launch-playbook').selectOption('patch.yml');
      await waitFor('the inventory list', async () => (await page.locator('select[data-testid="launch-inventory"]').count()) > 0);
      await page.getByTestId('launch-inventory').selectOption('fleet.ini');
      // patch.yml's hosts question asks for a group this inventory does not have, and says so.
      await waitFor('the hosts question says the group is missing', async () =>
        (await page.getByTestId('survey-patch_hosts-error').count()) > 0 && (await page.getByTestId('survey-patch_hosts-error').innerText()).includes('has no group "webservers"'));
      await page.getByTestId('host-picker').waitFor();
      await waitFor('40 of them shown', async () => (await page.getByTestId('host-picker-shown').innerText()).startsWith('40 of 289 shown') || await page.getByTestId('host-picker-shown').innerText());
      await page.getByTestId('host-search').fill('db-3');
      const shown = await page.locator('.pick-list label').allInnerTexts();
      assert(shown.length === 10, `db-30 … db-39: ${shown}`);
      await page.getByTestId('pick-db-31.fleet.example').check();
      await waitFor('the count says db-31', async () => (await countText(page)) === 'This launch will run on 1 host: db-31.fleet.example.' || await countText(page));
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'launch-picker-phone.png');
      await page.getByTestId('launch-limit').fill('lb');
      await waitFor('the lb group counted', async () => (await countText(page)).includes('4 hosts: lb-1.fleet.example') || await countText(page));
      await page.getByTestId('launch-limit').fill('');
      await waitFor('every host counted without a limit', async () => (await countText(page)).includes('284 hosts') || await countText(page));
      await page.getByTestId('host-search').fill('');
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'launch-survey-phone.png');
      await page.setViewportSize(DESKTOP);
    });

    noPageErrors(page);
  } finally {
    await browser.close();
  }
}

run(main, 240_000);

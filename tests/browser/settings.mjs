// Browser test of the settings page (`/settings`) against a running bff, in Debian's Chromium.
//
// An admin adds an SSH key credential (checked in words first; the key never shows on the page
// again), sees an environment credential's variables checked, and deletes the key after a
// confirmation. A mail notifier is added against an SMTP sink this script runs on loopback: its
// test button delivers, a failed job of its template is mailed and listed among the latest
// notifications, "Send again" mails it again, pause and resume change it on the server, and a
// confirmed delete removes it. An operator sees the credentials but cannot add any and is told
// notifications are for admins; a viewer's Settings has only their tokens and sessions. Desktop and
// phone widths.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node settings.mjs

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import {
  ADMIN_KEY, BASE, DESKTOP, PHONE, Run, api, assert, ingest, launchBrowser, newPage, noPageErrors, noSidewaysScroll,
  requireEnv, run, shot, signIn, step, waitFor,
} from './lib.mjs';

requireEnv('settings.mjs');

/// A loopback SMTP server that accepts every message and keeps its DATA.
function smtpSink() {
  const mails = [];
  // Playdeck keeps its connection open for the next message; closing the sink ends them too.
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.setEncoding('utf8');
    let buffer = '';
    let inData = false;
    let data = '';
    socket.write('220 sink.test ESMTP\r\n');
    socket.on('data', (chunk) => {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, '');
        buffer = buffer.slice(nl + 1);
        if (inData) {
          if (line === '.') {
            inData = false;
            mails.push(data);
            data = '';
            socket.write('250 queued\r\n');
          } else {
            data += (line.startsWith('.') ? line.slice(1) : line) + '\n';
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') socket.write('250-sink.test\r\n250 8BITMIME\r\n');
        else if (verb === 'DATA') {
          inData = true;
          socket.write('354 go ahead\r\n');
        } else if (verb === 'QUIT') {
          socket.end('221 bye\r\n');
        } else socket.write('250 ok\r\n');
      }
    });
    socket.on('error', () => {});
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ port: server.address().port, mails, close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    } }));
  });
}

async function apiCall(method, path, key, body) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function main() {
  const suffix = randomBytes(4).toString('hex');
  const sink = await smtpSink();
  const template = `settings-${suffix}.yml`;
  const keyBody = `b3BlbnNzaC1rZXktdjEAAAAA${suffix}KEYMATERIAL${suffix}`;
  const passphrase = `pass-${suffix}-phrase`;
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    await signIn(context);
    const page = await newPage(context);

    await step('the admin reaches Settings from the main navigation', async () => {
      await page.goto(`${BASE}/`);
      await page.getByTestId('nav-settings').click();
      await page.getByTestId('settings-page').waitFor({ timeout: 15_000 });
      await page.getByTestId('credentials').waitFor();
      await page.getByTestId('notifiers').waitFor();
      assert((await page.title()).startsWith('Settings'), `title ${await page.title()}`);
    });

    await step('a credential is checked in words, saved, and its secret never shown again', async () => {
      await page.getByTestId('cred-new').click();
      await page.getByTestId('cred-name').fill(`ssh-${suffix}`);
      await page.getByTestId('cred-save').click();
      const errors = await page.getByTestId('cred-errors').innerText();
      assert(errors.includes('Private key'), `no word about the missing key: ${errors}`);
      assert((await api('/api/v1/credentials')).results.every((c) => c.name !== `ssh-${suffix}`), 'saved although incomplete');
      // The server's own check, in its words: not a private key.
      await page.getByTestId('cred-private_key').fill('not a key');
      await page.getByTestId('cred-save').click();
      await waitFor('the server refuses a non-key', async () =>
        (await page.getByTestId('cred-errors').innerText()).includes('not a private key') || await page.getByTestId('cred-errors').innerText());
      await page.getByTestId('cred-private_key').fill(
        `-----BEGIN OPENSSH PRIVATE KEY-----\n${keyBody}\n-----END OPENSSH PRIVATE KEY-----\n`);
      await page.getByTestId('cred-passphrase').fill(passphrase);
      assert((await page.getByTestId('cred-passphrase').getAttribute('type')) === 'password', 'the passphrase is typed in the clear');
      await page.getByTestId('cred-username').fill('deploy');
      await page.getByTestId('cred-description').fill('Production deploy key');
      await page.getByTestId('cred-hosts').fill('git.example.com, *.corp.example.com');
      await page.getByTestId('cred-save').click();
      await page.getByTestId('cred-notice').waitFor();
      const item = page.locator(`[data-testid="credential"][data-name="ssh-${suffix}"]`);
      await item.waitFor();
      const text = await item.innerText();
      assert(text.includes('SSH private key') && text.includes('Production deploy key') && text.includes('never used'), text);
      assert(text.includes('Only for git.example.com, *.corp.example.com'), text);
      assert((await page.getByTestId('credential-editor').count()) === 0, 'the form (and its secret) stays open');
      const html = await page.content();
      assert(!html.includes(keyBody) && !html.includes(passphrase), 'the secret is still on the page');
      const listed = (await api('/api/v1/credentials')).results.find((c) => c.name === `ssh-${suffix}`);
      assert(listed && listed.kind === 'ssh_key' && !JSON.stringify(listed).includes(keyBody), JSON.stringify(listed));
      assert(JSON.stringify(listed.hosts) === '["git.example.com","*.corp.example.com"]', JSON.stringify(listed));
    });

    await step('another kind shows its own fields; environment variables are checked line by line', async () => {
      await page.getByTestId('cred-new').click();
      await page.getByTestId('cred-kind').selectOption('environment');
      assert((await page.getByTestId('cred-private_key').count()) === 0, 'the SSH fields stay');
      assert((await page.getByTestId('cred-hosts').count()) === 0, 'environment variables are not sent to hosts');
      await page.getByTestId('cred-name').fill(`cloud-${suffix}`);
      await page.getByTestId('cred-variables').fill('AWS_REGION=eu-west-1\njust words');
      await page.getByTestId('cred-save').click();
      const errors = await page.getByTestId('cred-errors').innerText();
      assert(errors.includes('“just words” is not NAME=value'), errors);
      await page.getByTestId('cred-variables').fill('AWS_REGION=eu-west-1\nAWS_SECRET_ACCESS_KEY=s3cr3t');
      await page.getByTestId('cred-save').click();
      await page.locator(`[data-testid="credential"][data-name="cloud-${suffix}"]`).waitFor();
      const item = await page.locator(`[data-testid="credential"][data-name="cloud-${suffix}"]`).innerText();
      assert(item.includes('Environment variables'), item);
    });

    await step('a credential is deleted only after a confirmation', async () => {
      const item = page.locator(`[data-testid="credential"][data-name="cloud-${suffix}"]`);
      await item.getByTestId('cred-delete').click();
      assert((await api('/api/v1/credentials')).results.some((c) => c.name === `cloud-${suffix}`), 'deleted without confirmation');
      await item.getByTestId('cred-delete-confirm').click();
      await waitFor('the credential is gone', async () => (await item.count()) === 0);
      assert(!(await api('/api/v1/credentials')).results.some((c) => c.name === `cloud-${suffix}`), 'still on the server');
    });

    let notifierId;
    await step('a mail notifier is added and its test message arrives', async () => {
      await page.getByTestId('ntf-new').click();
      await page.getByTestId('ntf-name').fill(`mail-${suffix}`);
      await page.getByTestId('ntf-host').fill('127.0.0.1');
      await page.getByTestId('ntf-port').fill(String(sink.port));
      await page.getByTestId('ntf-tls').selectOption('none');
      await page.getByTestId('ntf-from').fill('playdeck@example.com');
      await page.getByTestId('ntf-to').fill('ops@example.com, oncall@example.com');
      await page.getByTestId('ntf-templates').fill(template);
      // OAuth 2 (XOAUTH2) asks for its token endpoint and client; switched back, a password again.
      await page.getByTestId('ntf-auth').selectOption('xoauth2');
      await page.getByTestId('ntf-token-url').waitFor();
      await page.getByTestId('ntf-save').click();
      const oauthProblems = await page.getByTestId('ntf-errors').innerText();
      assert(oauthProblems.includes('token URL and the client ID') && oauthProblems.includes('mailbox'), oauthProblems);
      await page.getByTestId('ntf-auth').selectOption('password');
      assert(await page.getByTestId('ntf-token-url').count() === 0, 'the OAuth fields go with OAuth');
      await page.getByTestId('ntf-save').click();
      const item = page.locator(`[data-testid="notifier"][data-name="mail-${suffix}"]`);
      await item.waitFor({ timeout: 10_000 });
      const text = await item.innerText();
      assert(text.includes(`Mail to ops@example.com, oncall@example.com through 127.0.0.1:${sink.port} (no encryption)`), text);
      assert(text.includes('failed, error') && text.includes(`only ${template}`), text);
      notifierId = (await api('/api/v1/notifiers')).results.find((n) => n.name === `mail-${suffix}`).id;
      await item.getByTestId('ntf-test').click();
      await waitFor('the test result is shown', async () =>
        (await item.getByTestId('ntf-test-result').innerText()).startsWith('Test message delivered') || await item.getByTestId('ntf-test-result').innerText());
      assert(sink.mails.length === 1 && sink.mails[0].includes('Test message'), `the sink got ${JSON.stringify(sink.mails)}`);
    });

    let jobId;
    await step('a failed job of its template is mailed and listed among the latest notifications', async () => {
      const r = new Run({ hosts: ['web-01'] });
      const events = [...r.start(), ...r.task('Restart app', { outcome: () => 'failed' }), ...r.end()];
      jobId = (await ingest({ source: 'local', job: { external_id: `settings-${suffix}`, name: `Settings ${suffix}`, template }, events })).job_id;
      await waitFor('the mail arrives', async () => sink.mails.length === 2 || sink.mails.length, 30_000);
      assert(sink.mails[1].includes(`Job ${jobId}`) && sink.mails[1].includes('web-01'), sink.mails[1]);
      await page.reload();
      const delivery = page.getByTestId('delivery').first();
      await delivery.waitFor({ timeout: 15_000 });
      await waitFor('it reads delivered', async () => {
        await page.reload();
        await page.getByTestId('delivery').first().waitFor({ timeout: 15_000 });
        const text = await page.getByTestId('delivery').first().innerText();
        return (text.includes('delivered') && text.includes(`Job ${jobId}`) && text.includes(`mail-${suffix}`)) || text;
      }, 30_000);
      const text = await delivery.innerText();
      assert(text.includes('1 attempt') && text.includes('last answer 250'), text);
      await shot(page, 'settings-desktop.png');
    });

    await step('"Send again" mails it once more', async () => {
      await page.getByTestId('delivery').first().getByTestId('ntf-redeliver').click();
      await page.getByTestId('ntf-notice').waitFor();
      await waitFor('the second mail of the job', async () => sink.mails.length === 3 || sink.mails.length, 30_000);
      assert(sink.mails[2].includes(`Job ${jobId}`), sink.mails[2]);
    });

    await step('pause and resume change the notifier on the server', async () => {
      const item = page.locator(`[data-testid="notifier"][data-name="mail-${suffix}"]`);
      await item.getByTestId('ntf-toggle').click();
      await waitFor('paused', async () => (await item.getAttribute('data-active')) === 'false');
      await item.getByTestId('ntf-paused').waitFor();
      assert((await api(`/api/v1/notifiers/${notifierId}`)).active === false, 'still active on the server');
      assert((await item.getByTestId('ntf-toggle').innerText()) === 'Resume', 'no way to resume');
      await item.getByTestId('ntf-toggle').click();
      await waitFor('active again', async () => (await item.getAttribute('data-active')) === 'true');
      assert((await api(`/api/v1/notifiers/${notifierId}`)).active === true, 'not resumed on the server');
      noPageErrors(page);
    });

    await step('an admin gives a team a role over its templates, in words, and takes it back', async () => {
      await page.getByTestId('bindings').waitFor();
      await page.getByTestId('binding-new').click();
      await page.getByTestId('binding-save').click();
      const problems = await page.getByTestId('binding-errors').innerText();
      assert(problems.includes('Name the group'), `no word about the missing name: ${problems}`);
      await page.getByTestId('binding-name').fill(`team-${suffix}`);
      await page.getByTestId('binding-role').selectOption('operator');
      await page.getByTestId('binding-templates').fill('deploy-[0-9].yml');
      await page.getByTestId('binding-save').click();
      await waitFor('the server refuses a bad glob in words', async () =>
        (await page.getByTestId('binding-errors').innerText()).includes('is not supported') || await page.getByTestId('binding-errors').innerText());
      await page.getByTestId('binding-templates').fill(`patch-*.yml, ${template}`);
      await page.getByTestId('binding-inventories').fill('prod-*');
      await page.getByTestId('binding-save').click();
      const item = page.locator('[data-testid="binding"][data-origin="settings"]', { hasText: `team-${suffix}` });
      await item.waitFor({ timeout: 10_000 });
      const text = await item.innerText();
      assert(text.includes('operator') && text.includes(`templates patch-*.yml, ${template}`) && text.includes('inventories prod-*'), text);
      const stored = (await api('/api/v1/bindings')).results.find((b) => b.group === `team-${suffix}`);
      assert(stored && stored.role === 'operator' && stored.templates.length === 2, JSON.stringify(stored));
      await item.scrollIntoViewIfNeeded();
      await shot(page, 'settings-team-access.png');
      await item.getByTestId('binding-delete').click();
      await item.getByTestId('binding-delete-confirm').click();
      await waitFor('the binding is gone', async () =>
        !(await api('/api/v1/bindings')).results.some((b) => b.group === `team-${suffix}`));
    });

    await step('the page fits a phone', async () => {
      const phone = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
      await signIn(phone);
      const p = await newPage(phone);
      await p.goto(`${BASE}/settings`);
      await p.getByTestId('notifier').first().waitFor({ timeout: 15_000 });
      await p.getByTestId('delivery').first().waitFor();
      await p.getByTestId('bindings').waitFor();
      await noSidewaysScroll(p, PHONE.width);
      await shot(p, 'settings-phone.png');
      await p.getByTestId('bindings').scrollIntoViewIfNeeded();
      await shot(p, 'settings-team-access-phone.png');
      noPageErrors(p);
      await phone.close();
    });

    await step("an operator sees credentials but changes nothing; a viewer's Settings has only tokens and sessions", async () => {
      for (const role of ['operator', 'viewer']) {
        const created = await apiCall('POST', '/api/v1/keys', ADMIN_KEY, { name: `settings-${role}-${suffix}`, role });
        assert(created.status === 201, JSON.stringify(created));
        const ctx = await browser.newContext({ viewport: DESKTOP });
        await signIn(ctx, created.body.secret);
        const p = await newPage(ctx);
        await p.goto(`${BASE}/`);
        await p.getByTestId('nav-dashboard').waitFor({ timeout: 15_000 });
        // What decides what is shown has loaded: the page knows the role.
        await waitFor('the page knows the role', async () => (await p.getByTestId('who').textContent()).endsWith(` · ${role}`));
        if (role === 'operator') {
          await p.getByTestId('nav-settings').click();
          await p.locator(`[data-testid="credential"][data-name="ssh-${suffix}"]`).waitFor({ timeout: 15_000 });
          for (const id of ['cred-new', 'cred-delete', 'ntf-new', 'notifier']) {
            assert((await p.getByTestId(id).count()) === 0, `an operator sees ${id}`);
          }
          const text = await p.getByTestId('settings-page').innerText();
          assert(text.includes('Only admins see and change who is told when jobs end.'), text);
        } else {
          await p.getByTestId('nav-settings').click();
          await p.getByTestId('tokens').waitFor({ timeout: 15_000 });
          await p.getByTestId('sessions').waitFor();
          for (const id of ['credentials', 'notifiers', 'users']) {
            assert((await p.getByTestId(id).count()) === 0, `a viewer sees ${id}`);
          }
        }
        noPageErrors(p);
        await ctx.close();
      }
    });

    await step('a notifier and a credential are deleted after a confirmation', async () => {
      const item = page.locator(`[data-testid="notifier"][data-name="mail-${suffix}"]`);
      await item.getByTestId('ntf-delete').click();
      await item.getByTestId('ntf-delete-confirm').click();
      await waitFor('the notifier is gone', async () => (await item.count()) === 0);
      assert((await apiCall('GET', `/api/v1/notifiers/${notifierId}`, ADMIN_KEY)).status === 404, 'still on the server');
      const cred = page.locator(`[data-testid="credential"][data-name="ssh-${suffix}"]`);
      await cred.getByTestId('cred-delete').click();
      await cred.getByTestId('cred-delete-confirm').click();
      await waitFor('the credential is gone', async () => (await cred.count()) === 0);
      noPageErrors(page);
    });
  } finally {
    sink.close();
    await browser.close();
  }
}

run(main, 180_000);

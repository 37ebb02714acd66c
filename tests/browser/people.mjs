// Browser test of people signing in as themselves, against a running bff configured with the test
// OpenID provider (tests/fixtures/oidc) and a seeded slapd (tests/fixtures/ldap), as
// `cargo xtask test` starts them.
//
// alice signs in with single sign-on through the provider's own login form (a wrong password is
// refused there first), lands on the page she asked for, makes a personal token in Settings (shown
// once, listed, working as a bearer token with her name), sees her session, and signs out through
// the provider's logout page. bob signs in with his LDAP password (a wrong one is refused in words)
// and sees no Audit link; carol, in no group, sees which groups grant access. An admin reads the
// Audit page filtered by person and action, with the CSV link carrying the same filters, and
// disables carol in Settings. Desktop and phone widths.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node people.mjs

import {
  ADMIN_KEY, BASE, DESKTOP, PHONE, assert, launchBrowser, newPage, noPageErrors, noSidewaysScroll, requireEnv, run, shot,
  signIn, step, waitFor,
} from './lib.mjs';

requireEnv('people.mjs');

async function main() {
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await newPage(context);

    await step('the sign-in page offers single sign-on, a password and a key', async () => {
      await page.goto(`${BASE}/dashboard`);
      await page.getByTestId('signin-oidc').waitFor();
      const sso = await page.getByTestId('signin-oidc').textContent();
      assert(sso.includes('Sign in with the test provider'), `button says ${sso}`);
      await page.getByTestId('signin-user').waitFor();
      await page.getByTestId('signin-key').waitFor();
      await shot(page, 'signin-desktop.png');
    });

    await step("single sign-on goes through the provider's own login form, which checks the password", async () => {
      await page.getByTestId('signin-oidc').click();
      await page.waitForURL((u) => !u.toString().startsWith(BASE));
      await page.locator('input[name=username]').fill('alice');
      await page.locator('input[name=password]').fill('not-her-password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByText('Wrong username or password').waitFor();
      await page.locator('input[name=username]').fill('alice');
      await page.locator('input[name=password]').fill('alice-password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${BASE}/dashboard`);
      await waitFor('alice is signed in as admin', async () => (await page.getByTestId('who').textContent()).trim() === 'alice · admin');
      noPageErrors(page);
    });

    let secret;
    await step('alice makes a personal token, shown once, that acts as her', async () => {
      await page.getByTestId('nav-settings').click();
      await page.getByTestId('token-new').click();
      await page.getByTestId('token-name').fill('gitlab deploy');
      await page.getByTestId('token-days').fill('30');
      await page.getByTestId('token-save').click();
      secret = (await page.getByTestId('token-secret').textContent()).trim();
      assert(secret.startsWith('pdt_'), `secret ${secret}`);
      await waitFor('the token is listed', async () => (await page.getByTestId('token').count()) === 1);
      const me = await fetch(`${BASE}/api/v1/session`, { headers: { Authorization: `Bearer ${secret}` } });
      const info = await me.json();
      assert(info.name === 'alice' && info.role === 'admin', JSON.stringify(info));
      const current = page.getByTestId('session');
      await waitFor('her session is listed', async () => (await current.count()) >= 1);
      await shot(page, 'settings-people-desktop.png');
    });

    await step("signing out goes through the provider's logout page and back", async () => {
      await page.getByTestId('sign-out').click();
      await page.waitForURL((u) => !u.toString().startsWith(BASE));
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL((u) => u.toString().startsWith(BASE));
      await page.getByTestId('signin-form').waitFor();
      const me = await context.request.get(`${BASE}/api/v1/session`);
      assert(me.status() === 401, `after sign-out the session answers ${me.status()}`);
    });

    await step('bob signs in with his directory password; a wrong one is refused in words', async () => {
      await page.getByTestId('signin-user').fill('bob');
      await page.getByTestId('signin-password').fill('wrong');
      await page.getByTestId('signin-password-submit').click();
      await waitFor('the refusal is shown', async () => (await page.getByTestId('signin-password-error').textContent()).includes('wrong user name or password'));
      await page.getByTestId('signin-password').fill('bob-pass');
      await page.getByTestId('signin-password-submit').click();
      await waitFor('bob is an operator', async () => (await page.getByTestId('who').textContent()).trim() === 'bob · operator');
      assert((await page.getByTestId('nav-audit').count()) === 0, 'an operator has no Audit link');
      await page.getByTestId('sign-out').click();
      await page.getByTestId('signin-form').waitFor();
    });

    await step('carol, in no group, is told which groups grant access', async () => {
      await page.getByTestId('signin-user').fill('carol');
      await page.getByTestId('signin-password').fill('carol-pass');
      await page.getByTestId('signin-password-submit').click();
      await page.getByTestId('no-access').waitFor();
      const text = await page.getByTestId('no-access').textContent();
      assert(text.includes('playdeck-viewers') && text.includes('playdeck-admins'), text);
      await page.getByTestId('sign-out').click();
      await page.getByTestId('signin-form').waitFor();
    });

    await step('an admin reads the audit log by person and action, and downloads it as CSV', async () => {
      await signIn(context, ADMIN_KEY);
      await page.goto(`${BASE}/audit`);
      await page.getByTestId('audit-table').waitFor();
      await page.getByTestId('audit-filter-actor').fill('alice');
      await page.getByTestId('audit-filter-actor').press('Enter');
      await page.getByTestId('audit-filter-action').selectOption('sign-in');
      await waitFor('only alice signing in', async () => {
        const actors = await page.getByTestId('audit-actor').allTextContents();
        const actions = await page.getByTestId('audit-action').allTextContents();
        return actors.length >= 1 && actors.every((a) => a === 'alice') && actions.every((a) => a === 'sign-in') || [actors, actions];
      });
      assert(page.url().includes('actor=alice') && page.url().includes('action=sign-in'), `the URL keeps the filters: ${page.url()}`);
      const href = await page.getByTestId('audit-csv').getAttribute('href');
      assert(href.includes('actor=alice') && href.includes('action=sign-in'), href);
      const csv = await context.request.get(`${BASE}${href}`);
      assert(csv.ok(), `CSV answered ${csv.status()}`);
      const lines = (await csv.text()).trim().split('\n');
      assert(lines[0].startsWith('id,at,actor') && lines.length >= 2 && lines.slice(1).every((l) => l.includes(',alice,')), lines.join('\n'));
      await shot(page, 'audit-desktop.png');
      noPageErrors(page);
    });

    await step('an admin disables carol in Settings', async () => {
      await page.goto(`${BASE}/settings`);
      const carol = page.locator('[data-testid=user][data-name=carol]');
      await carol.waitFor();
      await carol.getByTestId('user-toggle').click();
      await waitFor('carol is disabled', async () => (await carol.textContent()).includes('disabled'));
      const r = await fetch(`${BASE}/api/v1/session`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: 'carol', password: 'carol-pass' }),
      });
      assert(r.status === 401, `a disabled person signs in: ${r.status}`);
    });

    await step('the sign-in, settings and audit pages fit a phone', async () => {
      const phone = await browser.newContext({ viewport: PHONE });
      const p = await newPage(phone);
      await p.goto(`${BASE}/`);
      await p.getByTestId('signin-oidc').waitFor();
      await noSidewaysScroll(p, PHONE.width);
      await shot(p, 'signin-phone.png');
      await signIn(phone, ADMIN_KEY);
      await p.goto(`${BASE}/audit`);
      await p.getByTestId('audit-table').waitFor();
      await noSidewaysScroll(p, PHONE.width);
      await shot(p, 'audit-phone.png');
      await p.goto(`${BASE}/settings`);
      await p.getByTestId('users').waitFor();
      await noSidewaysScroll(p, PHONE.width);
      await shot(p, 'settings-people-phone.png');
      noPageErrors(p);
      await phone.close();
    });
  } finally {
    await browser.close();
  }
}

run(main, 180_000);

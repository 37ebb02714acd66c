// Browser test of Playdeck inside a portal's iframe on another site: a page this script serves on
// `localhost` frames Playdeck on `127.0.0.1` (two sites to the browser), as a portal does with
// PLAYDECK_FRAME_ANCESTORS naming it. Signing in with a key inside the frame works (the session
// cookie is SameSite=None; Secure, so it is sent in the third-party frame); with single sign-on
// the provider's login opens in a popup (providers refuse to be framed), which closes itself once
// back, and the frame is signed in without leaving the portal. Desktop and phone widths.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node frame.mjs

import http from 'node:http';

import { ADMIN_KEY, BASE, DESKTOP, PHONE, assert, launchBrowser, newPage, noPageErrors, requireEnv, run, shot, step, waitFor } from './lib.mjs';

requireEnv('frame.mjs');

/// The portal: a page on localhost with Playdeck in an iframe.
function portal() {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><head><title>Portal</title>
      <meta name="viewport" content="width=device-width, initial-scale=1">
      <style>body{margin:0;font-family:sans-serif}header{padding:8px 12px;background:#234;color:#fff}
      iframe{border:0;width:100%;height:calc(100vh - 40px)}</style></head>
      <body><header>Operations portal</header>
      <iframe id="playdeck" title="Playdeck" src="${BASE}/?embed=1"></iframe></body></html>`);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      url: `http://localhost:${server.address().port}/`,
      close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
    }));
  });
}

async function main() {
  const browser = await launchBrowser();
  const site = await portal();
  try {
    await step('the portal frames Playdeck from another site, and a key signs in inside the frame', async () => {
      const context = await browser.newContext({ viewport: DESKTOP });
      const page = await newPage(context);
      await page.goto(site.url);
      const frame = page.frameLocator('#playdeck');
      await frame.getByTestId('signin-key').waitFor({ timeout: 15_000 });
      await frame.getByTestId('signin-key').fill(ADMIN_KEY);
      await frame.getByTestId('signin-submit').click();
      await frame.locator('[data-testid="connection"][data-state="live"]').waitFor({ timeout: 15_000 });
      const cookies = await context.cookies(BASE);
      const session = cookies.find((c) => c.name === 'playdeck_session');
      assert(session && session.sameSite === 'None' && session.secure && session.httpOnly, `cookie ${JSON.stringify(session)}`);
      assert(page.url() === site.url, `the portal stayed: ${page.url()}`);
      await shot(page, 'frame-signed-in.png');
      await page.setViewportSize(PHONE);
      await shot(page, 'frame-signed-in-phone.png');
      noPageErrors(page);
      await context.close();
    });

    await step('with single sign-on, the login opens in a popup that closes itself, and the frame is signed in', async () => {
      const context = await browser.newContext({ viewport: DESKTOP });
      const page = await newPage(context);
      await page.goto(site.url);
      const frame = page.frameLocator('#playdeck');
      const sso = frame.getByTestId('signin-oidc');
      await frame.getByTestId('signin-key').waitFor({ timeout: 15_000 });
      if (await sso.count() === 0) {
        console.log('# no single sign-on configured on this server: skipped');
        await context.close();
        return;
      }
      const [popup] = await Promise.all([page.waitForEvent('popup'), sso.click()]);
      await popup.locator('input[name=username]').waitFor({ timeout: 15_000 });
      assert(!popup.url().startsWith(BASE), `the popup is at the provider: ${popup.url()}`);
      await popup.locator('input[name=username]').fill('alice');
      await popup.locator('input[name=password]').fill('alice-password');
      await popup.getByRole('button', { name: 'Sign in' }).click();
      await popup.waitForEvent('close', { timeout: 20_000 });
      // The embedded page has no header: the frame shows the grid, and its session is alice's.
      await frame.locator('[data-testid="connection"][data-state="live"]').waitFor({ timeout: 15_000 });
      const inner = page.frames().find((f) => f.url().startsWith(BASE));
      const me = await inner.evaluate(async () => (await fetch('/api/v1/session')).json());
      assert(me.name === 'alice' && me.kind === 'oidc', `the frame's session: ${JSON.stringify(me)}`);
      assert(page.url() === site.url, `the portal stayed: ${page.url()}`);
      await shot(page, 'frame-sso.png');
      noPageErrors(page);
      await context.close();
    });
  } finally {
    await site.close();
    await browser.close();
  }
}

run(main, 180_000);

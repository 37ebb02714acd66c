// Browser test of the edge: the Content-Security-Policy and the live feed's fallbacks.
//
// The page loads and runs under the policy with no violation, while an injected inline script is
// refused (the policy is enforced, not only sent). Then the page is opened through a proxy this
// script runs on loopback that refuses WebSocket upgrades, as some corporate proxies do: the
// connection badge says "live (SSE)" and a new job and a job's new output still appear by
// themselves. With the proxy refusing the SSE stream too, the badge says "polling" and they still
// arrive. Desktop and phone widths.
//
//   PLAYDECK_URL=http://127.0.0.1:8080 PLAYDECK_ADMIN_KEY=… PLAYDECK_INGEST_TOKEN=… node edge.mjs

import { randomBytes } from 'node:crypto';
import http from 'node:http';

import {
  BASE, DESKTOP, PHONE, Run, assert, ingest, launchBrowser, newPage, noPageErrors, noSidewaysScroll, requireEnv, run,
  shot, signIn, step, waitFor,
} from './lib.mjs';

requireEnv('edge.mjs');

/// A reverse proxy to Playdeck that refuses every WebSocket upgrade (403), and while
/// `proxy.blockSse` also the live SSE stream (502).
function refusingProxy() {
  const target = new URL(BASE);
  const proxy = { blockSse: false, upgrades: 0, sseRefused: 0, polls: 0 };
  // Upstream requests still open (SSE streams): ended with their client, and all at the close, so
  // nothing keeps this script alive.
  const open = new Set();
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/api/v1/live?') || req.url === '/api/v1/live') {
      if (proxy.blockSse) {
        proxy.sseRefused += 1;
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('streaming is not allowed here');
        return;
      }
    }
    if (req.url.startsWith('/api/v1/live/poll')) proxy.polls += 1;
    const upstream = http.request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      },
    );
    open.add(upstream);
    upstream.on('close', () => open.delete(upstream));
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (req, socket) => {
    proxy.upgrades += 1;
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      proxy.url = `http://127.0.0.1:${server.address().port}`;
      proxy.close = () => new Promise((r) => {
        for (const u of open) u.destroy();
        server.closeAllConnections();
        server.close(r);
      });
      resolve(proxy);
    });
  });
}

async function badge(page, state, timeout = 30_000) {
  await page.locator(`[data-testid="connection"][data-state="${state}"]`).waitFor({ timeout });
}

async function main() {
  const suffix = randomBytes(4).toString('hex');
  const browser = await launchBrowser();
  const proxy = await refusingProxy();
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    await signIn(context);

    await step('the policy is sent, the app runs under it, and an injected inline script is refused', async () => {
      const page = await newPage(context);
      const violations = [];
      page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
      const response = await page.goto(`${BASE}/`);
      const csp = response.headers()['content-security-policy'] ?? '';
      for (const d of ["default-src 'self'", "script-src 'self' 'wasm-unsafe-eval' 'sha256-", "style-src 'self'"]) {
        assert(csp.includes(d), `${d} in ${csp}`);
      }
      assert(!/script-src[^;]*'unsafe-inline'/.test(csp), `no unsafe-inline scripts: ${csp}`);
      await badge(page, 'live', 15_000);
      // Pages with style attributes (the timeline, the output) are covered by the other scripts,
      // whose pages fail on any violation too (lib.mjs).
      assert(violations.length === 0, `violations while the app ran:\n${violations.join('\n')}`);
      const refused = await page.evaluate(() => new Promise((resolve) => {
        document.addEventListener('securitypolicyviolation', (e) => resolve(e.violatedDirective), { once: true });
        const s = document.createElement('script');
        s.textContent = 'window.__injected = true;';
        document.head.appendChild(s);
        setTimeout(() => resolve(window.__injected ? 'ran' : 'silent'), 2_000);
      }));
      assert(refused.startsWith('script-src'), `the injected script was ${refused}`);
      assert(await page.evaluate(() => window.__injected !== true), 'the injected script ran');
      page.errors = page.errors.filter((e) => !/Content Security Policy/i.test(e));
      noPageErrors(page);
      await page.close();
    });

    const job = { external_id: `edge-${suffix}`, name: `Edge ${suffix}` };
    const r = new Run({ hosts: ['web-01', 'web-02'], play: `edge-${suffix}` });
    let jobId;

    await step('behind a proxy that refuses upgrades, the grid goes live over SSE', async () => {
      const page = await newPage(context);
      await page.goto(`${proxy.url}/`);
      await badge(page, 'sse');
      assert(proxy.upgrades >= 2, `the WebSocket was tried first (${proxy.upgrades} upgrades)`);
      const badgeText = (await page.getByTestId('connection').innerText()).trim();
      assert(badgeText === 'live (SSE)', `the badge says ${badgeText}`);
      const result = await ingest({ source: 'local', job, events: r.start() });
      jobId = result.job_id;
      await page.locator(`[data-testid="job-row"][data-job-id="${jobId}"]`).waitFor({ timeout: 10_000 });
      await shot(page, 'edge-grid-sse.png');
      await page.setViewportSize(PHONE);
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'edge-grid-sse-phone.png');
      noPageErrors(page);
      await page.close();
    });

    await step("over SSE a job's new output appears by itself", async () => {
      const page = await newPage(context);
      await page.goto(`${proxy.url}/jobs/${jobId}`);
      await page.getByTestId('output').waitFor({ timeout: 15_000 });
      await badge(page, 'sse');
      await ingest({ source: 'local', job, events: r.task(`sse step ${suffix}`) });
      await waitFor('the SSE-delivered task in the output', async () =>
        (await page.getByTestId('output').innerText()).includes(`sse step ${suffix}`), 10_000);
      noPageErrors(page);
      await page.close();
    });

    await step('with SSE refused as well, the job page polls and still gets new output', async () => {
      proxy.blockSse = true;
      const page = await newPage(context);
      await page.goto(`${proxy.url}/jobs/${jobId}`);
      await page.getByTestId('output').waitFor({ timeout: 15_000 });
      await badge(page, 'polling', 45_000);
      assert(proxy.sseRefused >= 2, `SSE was tried before polling (${proxy.sseRefused})`);
      const badgeText = (await page.getByTestId('connection').innerText()).trim();
      assert(badgeText === 'polling', `the badge says ${badgeText}`);
      await ingest({ source: 'local', job, events: [...r.task(`polled step ${suffix}`), ...r.end()] });
      await waitFor('the polled task in the output', async () =>
        (await page.getByTestId('output').innerText()).includes(`polled step ${suffix}`), 15_000);
      await waitFor('the job finished while polled', async () =>
        (await page.getByTestId('job-status').first().innerText()).trim() === 'successful', 15_000);
      assert(proxy.polls > 0, 'the page polled');
      await shot(page, 'edge-job-polling.png');
      await page.setViewportSize(PHONE);
      await noSidewaysScroll(page, PHONE.width);
      await shot(page, 'edge-job-polling-phone.png');
      noPageErrors(page);
      await page.close();
    });

    await step('the grid polls too, and new jobs still appear', async () => {
      const page = await newPage(context);
      await page.goto(`${proxy.url}/`);
      await badge(page, 'polling', 45_000);
      const other = await ingest({
        source: 'local',
        job: { external_id: `edge-poll-${suffix}`, name: `Edge polled ${suffix}` },
        events: new Run({ hosts: ['db-01'] }).start(),
      });
      await page.locator(`[data-testid="job-row"][data-job-id="${other.job_id}"]`).waitFor({ timeout: 15_000 });
      noPageErrors(page);
      await page.close();
    });
  } finally {
    await proxy.close();
    await browser.close();
  }
}

run(main, 300_000);

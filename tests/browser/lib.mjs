// Shared helpers of the browser tests: the environment, a Chromium, steps and assertions, the
// ingest API, and realistic Ansible runs to feed it.

import { mkdir } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BASE = (process.env.PLAYDECK_URL ?? '').replace(/\/+$/, '');
export const ADMIN_KEY = process.env.PLAYDECK_ADMIN_KEY ?? '';
export const INGEST_TOKEN = process.env.PLAYDECK_INGEST_TOKEN ?? '';
export const SHOTS = path.resolve(process.env.SCREENSHOT_DIR ?? path.join(here, 'screenshots'));
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
// The live feed must beat this; a reload or a polling page would not be "live".
export const LIVE_TIMEOUT_MS = 10_000;

export function requireEnv(script) {
  for (const [name, value] of [
    ['PLAYDECK_URL', BASE],
    ['PLAYDECK_ADMIN_KEY', ADMIN_KEY],
    ['PLAYDECK_INGEST_TOKEN', INGEST_TOKEN],
  ]) {
    if (!value) {
      console.error(`FAIL: ${name} is not set (see the header of ${script})`);
      process.exit(2);
    }
  }
}

let passed = 0;
export async function step(name, fn) {
  try {
    await fn();
  } catch (e) {
    throw new Error(`${name}: ${e?.message ?? e}`);
  }
  passed += 1;
  console.log(`ok ${passed} - ${name}`);
}

export function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/// Runs `main` with a deadline and prints the closing line every runner reads.
export async function run(main, timeoutMs) {
  const timer = setTimeout(() => {
    console.error(`FAIL: the run took longer than ${timeoutMs / 1000}s`);
    process.exit(1);
  }, timeoutMs);
  try {
    await main();
    console.log(`${passed} passed, 0 failed`);
    clearTimeout(timer);
  } catch (e) {
    console.error(`FAIL: ${e?.message ?? e}`);
    console.log(`${passed} passed, 1 failed`);
    process.exit(1);
  }
}

export async function launchBrowser() {
  await mkdir(SHOTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/// A page whose wasm panics and uncaught errors fail the run instead of passing silently.
export async function newPage(context) {
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('console', (m) => {
    // A Content-Security-Policy violation is a page error too: the page must run under the policy.
    if (m.type() === 'error' && /panicked|RuntimeError|unreachable|Content Security Policy/i.test(m.text())) {
      page.errors.push(m.text());
    }
  });
  return page;
}

export function noPageErrors(page) {
  assert(page.errors.length === 0, `the page reported errors:\n${page.errors.join('\n')}`);
}

/// Signs in through the API: the browser context gets the HttpOnly cookie as the form would.
export async function signIn(context, key = ADMIN_KEY) {
  const response = await context.request.post(`${BASE}/api/v1/session`, { data: { key } });
  assert(response.ok(), `sign-in answered ${response.status()}: ${await response.text()}`);
}

export async function ingest(body, { gzip = false } = {}) {
  const json = JSON.stringify(body);
  const headers = { Authorization: `Bearer ${INGEST_TOKEN}`, 'Content-Type': 'application/json' };
  let payload = json;
  if (gzip) {
    headers['Content-Encoding'] = 'gzip';
    payload = gzipSync(json);
  }
  const response = await fetch(`${BASE}/api/v1/ingest/events`, { method: 'POST', headers, body: payload });
  const text = await response.text();
  assert(response.ok, `ingest answered ${response.status}: ${text}`);
  return JSON.parse(text);
}

/// One API call with a key (the admin's by default): `{ok, status, json, detail}`, `detail` the
/// server's `errors[0].detail`.
export async function call(method, path, body, key = ADMIN_KEY) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, json, detail: json?.errors?.[0]?.detail ?? '' };
}

export async function api(pathAndQuery) {
  const response = await fetch(`${BASE}${pathAndQuery}`, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } });
  const text = await response.text();
  assert(response.ok, `GET ${pathAndQuery} answered ${response.status}: ${text}`);
  return JSON.parse(text);
}

export async function noSidewaysScroll(page, width) {
  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  assert(scrollWidth <= width, `page is ${scrollWidth}px wide at a ${width}px viewport (scrolls sideways)`);
}

export async function shot(page, name) {
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`# screenshot ${file}`);
}

export async function waitFor(what, fn, timeoutMs = LIVE_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last === true) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} (after ${timeoutMs / 1000}s; last saw ${JSON.stringify(last)})`);
}

/// Picks `value` in the list with this test id once it is a list: the launch form shows a text
/// field in its place until the server has answered with its playbooks or inventories.
export async function selectListed(page, testId, value) {
  const list = page.locator(`select[data-testid="${testId}"]`);
  await list.waitFor({ timeout: 3 * LIVE_TIMEOUT_MS });
  await list.selectOption(value);
}

const ESC = '\u001b';
const colour = (code, text) => `${ESC}[${code}m${text}${ESC}[0m`;

/// A playbook run as ansible-runner reports it: events with counters, uuids, times and output
/// (one line per result, or `lines` lines each with a `=> {…}` block), and the closing stats.
export class Run {
  constructor({ hosts, play = 'site', start = Date.now() - 60_000 }) {
    this.hosts = hosts;
    this.play = play;
    this.t = start;
    this.counter = 0;
    this.seq = 0;
    this.taskUuid = null;
    this.stats = { ok: {}, changed: {}, failures: {}, dark: {}, skipped: {}, rescued: {}, ignored: {} };
  }

  uuid() {
    return `00000000-0000-4000-8000-${String(++this.seq).padStart(12, '0')}`;
  }

  at() {
    this.t += 37;
    return new Date(this.t).toISOString();
  }

  event(event, stdout, data = {}, extra = {}) {
    return {
      counter: ++this.counter,
      event,
      uuid: this.uuid(),
      created: this.at(),
      stdout,
      event_data: { play: this.play, ...data },
      ...extra,
    };
  }

  start() {
    return [
      this.event('playbook_on_start', '', {}),
      this.event('playbook_on_play_start', `\r\nPLAY [${this.play}] ${'*'.repeat(60)}`, {}),
    ];
  }

  /// A task and one result per host; `outcome(host)` says ok, changed, failed or skipped.
  task(name, { outcome = () => 'ok', lines = 1, module = 'ansible.builtin.command' } = {}) {
    const start = this.event('playbook_on_task_start', `\r\nTASK [${name}] ${'*'.repeat(Math.max(3, 70 - name.length))}`, { task: name });
    this.taskUuid = start.uuid;
    const out = [start];
    for (const host of this.hosts) {
      const result = outcome(host);
      const began = new Date(this.t).toISOString();
      const body = lines > 1
        ? ` => {\n${Array.from({ length: lines - 2 }, (_, i) => `    "line_${i}": "${name} on ${host}"`).join(',\n')}\n}`
        : '';
      let event = 'runner_on_ok';
      let stdout;
      const res = { changed: result === 'changed', stdout: `${name} done on ${host}`, stderr: '', rc: 0 };
      if (result === 'failed') {
        event = 'runner_on_failed';
        res.rc = 2;
        res.msg = `non-zero return code on ${host}`;
        res.stderr = `${name}: permission denied`;
        stdout = colour('0;31', `fatal: [${host}]: FAILED! => {"changed": false, "msg": "${res.msg}"}`);
        this.stats.failures[host] = (this.stats.failures[host] ?? 0) + 1;
      } else if (result === 'skipped') {
        event = 'runner_on_skipped';
        stdout = colour('0;36', `skipping: [${host}]`);
        this.stats.skipped[host] = (this.stats.skipped[host] ?? 0) + 1;
      } else {
        stdout = colour(result === 'changed' ? '0;33' : '0;32', `${result}: [${host}]${body}`);
        this.stats.ok[host] = (this.stats.ok[host] ?? 0) + 1;
        if (result === 'changed') this.stats.changed[host] = (this.stats.changed[host] ?? 0) + 1;
      }
      const ev = this.event(event, stdout, { host, task: name, res, resolved_action: module, start: began, end: null, duration: null }, { parent_uuid: this.taskUuid });
      ev.event_data.end = ev.created;
      ev.event_data.duration = (Date.parse(ev.created) - Date.parse(began)) / 1000;
      out.push(ev);
    }
    return out;
  }

  end() {
    const recap = [`\r\nPLAY RECAP ${'*'.repeat(60)}`]
      .concat(this.hosts.map((h) => `${h.padEnd(26)}: ok=${this.stats.ok[h] ?? 0}    changed=${this.stats.changed[h] ?? 0}    failed=${this.stats.failures[h] ?? 0}`))
      .join('\n');
    return [this.event('playbook_on_stats', recap, { ...this.stats })];
  }
}

/// The lines the run's events print, as the bff's `/stdout?format=txt` rebuilds them.
export function linesOf(events) {
  return events
    .filter((e) => e.stdout)
    .sort((a, b) => a.counter - b.counter)
    .flatMap((e) => e.stdout.replace(/\u001b\[[0-9;]*m/g, '').split('\n').map((l) => l.replace(/\r$/, '').replace(/\r/g, '')));
}

/// Text on the page whose contrast with what is behind it is below WCAG AA (4.5:1, or 3:1 for
/// large text). Looks at every element that holds text, in the current colour scheme; disabled
/// controls are exempt, as WCAG says.
export async function contrastViolations(page) {
  return page.evaluate(() => {
    const parse = (c) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return { r, g, b, a };
    };
    const lum = ({ r, g, b }) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const over = (top, below) => ({
      r: top.r * top.a + below.r * (1 - top.a),
      g: top.g * top.a + below.g * (1 - top.a),
      b: top.b * top.a + below.b * (1 - top.a),
      a: 1,
    });
    const background = (el) => {
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0) {
          layers.push(c);
          if (c.a >= 1) break;
        }
      }
      let bg = { r: 255, g: 255, b: 255, a: 1 };
      if (matchMedia('(prefers-color-scheme: dark)').matches && !layers.some((l) => l.a >= 1)) bg = { r: 0, g: 0, b: 0, a: 1 };
      for (const l of layers.reverse()) bg = over(l, bg);
      return bg;
    };
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const seen = new Set();
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!el || seen.has(el) || !n.textContent.trim()) continue;
      seen.add(el);
      if (el.closest('[disabled], [hidden], noscript, .visually-hidden')) continue;
      const style = getComputedStyle(el);
      if (style.visibility === 'hidden' || style.display === 'none') continue;
      const rect = el.getBoundingClientRect();
      if (rect.width === 0 || rect.height === 0) continue;
      const bg = background(el);
      const fg = over(parse(style.color), bg);
      const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) {
        out.push(`${ratio.toFixed(2)}:1 ${el.tagName.toLowerCase()}.${[...el.classList].join('.')} "${n.textContent.trim().slice(0, 40)}" (${style.color} on rgb(${Math.round(bg.r)}, ${Math.round(bg.g)}, ${Math.round(bg.b)}))`);
      }
    }
    return out;
  });
}

/// Fails with the list of low-contrast texts, in light and in dark mode.
export async function assertContrast(page, what) {
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.waitForTimeout(50);
    const bad = await contrastViolations(page);
    assert(bad.length === 0, `${what} (${scheme}): text below WCAG AA contrast:\n  ${[...new Set(bad)].slice(0, 15).join('\n  ')}`);
  }
  await page.emulateMedia({ colorScheme: 'light' });
}

// The size of the page a browser downloads, against a failing budget (what it weighs now, and a
// little room), so no change makes phones download more unnoticed. The goal is 260 KB brotli
// (issue "Live and on the wire"). Two ways, both run by `cargo xtask test`:
//
// - Without PLAYDECK_URL, right after the build: the release bundle in dist/ (wasm, js, css), raw
//   and brotli-compressed (quality 11, as the build stores it beside each file).
//
//     trunk build --release --offline && node tests/browser/bundle-size.mjs
//
// - With PLAYDECK_URL, among the browser tests: what Chromium transfers, from its resource timing.
//   A first visit (an empty cache) fetches index.html, the js, the wasm and the css, each
//   compressed; a second visit fetches index.html again (no-cache) and nothing else (the hashed
//   files come from the cache: immutable).
//
//     PLAYDECK_URL=http://127.0.0.1:8080 node tests/browser/bundle-size.mjs

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants } from 'node:zlib';

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist');
// 400 KB until schedules came: the Schedules page (with the controllers' own), the Launch page's
// "Schedule…" form and the request box's time weigh 20 KB brotli of Yew markup (measured:
// 390.7 → 410.7 KB). 412 KB until the launch form's lists came: the playbook and inventory
// lists, a local playbook's resolved survey, the host picker, the host count and a repository's list weigh 19.4 KB
// brotli, most of it Yew markup and the deserializers of their answers (410.7 → 431.1 KB). 428 KB
// since the release build runs Debian's wasm-opt -Oz and trunk minifies the css (431.1 → 425.7 KB).
// 422 KB since every request is sent and read by one boxed future (`api::send_quiet`) instead of a
// copy of that state machine inlined in each endpoint's and each page's task (425.7 → 420.4 KB).
// 414 KB since answers are read with structs from objects only (`json::from_str`), so no derived
// struct's array form is built (419.5 → 411.2 KB).
const BUDGET = 414 * 1024;
const GOAL = 260 * 1024;
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;

if (process.env.PLAYDECK_URL) {
  await inChromium();
} else {
  fromDist();
}

function fromDist() {
  let raw = 0;
  let brotli = 0;
  for (const file of readdirSync(dist).filter((f) => /\.(wasm|js|css)$/.test(f)).sort()) {
    const bytes = readFileSync(path.join(dist, file));
    const br = brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
    raw += bytes.length;
    brotli += br;
    console.log(`# ${file}: ${kb(bytes.length)} raw, ${kb(br)} brotli`);
  }
  if (raw === 0) {
    console.log('not ok - no bundle in dist/: build it first (trunk build --release --offline)');
    process.exit(1);
  }
  verdict(`bundle: ${kb(raw)} raw, ${kb(brotli)} brotli`, brotli);
}

/// Prints the figure beside its budget and goal, and fails over the budget.
function verdict(what, bytes) {
  console.log(
    `# ${what} (budget ${BUDGET / 1024} KB, ratio ${(bytes / BUDGET).toFixed(2)}; ` +
      `goal ${GOAL / 1024} KB, ratio ${(bytes / GOAL).toFixed(2)})`,
  );
  if (bytes > BUDGET) {
    console.log(`not ok - the bundle is over its budget of ${BUDGET / 1024} KB brotli`);
    process.exit(1);
  }
  console.log('ok - the bundle is within its budget');
}

async function inChromium() {
  const { BASE, assert, launchBrowser, newPage, noPageErrors, run, step } = await import('./lib.mjs');
  await run(async () => {
    const browser = await launchBrowser();
    try {
      const context = await browser.newContext();
      const page = await newPage(context);
      const encodings = new Map();
      page.on('response', (r) => encodings.set(new URL(r.url()).pathname, r.headers()['content-encoding'] ?? 'none'));
      // What the visit fetched, from the browser's own resource timing (same origin, so sizes are
      // given): transferSize is 0 for what came from the cache.
      const visit = async () => {
        encodings.clear();
        await page.goto(`${BASE}/`);
        await page.getByTestId('signin-form').waitFor();
        return page.evaluate(() =>
          performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).map((e) => ({
            path: new URL(e.name).pathname,
            transfer: e.transferSize,
            encoded: e.encodedBodySize,
            decoded: e.decodedBodySize,
          })),
        );
      };
      const app = (entries) => entries.filter((e) => /\.(wasm|js|css)$/.test(e.path));
      let first;
      await step('a first visit fetches the web app compressed', async () => {
        first = await visit();
        for (const e of first) {
          console.log(`# first visit: ${e.path}: ${kb(e.transfer)} transferred (${kb(e.encoded)} body, ${kb(e.decoded)} decoded), content-encoding ${encodings.get(e.path)}`);
        }
        const files = app(first);
        assert(files.some((e) => e.path.endsWith('.wasm')) && files.some((e) => e.path.endsWith('.js')), `the app's files were fetched: ${JSON.stringify(first)}`);
        for (const e of files) {
          assert(['br', 'gzip'].includes(encodings.get(e.path)), `${e.path} was sent compressed (${encodings.get(e.path)})`);
        }
        noPageErrors(page);
      });
      await step('a second visit transfers only index.html', async () => {
        const second = await visit();
        for (const e of second) console.log(`# second visit: ${e.path}: ${kb(e.transfer)} transferred`);
        // The sign-in page's own questions to the API are answers, not the web app.
        const fetched = second.filter((e) => e.transfer > 0 && !e.path.startsWith('/api/')).map((e) => e.path);
        assert(fetched.length === 1 && fetched[0] === '/', `only the page is fetched again, not ${fetched.join(', ')}`);
        assert(app(second).length === app(first).length, 'the app\'s files were all used from the cache');
        noPageErrors(page);
      });
      await step('what the first visit transferred is within the budget', async () => {
        const sum = app(first).reduce((n, e) => n + e.transfer, 0);
        verdict(`first visit in Chromium: ${kb(sum)} of wasm + js + css transferred`, sum);
      });
    } finally {
      await browser.close();
    }
  }, 120_000);
}

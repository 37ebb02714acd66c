// The size of the page a browser downloads: the release bundle in dist/ (wasm, js, css), raw and
// brotli-compressed (quality 11, as a server or CDN would send it). `cargo xtask test` runs it: it
// fails when the bundle is over its budget (what it weighs now, and a little room), so no change
// makes phones download more unnoticed. The goal is 260 KB brotli (issue "Live and on the wire").
//
//   trunk build --release --offline && node tests/browser/bundle-size.mjs

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
let raw = 0;
let brotli = 0;
for (const file of readdirSync(dist).filter((f) => /\.(wasm|js|css)$/.test(f)).sort()) {
  const bytes = readFileSync(path.join(dist, file));
  const br = brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
  raw += bytes.length;
  brotli += br;
  console.log(`# ${file}: ${(bytes.length / 1024).toFixed(1)} KB raw, ${(br / 1024).toFixed(1)} KB brotli`);
}
console.log(
  `# bundle: ${(raw / 1024).toFixed(1)} KB raw, ${(brotli / 1024).toFixed(1)} KB brotli ` +
    `(budget ${BUDGET / 1024} KB, ratio ${(brotli / BUDGET).toFixed(2)}; goal ${GOAL / 1024} KB, ratio ${(brotli / GOAL).toFixed(2)})`,
);
if (raw === 0) {
  console.log('not ok - no bundle in dist/: build it first (trunk build --release --offline)');
  process.exit(1);
}
if (brotli > BUDGET) {
  console.log(`not ok - the bundle is over its budget of ${BUDGET / 1024} KB brotli`);
  process.exit(1);
}
console.log('ok - the bundle is within its budget');

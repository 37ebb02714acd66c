// The size of the page a browser downloads: the release bundle in dist/ (wasm, js, css), raw and
// brotli-compressed (quality 11, as a server or CDN would send it). The target is 300 KB brotli.
//
//   trunk build --release --offline && node tests/browser/bundle-size.mjs

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants } from 'node:zlib';

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist');
const TARGET = 300 * 1024;
let raw = 0;
let brotli = 0;
for (const file of readdirSync(dist).filter((f) => /\.(wasm|js|css)$/.test(f)).sort()) {
  const bytes = readFileSync(path.join(dist, file));
  const br = brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
  raw += bytes.length;
  brotli += br;
  console.log(`# ${file}: ${(bytes.length / 1024).toFixed(1)} KB raw, ${(br / 1024).toFixed(1)} KB brotli`);
}
console.log(`# bundle: ${(raw / 1024).toFixed(1)} KB raw, ${(brotli / 1024).toFixed(1)} KB brotli (target ${TARGET / 1024} KB brotli)`);
if (brotli > TARGET) console.log('# WARNING: the bundle is over its size target');

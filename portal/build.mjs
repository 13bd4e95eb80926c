// Builds the portal into dist/: the app bundle (app.js), its page and style, and the test
// wallet (dist-test/test-wallet.js, used only by the browser test; never served). Everything comes from the pinned npm
// packages in package-lock.json; nothing is fetched here.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'dist');
mkdirSync(out, { recursive: true });
const common = {
  bundle: true,
  format: 'esm',
  target: 'es2022',
  platform: 'browser',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' }
};
await build({ ...common, entryPoints: [join(here, 'src', 'main.js')], outfile: join(out, 'app.js') });
await build({ ...common, entryPoints: [join(here, 'test', 'wallet.js')], outfile: join(here, 'dist-test', 'test-wallet.js'), format: 'iife' });
for (const f of ['index.html', 'style.css']) copyFileSync(join(here, 'src', f), join(out, f));
console.log(`built ${out}`);

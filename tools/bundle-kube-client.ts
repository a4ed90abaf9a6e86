// Replaces dist/kube-client.js (tsc's output of webhook/kube-client.ts: a re-export of @kubernetes/client-node) with
// an esbuild bundle of the same exports, tree-shaken: client-node's modules and the packages they import are bundled,
// and whatever of them the exports do not reach is left out (the generated API classes). The bundle imports nothing
// but Node's own modules: client-node's dependencies are not resolved again at run time, where the production
// install (npm ci --omit=dev) hoists them differently (client-node's js-yaml 5 sits under client-node's own
// node_modules beside the project's js-yaml 4 in a development install; a bundle that imported "js-yaml" got 4 there
// and none in the image).
// Run by `npm run build` after tsc. Exits non-zero, with esbuild's message, when the bundle cannot be built.
import { build } from 'esbuild';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';

const BUILTINS = new Set(builtinModules);
/** ws's optional native speed-ups: required inside a try, and ws works without them (they are not installed) */
const OPTIONAL = new Set(['bufferutil', 'utf-8-validate']);

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}dist/kube-client.js`;
const PACKAGE = '@kubernetes/client-node';

const result = await build({
  absWorkingDir: root,
  entryPoints: ['webhook/kube-client.ts'],
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  outfile: out,
  allowOverwrite: true,
  sourcemap: false,
  legalComments: 'eof',
  logLevel: 'warning',
  metafile: true,
  // CommonJS packages in the bundle (undici, ws, ...) call require() for Node's modules: an ES module has none
  banner: { js: "import { createRequire as __kubeClientRequire } from 'node:module';\nconst require = __kubeClientRequire(import.meta.url);" },
});
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
const text = await readFile(out, 'utf8');
// What the bundle still imports by package name must be Node's own modules: another would be resolved from
// node_modules at run time. (Relative paths left in it are in comments: esbuild resolved every one it loads.)
const imported = [...text.matchAll(/(?:^import[^'"\n]*from\s*|^import\s*|\bimport\(\s*|(?:\b|__)require\(\s*)["']([^"'.\/][^"']*)["']/gm)].map((m) => m[1]!);
const foreign = [...new Set(imported.filter((p) => !p.startsWith('node:') && !BUILTINS.has(p) && !OPTIONAL.has(p)))];
if (foreign.length) {
  console.error(`tools/bundle-kube-client.ts: the bundle still imports ${foreign.join(', ')}, which the production install may not resolve; nothing was written`);
  await rm(out, { force: true });
  process.exit(1);
}
const version = JSON.parse(await readFile(`${root}node_modules/${PACKAGE}/package.json`, 'utf8')).version as string;
await writeFile(out, `// ${PACKAGE} ${version}: KubeConfig, ListWatch and Watch, bundled by tools/bundle-kube-client.ts (see webhook/kube-client.ts).\n${text}`);
// tsc's source map was of the re-export, not of the bundle
await rm(`${out}.map`, { force: true });
console.log(`tools/bundle-kube-client.ts: dist/kube-client.js, ${PACKAGE} ${version}, ${Math.round(bytes / 1024)} KiB`);

// Replaces dist/kube-client.js (tsc's output of webhook/kube-client.ts: a re-export of @kubernetes/client-node) with
// an esbuild bundle of the same exports, tree-shaken, with undici left out (below): client-node's modules and the packages they import are bundled,
// and whatever of them the exports do not reach is left out (the generated API classes). The bundle imports nothing
// but Node's own modules: client-node's dependencies are not resolved again at run time, where the production
// install (npm ci --omit=dev) hoists them differently (client-node's js-yaml 5 sits under client-node's own
// node_modules beside the project's js-yaml 4 in a development install; a bundle that imported "js-yaml" got 4 there
// and none in the image).
// Run by `npm run build` after tsc. Exits non-zero, with esbuild's message, when the bundle cannot be built.
import { build } from 'esbuild';
import type { Plugin } from 'esbuild';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { builtinModules, createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const BUILTINS = new Set(builtinModules);
/** ws's optional native speed-ups: required inside a try, and ws works without them (they are not installed) */
const OPTIONAL = new Set(['bufferutil', 'utf-8-validate']);

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}dist/kube-client.js`;
const PACKAGE = '@kubernetes/client-node';
const require = createRequire(import.meta.url);

/**
 * undici, in the bundle's place: client-node imports it at the top of modules the webhook loads (KubeConfig's, for
 * fetch dispatchers; Watch's and others', for fetch), and it is the largest package client-node brings (1.4 of the
 * bundle's 2.8 MB, and about 13 MB of RSS in a webhook with cluster state after 1M admissions). The webhook calls none of the code that
 * uses it: lists and watches go over node:http(s) with KubeConfig.applyToHTTPSOptions (webhook/kube-http.ts). Should
 * a later change call such code, it fails at once with this message instead of quietly reaching a network.
 */
const UNDICI_LEFT_OUT = `const leftOut = (what) => {
  throw new Error(what + ' is not available: undici is left out of dist/kube-client.js (tools/bundle-kube-client.ts); the webhook talks to the API server over node:http(s) (webhook/kube-http.ts)');
};
export class Agent { constructor() { leftOut('undici Agent'); } }
export class ProxyAgent { constructor() { leftOut('undici ProxyAgent'); } }
export function fetch() { return Promise.reject(new Error('undici fetch is not available: undici is left out of dist/kube-client.js (tools/bundle-kube-client.ts)')); }
`;
const leaveOutUndici: Plugin = {
  name: 'leave-out-undici',
  setup(b) {
    b.onResolve({ filter: /^undici$/ }, () => ({ path: 'undici', namespace: 'left-out' }));
    b.onLoad({ filter: /.*/, namespace: 'left-out' }, () => ({ contents: UNDICI_LEFT_OUT, loader: 'js' }));
  },
};

/**
 * client-node's modules, read as free of side effects: its package.json does not say so, and esbuild then keeps every
 * module an import reaches, with all it imports, used or not (the generated models and their serializer, ws, tar: 0.9
 * of the 1.4 MB left without undici, about 11 MB of RSS at start). So marked, a module is left out where nothing of it
 * is used, and kept whole where something is. The one client-node module imported for its side effect alone,
 * polyfill.js (a File global that undici needs on Node 18), has no use here. ListWatch imports the model serializer
 * only to pass its label and field selectors through (strings, which it returns as they are): in its place, a
 * function that does that and refuses anything else.
 */
const SELECTORS_ONLY = `export const ObjectSerializer = {
  serialize(data, type) {
    if (type !== 'string' || (data != null && typeof data !== 'string'))
      throw new Error('client-node serializer called for a ' + type + ': dist/kube-client.js (tools/bundle-kube-client.ts) has it for ListWatch selectors (strings) only');
    return data;
  },
};
`;
const clientNodeWithoutSideEffects: Plugin = {
  name: 'client-node-without-side-effects',
  setup(b) {
    const inDist = `/node_modules/${PACKAGE}/dist/`;
    b.onResolve({ filter: /^\.\.?\// }, (a) => {
      if (!a.importer.includes(inDist) || a.path.endsWith('.json')) return undefined;
      if (a.importer.endsWith(`${inDist}cache.js`) && a.path === './serializer.js') return { path: 'serializer', namespace: 'selectors-only' };
      return { path: join(dirname(a.importer), a.path), sideEffects: false };
    });
    b.onResolve({ filter: /^@kubernetes\/client-node$/ }, (a) => ({ path: require.resolve(PACKAGE, { paths: [a.resolveDir] }), sideEffects: false }));
    b.onLoad({ filter: /.*/, namespace: 'selectors-only' }, () => ({ contents: SELECTORS_ONLY, loader: 'js' }));
  },
};

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
  plugins: [leaveOutUndici, clientNodeWithoutSideEffects],
  // CommonJS packages in the bundle (ws, js-yaml's, ...) call require() for Node's modules: an ES module has none
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
await writeFile(out, `// ${PACKAGE} ${version}: KubeConfig and ListWatch, bundled by tools/bundle-kube-client.ts without undici (see webhook/kube-client.ts).\n${text}`);
// tsc's source map was of the re-export, not of the bundle
await rm(`${out}.map`, { force: true });
console.log(`tools/bundle-kube-client.ts: dist/kube-client.js, ${PACKAGE} ${version}, ${Math.round(bytes / 1024)} KiB`);

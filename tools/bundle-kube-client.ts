// Replaces dist/kube-client.js (tsc's output of webhook/kube-client.ts: a re-export of @kubernetes/client-node) with
// an esbuild bundle of the same exports, tree-shaken: client-node's own modules are bundled and whatever of them the
// exports do not reach is left out (the generated API classes); its dependencies stay imports of node_modules.
// Run by `npm run build` after tsc. Exits non-zero, with esbuild's message, when the bundle cannot be built.
import { build } from 'esbuild';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

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
  plugins: [
    {
      name: 'only-client-node',
      setup(b) {
        // every bare import other than client-node itself (undici, js-yaml, ws, ...) is loaded from node_modules
        b.onResolve({ filter: /^[^./]/ }, (args) =>
          args.path === PACKAGE || args.path.startsWith(`${PACKAGE}/`) ? undefined : { path: args.path, external: true },
        );
      },
    },
  ],
});
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
const text = await readFile(out, 'utf8');
const version = JSON.parse(await readFile(`${root}node_modules/${PACKAGE}/package.json`, 'utf8')).version as string;
await writeFile(out, `// ${PACKAGE} ${version}: KubeConfig, ListWatch and Watch, bundled by tools/bundle-kube-client.ts (see webhook/kube-client.ts).\n${text}`);
// tsc's source map was of the re-export, not of the bundle
await rm(`${out}.map`, { force: true });
console.log(`tools/bundle-kube-client.ts: dist/kube-client.js, ${PACKAGE} ${version}, ${Math.round(bytes / 1024)} KiB`);

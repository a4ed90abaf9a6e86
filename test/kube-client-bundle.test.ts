// dist/kube-client.js: what `npm run build` makes of webhook/kube-client.ts (tools/bundle-kube-client.ts): client-node's
// KubeConfig, ListWatch and Watch bundled without the generated API classes the webhook never calls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';

const DIST = fileURLToPath(new URL('../dist/kube-client.js', import.meta.url));

test('the built kube-client is a bundle of KubeConfig, ListWatch and Watch, without client-node\'s generated APIs', async () => {
  const text = readFileSync(DIST, 'utf8');
  assert.match(text.split('\n')[0]!, /^\/\/ @kubernetes\/client-node \d+\.\d+\.\d+: KubeConfig, ListWatch and Watch, bundled by tools\/bundle-kube-client\.ts/);
  // nothing of it is loaded from node_modules at run time: not the package itself (that would load all of it), and
  // not its dependencies, which the production install hoists differently (its js-yaml 5 is nested in a development
  // install, beside the project's js-yaml 4, and at the top in the image); its generated API classes are not in it
  const bare = [...text.matchAll(/(?:^import[^'"\n]*from\s*|^import\s*|\bimport\(\s*|(?:\b|__)require\(\s*)["']([^"'.\/][^"']*)["']/gm)].map((m) => m[1]!);
  const builtins = new Set(builtinModules);
  // (ws's optional native speed-ups are required inside a try; ws works without them)
  assert.deepEqual([...new Set(bare.filter((p) => !p.startsWith('node:') && !builtins.has(p) && p !== 'bufferutil' && p !== 'utf-8-validate'))], []);
  assert.ok(bare.includes('node:module'), 'the createRequire banner');
  assert.doesNotMatch(text, /class CoreV1Api\b/);
  assert.doesNotMatch(text, /class AppsV1Api\b/);
  assert.ok(text.length < 4_000_000, `${text.length} characters`);
  assert.equal(existsSync(`${DIST}.map`), false, "tsc's map of the re-export is removed");
  const m = (await import(DIST)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(m).sort(), ['KubeConfig', 'ListWatch', 'Watch']);
  // the bundled KubeConfig reads a kubeconfig as the package's does
  const kc = new (m.KubeConfig as typeof import('@kubernetes/client-node').KubeConfig)();
  kc.loadFromString(
    'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://10.0.0.1:443"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u, namespace: ns}}]\ncurrent-context: x\n',
  );
  assert.equal(kc.getCurrentCluster()?.server, 'https://10.0.0.1:443');
  const opts: { headers?: Record<string, string> } = {};
  await kc.applyToHTTPSOptions(opts as never);
  assert.equal(opts.headers?.Authorization, 'Bearer t');
});

// dist/kube-client.js: what `npm run build` makes of webhook/kube-client.ts (tools/bundle-kube-client.ts): client-node's
// KubeConfig and ListWatch bundled without the generated API classes the webhook never calls, and without undici.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';

const DIST = fileURLToPath(new URL('../dist/kube-client.js', import.meta.url));

test('the built kube-client is a bundle of KubeConfig and ListWatch, without client-node\'s generated APIs or undici', async () => {
  const text = readFileSync(DIST, 'utf8');
  assert.match(text.split('\n')[0]!, /^\/\/ @kubernetes\/client-node \d+\.\d+\.\d+: KubeConfig and ListWatch, bundled by tools\/bundle-kube-client\.ts without undici/);
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
  // undici (client-node's fetch) is left out: its HTTP parser, its dispatcher, its fetch
  assert.doesNotMatch(text, /llhttp/);
  assert.doesNotMatch(text, /class Dispatcher\b|class Client extends/);
  // client-node's modules are bundled as free of side effects: what nothing uses is left out (the generated models,
  // ws behind its exec/attach WebSocket handler, tar behind cp)
  assert.doesNotMatch(text, /class V1Pod\b/);
  assert.doesNotMatch(text, /class WebSocketHandler\b/);
  assert.doesNotMatch(text, /node_modules\/(ws|tar-fs|tar-stream)\//);
  assert.ok(text.length < 1_000_000, `${text.length} characters`);
  assert.equal(existsSync(`${DIST}.map`), false, "tsc's map of the re-export is removed");
  const m = (await import(DIST)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(m).sort(), ['KubeConfig', 'ListWatch']);
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

test('client-node code that would use the left-out undici fails at once, with a message that says why', async () => {
  const m = (await import(DIST)) as { KubeConfig: typeof import('@kubernetes/client-node').KubeConfig };
  const kc = new m.KubeConfig();
  kc.loadFromString(
    'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://10.0.0.1:443", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
  );
  // applySecurityAuthentication builds an undici dispatcher for client-node's generated API clients and its Watch
  // (their fetch); the webhook calls neither
  const context = { setHeaderParam: () => {}, setDispatcher: () => {} };
  await assert.rejects(
    async () => kc.applySecurityAuthentication(context as never),
    /undici Agent is not available: undici is left out of dist\/kube-client\.js \(tools\/bundle-kube-client\.ts\)/,
  );
});

test('the bundled ListWatch passes its label and field selectors to the watch as they are (the serializer it imports is left out), and lists first', async () => {
  const m = (await import(DIST)) as { ListWatch: typeof import('@kubernetes/client-node').ListWatch };
  const asked: Record<string, unknown>[] = [];
  let listed = 0;
  const watch = {
    watch: async (_path: string, q: Record<string, unknown>) => {
      asked.push(q);
      return new AbortController();
    },
  };
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a', namespace: 'team-a', resourceVersion: '5' } };
  const lw = new m.ListWatch(
    '/api/v1/pods',
    watch as never,
    async () => {
      listed++;
      return { apiVersion: 'v1', kind: 'PodList', items: [pod], metadata: { resourceVersion: '7' } } as never;
    },
    false,
    'kagenti.io/type in (agent,tool)',
    'metadata.namespace!=kube-system',
  );
  await lw.start();
  assert.equal(listed, 1);
  assert.deepEqual(asked, [{ resourceVersion: '7', labelSelector: 'kagenti.io/type in (agent,tool)', fieldSelector: 'metadata.namespace!=kube-system' }]);
  assert.deepEqual(lw.list('team-a').map((o) => o.metadata?.name), ['a']);
  await lw.stop();
});
